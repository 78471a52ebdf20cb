"""Disclosure requests (Registration Data Policy §10): filing (signed in or not), the
requester's and staff's reads, acknowledgement and decision, and the portal's description of
the request format and timeline (`GET /api/v1/disclosure-requests/policy`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field

from regshield.api.deps import ActorDep, ContextDep, ServicesDep, bearer, services_of
from regshield.flows.context import ANONYMOUS, Actor
from regshield.flows.disclosure import (
    DisclosureAcknowledge,
    DisclosureDecide,
    DisclosureRequestCreate,
    DisclosureView,
    DisclosureWithdraw,
    business_calendar,
    disclosure_list,
    disclosure_read,
    policy_description,
)
from regshield.flows.runner import run_flow
from regshield.rules.contacts import MAX_EMAIL
from regshield.rules.disclosure import MAX_LONG_TEXT, MAX_NAME
from regshield.rules.names import MAX_INPUT
from regshield.security.authentication import actor_for_bearer

router = APIRouter(prefix="/disclosure-requests", tags=["disclosure"])
Reference = Annotated[str, Path(max_length=40)]
# Each field has its exact type and size (api/schemas.py); the rules check every value and
# report each failing one.
ShortText = Annotated[str | None, Field(default=None, max_length=MAX_NAME)]
LongText = Annotated[str | None, Field(default=None, max_length=MAX_LONG_TEXT)]
TextList = Annotated[list[Annotated[str, Field(max_length=64)]] | None,
                     Field(default=None, max_length=16)]


async def optional_actor(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Actor:
    """The signed-in actor, or the anonymous one when no credential is sent (a credential
    that does not authenticate is refused, never taken as anonymous)."""
    if credentials is None:
        return ANONYMOUS
    return await actor_for_bearer(services_of(request), credentials.credentials)


class DisclosureRequestIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    domain: str | None = Field(default=None, max_length=MAX_INPUT)
    requester_name: ShortText
    requester_email: str | None = Field(default=None, max_length=MAX_EMAIL)
    requester_organization: ShortText
    purpose: str | None = Field(default=None, max_length=64, description=(
        "law_enforcement, intellectual_property, cybersecurity_incident, consumer_protection, "
        "legal_claim or other"))
    purpose_detail: LongText = Field(default=None, description="required when purpose is other")
    legal_basis: LongText
    roles: TextList = Field(default=None, description="registrant and/or technical")
    fields: TextList = Field(default=None, description="the redacted fields asked for")


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: str = Field(max_length=16, description="approved or denied")
    rationale: str | None = Field(default=None, max_length=8000,
                                  description="Required for every decision; sent to the "
                                  "requester")
    expires_at: datetime | None = Field(default=None, description="approval only: when it "
                                        "ends (default 30 days)")
    roles: list[str] | None = Field(default=None, max_length=2,
                                    description="approval only: fewer roles than asked for")
    fields: list[str] | None = Field(default=None, max_length=20,
                                     description="approval only: fewer fields than asked for")


class RequesterOut(BaseModel):
    name: str
    email: str
    organization: str | None
    purpose_detail: str | None
    legal_basis: str


class DisclosureOut(BaseModel):
    id: str = Field(description="The request's reference")
    state: str = Field(description="received, acknowledged, approved, expired, denied or "
                       "withdrawn")
    domain: str
    purpose: str
    roles: list[str]
    fields: list[str]
    requester: RequesterOut
    requester_user: str | None = Field(description="The user the request is tied to; an "
                                       "approval needs one")
    received_at: datetime
    ack_due_at: datetime
    decision_due_at: datetime
    ack_overdue: bool
    decision_overdue: bool
    acknowledged_at: datetime | None
    decided_at: datetime | None
    rationale: str | None
    granted_roles: list[str]
    granted_fields: list[str] = Field(description="the fields the approval opens, of the "
                                      "roles granted")
    expires_at: datetime | None

    @classmethod
    def of(cls, view: DisclosureView) -> DisclosureOut:
        return cls(
            id=view.reference, state=view.status, domain=view.domain, purpose=view.purpose,
            roles=list(view.roles), fields=list(view.fields),
            requester=RequesterOut.model_validate(dict(view.requester)),
            requester_user=view.requester_user, received_at=view.received_at,
            ack_due_at=view.ack_due_at, decision_due_at=view.decision_due_at,
            ack_overdue=view.ack_overdue, decision_overdue=view.decision_overdue,
            acknowledged_at=view.acknowledged_at, decided_at=view.decided_at,
            rationale=view.rationale, granted_roles=list(view.granted_roles),
            granted_fields=list(view.granted_fields), expires_at=view.expires_at)


class DisclosureListOut(BaseModel):
    items: list[DisclosureOut]


@router.get("/policy")
async def policy(services: ServicesDep) -> dict[str, Any]:
    """The request format, how answers are given, and the timeline (public)."""
    return policy_description(business_calendar(services))


@router.post("", response_model=DisclosureOut, status_code=status.HTTP_201_CREATED)
async def create(body: DisclosureRequestIn, response: Response,
                 actor: Annotated[Actor, Depends(optional_actor)], services: ServicesDep,
                 context: ContextDep) -> DisclosureOut:
    view = await run_flow(services, actor, context,
                          DisclosureRequestCreate(body.model_dump(exclude_unset=True)))
    assert view is not None  # a refused filing raises once its record is committed
    response.headers["Location"] = f"/api/v1/disclosure-requests/{view.reference}"
    return DisclosureOut.of(view)


@router.get("", response_model=DisclosureListOut)
async def list_(actor: ActorDep, services: ServicesDep,
                overdue: Annotated[bool, Query(description="staff: only late requests")] = False,
                limit: Annotated[int, Query(ge=1, le=500)] = 100) -> DisclosureListOut:
    views = await disclosure_list(services, actor, overdue=overdue, limit=limit)
    return DisclosureListOut(items=[DisclosureOut.of(view) for view in views])


@router.get("/{reference}", response_model=DisclosureOut)
async def read(reference: Reference, actor: ActorDep, services: ServicesDep) -> DisclosureOut:
    return DisclosureOut.of(await disclosure_read(services, actor, reference))


@router.post("/{reference}/acknowledge", response_model=DisclosureOut)
async def acknowledge(reference: Reference, actor: ActorDep, services: ServicesDep,
                      context: ContextDep) -> DisclosureOut:
    return DisclosureOut.of(await run_flow(services, actor, context,
                                           DisclosureAcknowledge(reference)))


@router.post("/{reference}/decision", response_model=DisclosureOut)
async def decision(reference: Reference, body: DecisionIn, actor: ActorDep,
                   services: ServicesDep, context: ContextDep) -> DisclosureOut:
    return DisclosureOut.of(await run_flow(services, actor, context, DisclosureDecide(
        reference, body.model_dump(exclude_unset=True))))


@router.post("/{reference}/withdraw", response_model=DisclosureOut)
async def withdraw(reference: Reference, actor: ActorDep, services: ServicesDep,
                   context: ContextDep) -> DisclosureOut:
    return DisclosureOut.of(await run_flow(services, actor, context,
                                           DisclosureWithdraw(reference)))
