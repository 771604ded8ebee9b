"""Peewee models, one module per domain, with the rules that belong to them."""
from .audit import AuditEvent, audit
from .base import BaseModel, DomainError, NotFound, db, utcnow, write_transaction
from .customers import Customer, CustomerYear
from .people import Branch, User
from .schema import SchemaVersion
from .scorecards import Criterion, CriterionLevel, GradeBand, ScorecardTemplate
from .tiers import Tier

# Every table, in dependency order (tests and tools iterate over it).
ALL_MODELS = [SchemaVersion, Branch, User, AuditEvent, Tier, ScorecardTemplate, Criterion,
              CriterionLevel, GradeBand, Customer, CustomerYear]

__all__ = ["ALL_MODELS", "AuditEvent", "BaseModel", "Branch", "Criterion", "CriterionLevel",
           "Customer", "CustomerYear", "DomainError", "GradeBand", "NotFound",
           "ScorecardTemplate", "SchemaVersion", "Tier", "User", "audit", "db", "utcnow",
           "write_transaction"]
