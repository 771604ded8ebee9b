"""The share × upcoming-volume portfolio (客户组合):

- each year's figures of a customer gain our share of what it buys of the product
  (`share_of_wallet`, %) and what it is about to buy (`upcoming_volume`, 元), both
  unknown (NULL) until someone enters them;
- `portfolio_setting`: the thresholds that split customers into four quadrants and the
  strategy of each, versioned: every save is a new row, the latest in force holds.
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

    class PortfolioSetting(Base):
        version = pw.IntegerField(unique=True)
        effective_on = pw.DateField()
        share_threshold = pw.DecimalField(max_digits=5, decimal_places=2)
        volume_threshold = pw.DecimalField(max_digits=16, decimal_places=2)
        keep_name = pw.CharField(max_length=50)
        keep_note = pw.TextField()
        hold_or_win_name = pw.CharField(max_length=50)
        hold_or_win_note = pw.TextField()
        develop_name = pw.CharField(max_length=50)
        develop_note = pw.TextField()
        win_or_let_go_name = pw.CharField(max_length=50)
        win_or_let_go_note = pw.TextField()
        created_by = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
        created_at = pw.DateTimeField()

        class Meta:
            indexes = ((("effective_on", "version"), False),)

    db.create_tables([PortfolioSetting])
    migrator = SchemaMigrator.from_database(db)
    run(
        migrator.add_column("customer_year", "share_of_wallet", pw.DecimalField(
            max_digits=5, decimal_places=2, null=True)),
        migrator.add_column("customer_year", "upcoming_volume", pw.DecimalField(
            max_digits=16, decimal_places=2, null=True)),
    )
