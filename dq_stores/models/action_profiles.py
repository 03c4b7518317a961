"""Action profiles: what happens after a DQ run (notify, store results, lineage, webhook, ticket)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from dq_stores.models.common import CanonicalModel, Id, JsonMap

__all__ = ["ActionConfig", "ActionProfile", "ActionProfileStatus", "ActionType"]


class ActionType(StrEnum):
    STORE_RESULTS = "STORE_RESULTS"
    SEND_NOTIFICATION = "SEND_NOTIFICATION"
    EMIT_LINEAGE = "EMIT_LINEAGE"
    CALL_WEBHOOK = "CALL_WEBHOOK"
    OPEN_TICKET = "OPEN_TICKET"


class ActionProfileStatus(StrEnum):
    ACTIVE = "active"
    RETIRED = "retired"


class ActionConfig(CanonicalModel):
    action_type: ActionType
    parameters: JsonMap = Field(default_factory=dict)
    """Free-form; secrets are never stored here, only the names of environment variables."""


class ActionProfile(CanonicalModel):
    action_profile_id: Id
    name: str = Field(min_length=1, max_length=512)
    tenant_id: Id
    environment: Id
    version: Id
    description: str | None = None
    actions: list[ActionConfig] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    metadata: JsonMap = Field(default_factory=dict)
    status: ActionProfileStatus = ActionProfileStatus.ACTIVE

    @property
    def artifact_id(self) -> str:
        return self.action_profile_id

    @property
    def is_retired(self) -> bool:
        return self.status == ActionProfileStatus.RETIRED

    @property
    def status_value(self) -> str:
        return ActionProfileStatus(self.status).value

    @property
    def action_types(self) -> list[str]:
        return sorted({ActionType(a.action_type).value for a in self.actions})
