"""Counts kept between requests while what they count does not change.

A count over a whole book (the company-wide compliance page's overdue customers, the
portfolio's quadrants) reads an index entry per customer, on every request. Such a
count is kept here under a key of everything it depends on besides its tables, with
the generation of those tables it was counted at. Database triggers bump a generation
on every change to the tables it watches (migration 17: service_status, for the
compliance counts; migrations 24 and 28: the customer's tier, branch, industry, place,
code and name, for the portfolio's), so a kept count is used only while nothing it read
has changed. A writer no trigger watches calls bump() in its transaction.

The tables keep the names migration 17 gave them, when compliance was their only user.
"""
import hashlib
import json

from peewee import BigIntegerField, CharField, TextField

from .base import BaseModel, raw_sql

# The generations (rows of compliance_generation) and the tables each one watches.
COMPLIANCE = 1  # service_status
# customer: tier_id, branch_id, industry, placed_share, placed_volume, code, name; and
# customer_value_class, bumped by models/value_classes.py's recompute()
PORTFOLIO = 2


class KeptCount(BaseModel):
    """One kept answer: its key's hash, the generation it was counted at, the answer
    as JSON."""
    key = CharField(max_length=64, primary_key=True)
    generation = BigIntegerField()
    counts = TextField()

    class Meta:
        table_name = "overdue_count_cache"


def kept(key, count, generation_id):
    """count()'s answer (a list or dict that JSON keeps as it is), counted at most once
    per generation `generation_id` for the same `key` (a JSON-able description of
    everything else the answer depends on: dates, scope, thresholds).

    The generation is read before counting, so an answer is never filed under a newer
    generation than what it counted."""
    key = hashlib.sha256(json.dumps([generation_id, key]).encode()).hexdigest()
    generation = raw_sql("SELECT generation FROM compliance_generation WHERE id = {p}",
                         [generation_id]).fetchone()[0]
    found = (KeptCount.select(KeptCount.counts)
             .where(KeptCount.key == key, KeptCount.generation == generation).scalar())
    if found is not None:
        return json.loads(found)
    answer = count()
    (KeptCount.insert(key=key, generation=generation, counts=json.dumps(answer))
     .on_conflict(conflict_target=[KeptCount.key],
                  update={KeptCount.generation: generation,
                          KeptCount.counts: json.dumps(answer)})
     .execute())
    return answer


def bump(generation_id):
    """Move the generation `generation_id` on, inside the caller's transaction: every
    answer kept under it is counted again."""
    raw_sql("UPDATE compliance_generation SET generation = generation + 1 WHERE id = {p}",
            [generation_id])
