"""An index that holds each sheet's points per stage, so the cycle summary sums a
thousand sheets' totals from the index without reading the score rows."""


def migrate(db):
    db.execute_sql("CREATE INDEX score_sheet_points ON score "
                   "(assessment_id, stage, points, member_id)")
