"""The registrant's consent to publish registration data (flows/consent.py)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from regshield.api.deps import ContextDep, ServicesDep, SteppedUpActorDep
from regshield.flows.consent import CONSENTABLE, PublishConsentSet
from regshield.flows.runner import run_flow

router = APIRouter(tags=["domains"])


class PublishConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fields: list[str] = Field(max_length=len(CONSENTABLE) * 2, description=(
        "Every registrant field to publish in RDAP and WHOIS; fields left out are withdrawn. "
        f"One of: {', '.join(CONSENTABLE)}."))


class PublishConsentOut(BaseModel):
    domain: str
    fields: dict[str, datetime] = Field(description="Each published field and when consent "
                                                    "was given")


@router.put("/domains/{name}/publish-consent", response_model=PublishConsentOut)
async def set_publish_consent(name: str, body: PublishConsentIn, actor: SteppedUpActorDep,
                              services: ServicesDep, context: ContextDep) -> PublishConsentOut:
    """Publish registrant fields that are otherwise redacted (needs `X-OTP` to give
    consent; withdrawing needs none)."""
    view = await run_flow(services, actor, context, PublishConsentSet(name, body.fields))
    return PublishConsentOut(domain=view.domain, fields={
        field: datetime.fromisoformat(when) for field, when in view.fields.items()})
