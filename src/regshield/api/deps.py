"""Request plumbing: services, request context, the authenticated actor."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from regshield.flows.auth import StepUp
from regshield.flows.context import Actor, RequestContext
from regshield.flows.runner import run_flow
from regshield.security.authentication import actor_for_bearer
from regshield.services import Services

bearer = HTTPBearer(auto_error=False, description="An API token: `rs_...`")


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def context_of(request: Request) -> RequestContext:
    return RequestContext(
        channel="api",
        source_address=request.client.host if request.client else None,
        request_id=request.state.request_id,
    )


async def actor_of(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Actor:
    return await actor_for_bearer(services_of(request),
                                  credentials.credentials if credentials else None)


async def stepped_up_actor_of(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    x_otp: Annotated[str | None, Header(max_length=64, description=(
        "A one-time code for sensitive changes (step-up authentication)"))] = None,
) -> Actor:
    """The actor, with a second factor proved now when the request carries `X-OTP`."""
    actor = await actor_of(request, credentials)
    if x_otp is None:
        return actor
    return await run_flow(services_of(request), actor, context_of(request), StepUp(x_otp))


# FastAPI runs a plain `def` dependency in its thread pool: a thread hop per request for what
# is an attribute read. The dependencies are `async def` versions of the helpers above.


async def _services_dependency(request: Request) -> Services:
    return services_of(request)


async def _context_dependency(request: Request) -> RequestContext:
    return context_of(request)


ServicesDep = Annotated[Services, Depends(_services_dependency)]
ContextDep = Annotated[RequestContext, Depends(_context_dependency)]
ActorDep = Annotated[Actor, Depends(actor_of)]
SteppedUpActorDep = Annotated[Actor, Depends(stepped_up_actor_of)]
