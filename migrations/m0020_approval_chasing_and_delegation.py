"""Waiting approvals chased and delegated (催办、超时升级、代理):

- an approval rule's limits: after `remind_days` a step waiting that long reminds its
  deciders; after `escalate_days` it goes to `escalate_to` (a role; empty: the role
  above);
- a request remembers the rule it was filed under (`rule_key`), a step since when it
  waits, when it was last chased, the role it was escalated from, and for whom its
  decider decided (`on_behalf_of`, through a delegation);
- `delegation`: a person away from a date to a date, and who decides in their stead.
"""
import peewee as pw
from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as run


def migrate(db):
    # This step's own snapshot of the tables, never today's models.
    class Base(pw.Model):
        class Meta:
            database = db
            legacy_table_names = False

    class User(Base):
        class Meta:
            table_name = "user"

    class Delegation(Base):
        user = pw.ForeignKeyField(User, on_delete="CASCADE")
        delegate = pw.ForeignKeyField(User, on_delete="CASCADE")
        starts_on = pw.DateField()
        ends_on = pw.DateField()
        created_at = pw.DateTimeField()

        class Meta:
            indexes = ((("delegate", "ends_on"), False), (("user", "ends_on"), False))

    db.create_tables([Delegation])
    migrator = SchemaMigrator.from_database(db)
    run(
        migrator.add_column("approval_rule", "remind_days", pw.IntegerField(null=True)),
        migrator.add_column("approval_rule", "escalate_days", pw.IntegerField(null=True)),
        migrator.add_column("approval_rule", "escalate_to", pw.CharField(
            max_length=32, constraints=[pw.SQL("DEFAULT ''")]), allow_not_null=True),
        migrator.add_column("tier_change_request", "rule_key", pw.CharField(
            max_length=32, constraints=[pw.SQL("DEFAULT ''")]), allow_not_null=True),
        migrator.add_column("approval_step", "waiting_since", pw.DateTimeField(null=True)),
        migrator.add_column("approval_step", "chased_at", pw.DateTimeField(null=True)),
        migrator.add_column("approval_step", "escalated_from", pw.CharField(
            max_length=32, constraints=[pw.SQL("DEFAULT ''")]), allow_not_null=True),
        migrator.add_column("approval_step", "on_behalf_of_id", pw.ForeignKeyField(
            User, field=User.id, null=True, on_delete="SET NULL")),
    )
    # A step waiting now has waited at most since its request was filed. No rule has
    # limits yet, so nothing is chased by this until an administrator sets them.
    db.execute_sql("UPDATE approval_step SET waiting_since = (SELECT created_at FROM "
                   "tier_change_request WHERE tier_change_request.id = "
                   "approval_step.request_id) WHERE status = 'pending'")
