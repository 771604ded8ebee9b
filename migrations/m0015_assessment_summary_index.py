"""An index that holds every column the cycle summary reads of a sheet, in agenda
order, so a thousand sheets come from the index alone, already in order, rather than
from their wide rows (comments and rationale included) and a sort."""


def migrate(db):
    db.execute_sql("CREATE INDEX assessment_summary ON assessment (cycle_id, agenda_position, "
                   "template_id, customer_id, branch_id, tier_before_id, final_tier_id, "
                   "final_total, special_policy, credit_review, provisional, committee_mean, "
                   "preliminary_total)")
