"""Peewee models, one module per domain, with the rules that belong to them."""
from .audit import AuditEvent, audit
from .base import BaseModel, DomainError, NotFound, db, utcnow, write_transaction
from .customers import Activity, Contact, Customer, CustomerYear, ImportBatch, TierHistory
from .cycles import Assessment, CommitteeMember, GradingCycle, Score
from .people import Branch, User
from .reports import ReportJob
from .schema import SchemaVersion
from .scorecards import Criterion, CriterionLevel, GradeBand, ScorecardTemplate
from .signing import CycleSignature
from .tiers import Tier

# Every table, in dependency order (tests and tools iterate over it).
ALL_MODELS = [SchemaVersion, Branch, User, AuditEvent, Tier, ScorecardTemplate, Criterion,
              CriterionLevel, GradeBand, Customer, CustomerYear, Contact, Activity, TierHistory,
              ImportBatch, GradingCycle, CommitteeMember, Assessment, Score, CycleSignature,
              ReportJob]

__all__ = [
    "ALL_MODELS", "Activity", "Assessment", "AuditEvent", "CommitteeMember", "GradingCycle",
    "Score", "BaseModel", "Branch", "Contact", "Criterion",
    "CriterionLevel", "Customer", "CycleSignature", "CustomerYear", "DomainError", "GradeBand",
    "ImportBatch", "NotFound", "ReportJob", "ScorecardTemplate", "SchemaVersion", "Tier",
    "TierHistory", "User", "audit",
    "db", "utcnow", "write_transaction",
]
