"""Grading cycles, their committee, assessments and scores."""
import peewee as pw

from models.base import utcnow


def migrate(db):
    class Base(pw.Model):
        class Meta:
            database = db
            legacy_table_names = False

    # Stubs of the existing tables, only for the foreign keys.
    class User(Base):
        pass

    class Branch(Base):
        pass

    class Tier(Base):
        pass

    class Customer(Base):
        pass

    class ScorecardTemplate(Base):
        pass

    class GradingCycle(Base):
        name = pw.CharField(max_length=100)
        year = pw.IntegerField()
        template_existing = pw.ForeignKeyField(ScorecardTemplate, on_delete="RESTRICT")
        template_prospect = pw.ForeignKeyField(ScorecardTemplate, null=True,
                                               on_delete="RESTRICT")
        scope = pw.TextField(default="{}")
        chair = pw.ForeignKeyField(User, on_delete="RESTRICT")
        meeting_from = pw.DateField(null=True)
        meeting_to = pw.DateField(null=True)
        disagreement_points = pw.IntegerField(default=10)
        current_assessment = pw.IntegerField(null=True)
        phase = pw.CharField(max_length=16, default="draft")
        created_by = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
        created_at = pw.DateTimeField(default=utcnow)
        started_at = pw.DateTimeField(null=True)

    class CommitteeMember(Base):
        cycle = pw.ForeignKeyField(GradingCycle, on_delete="CASCADE")
        user = pw.ForeignKeyField(User, on_delete="RESTRICT")

        class Meta:
            indexes = ((("cycle", "user"), True),)

    class Assessment(Base):
        cycle = pw.ForeignKeyField(GradingCycle, on_delete="CASCADE")
        customer = pw.ForeignKeyField(Customer, on_delete="RESTRICT")
        template = pw.ForeignKeyField(ScorecardTemplate, on_delete="RESTRICT")
        branch = pw.ForeignKeyField(Branch, on_delete="RESTRICT")
        tier_before = pw.ForeignKeyField(Tier, null=True, on_delete="RESTRICT")
        provisional = pw.BooleanField(default=False)
        agenda_position = pw.IntegerField(default=0)
        preliminary_by = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
        preliminary_comment = pw.TextField(default="")
        preliminary_submitted_at = pw.DateTimeField(null=True)
        final_tier = pw.ForeignKeyField(Tier, null=True, on_delete="RESTRICT")
        final_total = pw.DecimalField(max_digits=7, decimal_places=2, null=True)
        rationale = pw.TextField(default="")
        special_policy = pw.BooleanField(default=False)
        credit_review = pw.BooleanField(default=False)
        finalised_by = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
        finalised_at = pw.DateTimeField(null=True)

        class Meta:
            indexes = ((("cycle", "customer"), True), (("cycle", "branch"), False))

    class Score(Base):
        assessment = pw.ForeignKeyField(Assessment, on_delete="CASCADE")
        criterion = pw.IntegerField()
        stage = pw.CharField(max_length=16)
        member = pw.ForeignKeyField(User, on_delete="RESTRICT")
        level = pw.IntegerField(null=True)
        points = pw.IntegerField(null=True)
        comment = pw.TextField(default="")
        revision = pw.IntegerField(default=1)
        updated_at = pw.DateTimeField(default=utcnow)

        class Meta:
            indexes = ((("assessment", "stage", "member", "criterion"), True),)

    db.create_tables([GradingCycle, CommitteeMember, Assessment, Score])
