"""Each assessment keeps its preliminary total and its committee mean, kept by triggers
on the score table.

The cycle summary grades a thousand sheets per request; summing each sheet's scores
in correlated subqueries was half its SQL. Triggers keep the two figures whoever
writes a score (the autosave, the demo, a bulk load) in the writer's transaction;
the autosave already locks the sheet's row first on PostgreSQL, so two members saving
the same sheet at once recompute one after the other and neither total goes stale.

- preliminary_total: the sum of the preliminary points (NULL: none given);
- committee_mean: the committee members' totals averaged, i.e. the sum of their points
  over the number of members who gave any (NULL: none yet). The chair's board, the
  summary and the report all read it from here.
"""
import peewee as pw
from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as run

RECOMPUTE = """
    UPDATE assessment SET
      preliminary_total = (SELECT SUM(s.points) FROM score s
          WHERE s.assessment_id = assessment.id AND s.stage = 'preliminary'),
      committee_mean = (SELECT SUM(s.points) * 1.0 / COUNT(DISTINCT s.member_id) FROM score s
          WHERE s.assessment_id = assessment.id AND s.stage = 'committee'
            AND s.points IS NOT NULL)
    WHERE {where}"""


def migrate(db):
    from models.base import is_sqlite
    migrator = SchemaMigrator.from_database(db)
    run(
        migrator.add_column("assessment", "preliminary_total", pw.IntegerField(null=True)),
        migrator.add_column("assessment", "committee_mean", pw.DoubleField(null=True)),
    )
    if is_sqlite():
        for event, where in (("INSERT", "id = NEW.assessment_id"),
                             ("UPDATE", "id IN (OLD.assessment_id, NEW.assessment_id)"),
                             ("DELETE", "id = OLD.assessment_id")):
            of = " OF assessment_id, stage, member_id, points" if event == "UPDATE" else ""
            db.execute_sql(f"CREATE TRIGGER score_sheet_totals_{event.lower()} "
                           f"AFTER {event}{of} ON score BEGIN "
                           f"{RECOMPUTE.format(where=where)}; END")
    else:
        db.execute_sql(f"""
            CREATE FUNCTION score_sheet_totals() RETURNS trigger AS $$
            BEGIN
              IF TG_OP IN ('UPDATE', 'DELETE') THEN
                {RECOMPUTE.format(where="id = OLD.assessment_id")};
              END IF;
              IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE'
                                      AND NEW.assessment_id <> OLD.assessment_id) THEN
                {RECOMPUTE.format(where="id = NEW.assessment_id")};
              END IF;
              RETURN NULL;
            END $$ LANGUAGE plpgsql""")
        db.execute_sql("CREATE TRIGGER score_sheet_totals AFTER INSERT OR UPDATE OR DELETE "
                       "ON score FOR EACH ROW EXECUTE FUNCTION score_sheet_totals()")
    db.execute_sql(RECOMPUTE.format(where="1 = 1"))
