"""Peewee models, one module per domain, with the rules that belong to them."""
from .allocation import AllocationRule, AllocationRuleManager
from .approvals import ApprovalRule, ApprovalStep, TierChangeRequest
from .audit import AuditEvent, audit
from .base import BaseModel, DomainError, NotFound, db, utcnow, write_transaction
from .compliance import ServiceStatus
from .customers import (
    Activity,
    Contact,
    Customer,
    CustomerValueClass,
    CustomerYear,
    ImportBatch,
    OwnershipChange,
    TierHistory,
)
from .cycles import Assessment, CommitteeMember, GradingCycle, Score
from .delegations import Delegation
from .funnel import Opportunity, StageMove
from .notices import Notice, NoticePreference, Robot
from .people import Branch, User
from .portfolio import PortfolioSetting
from .reports import ReportJob
from .schema import SchemaVersion
from .scorecards import Criterion, CriterionLevel, GradeBand, ScorecardTemplate
from .service_requests import ServiceRequest, WorkingHours
from .signing import CycleSignature
from .tiers import Tier, TierPolicy
from .value_classes import ValueClassRule

# Every table, in dependency order (tests and tools iterate over it).
ALL_MODELS = [SchemaVersion, Branch, User, AuditEvent, Tier, ScorecardTemplate, Criterion,
              CriterionLevel, GradeBand, Customer, CustomerYear, Contact, Activity, TierHistory,
              ImportBatch, GradingCycle, CommitteeMember, Assessment, Score,
              TierPolicy, ServiceStatus, ApprovalRule, TierChangeRequest, ApprovalStep,
              Opportunity, StageMove, CycleSignature, ReportJob, Robot, NoticePreference,
              Notice, Delegation, PortfolioSetting, ServiceRequest, ValueClassRule,
              CustomerValueClass, WorkingHours, AllocationRule, AllocationRuleManager,
              OwnershipChange]

__all__ = [
    "ALL_MODELS", "Activity", "AllocationRule", "AllocationRuleManager", "OwnershipChange",
    "ApprovalRule", "ApprovalStep", "Delegation", "ServiceStatus",
    "TierPolicy",
    "TierChangeRequest", "Assessment", "AuditEvent", "CommitteeMember", "GradingCycle",
    "Score", "BaseModel", "Branch", "Contact", "Criterion",
    "CriterionLevel", "Customer", "CustomerYear", "CycleSignature", "DomainError", "GradeBand",
    "ImportBatch", "NotFound", "Notice", "NoticePreference", "Opportunity", "PortfolioSetting",
    "Robot",
    "ReportJob", "ScorecardTemplate", "SchemaVersion", "ServiceRequest",
    "StageMove", "Tier",
    "TierHistory", "User", "CustomerValueClass", "ValueClassRule", "WorkingHours", "audit",
    "db", "utcnow", "write_transaction",
]
