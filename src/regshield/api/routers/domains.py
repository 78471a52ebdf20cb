"""Domains: registration, renewal, nameservers, DS records, locks, transfer codes, transfers.

A change answers 201 (created) or 200 once the registry has confirmed it, 202 with the
pending operation when the registry has not answered yet (the outbox finishes it), and a
problem naming the field when the registry refused it; the domain then stays as it was.
Sensitive changes need a step-up: an `X-OTP` header with a current one-time code.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from regshield.api.deps import ActorDep, ContextDep, ServicesDep, SteppedUpActorDep
from regshield.api.schemas import (
    AvailabilityOut,
    ContactsIn,
    DomainIn,
    DomainListOut,
    DomainOut,
    DsIn,
    LockCredentialIn,
    NameserversIn,
    OperationOut,
    RegistrantIn,
    RegistrarLockIn,
    RegistryLockIn,
    RegistryLockRequestOut,
    RegistryLockVerifyIn,
    RenewIn,
    TransferCodeOut,
    TransferIn,
    TransferRejectIn,
)
from regshield.errors import NotFound
from regshield.flows.context import Actor, system_actor
from regshield.flows.domains import (
    ContactsSet,
    DomainDelete,
    DomainRegister,
    DomainRenew,
    DomainRestore,
    DsSet,
    NameserversSet,
    OperationView,
    RegistrantChange,
    RegistrarLockSet,
    Requested,
    TransferCodeIssue,
    TransferDecide,
    TransferRequest,
    domain_check,
    domain_list,
    domain_read,
)
from regshield.flows.operations import execute_all, refusal_error
from regshield.flows.registry_lock import (
    LockCredentialSet,
    RegistryLockApprove,
    RegistryLockCancel,
    RegistryLockCodeUndelivered,
    RegistryLockRequestCreate,
    RegistryLockVerify,
    masked,
)
from regshield.flows.runner import run_flow
from regshield.notify.lock_codes import send_lock_code
from regshield.registry.client import RegistryUnavailable
from regshield.registry.codec import Secret
from regshield.services import Services

router = APIRouter(tags=["domains"])
PENDING: dict[int | str, dict[str, Any]] = {
    202: {"description": "Accepted; the registry has not confirmed yet"}}


async def _answer(services: Services, actor: Actor, requested: Requested, response: Response,
                  *, created: bool = False, secret: Secret | None = None) -> DomainOut:
    """Run the operation the flow started and answer with the domain as it now stands."""
    if requested.operation is None:
        return DomainOut.of(requested.domain)
    operation = await execute_all(services, requested.operation, secret=secret)
    if operation.state == "refused":
        raise refusal_error(operation)
    if operation.state == "failed" and operation.kind in ("create", "transfer_request"):
        raise RegistryUnavailable("the registry could not be reached; nothing was changed, "
                                  "try again later")
    try:
        view = await domain_read(services, actor, requested.domain.name)
    except NotFound:  # it ended here: purged at once, or given to another registrar
        view = replace(requested.domain, state="ended", pending=[])
    confirmed = operation.state == "confirmed"
    response.status_code = (status.HTTP_201_CREATED if created else status.HTTP_200_OK) \
        if confirmed else status.HTTP_202_ACCEPTED
    return DomainOut.of(view, OperationView.of(operation))


@router.post("/domains", response_model=DomainOut, status_code=status.HTTP_201_CREATED,
             responses=PENDING)
async def register(body: DomainIn, response: Response, actor: ActorDep,
                   services: ServicesDep, context: ContextDep) -> DomainOut:
    requested = await run_flow(services, actor, context, DomainRegister(
        body.name, body.registrant, body.years, body.nameservers, body.tech, body.account))
    response.headers["Location"] = f"/api/v1/domains/{requested.domain.name}"
    return await _answer(services, actor, requested, response, created=True)


@router.get("/domains", response_model=DomainListOut)
async def list_(actor: ActorDep, services: ServicesDep,
                limit: Annotated[int, Query(ge=1, le=500)] = 100,
                after: Annotated[str, Query(max_length=253)] = "",
                account: Annotated[str | None, Query(max_length=100)] = None) -> DomainListOut:
    views = await domain_list(services, actor, limit=limit, after=after, account=account)
    return DomainListOut(items=[DomainOut.of(v) for v in views],
                         next_after=views[-1].name if len(views) == limit else None)


@router.get("/availability", response_model=list[AvailabilityOut])
async def availability(actor: ActorDep, services: ServicesDep,
                       name: Annotated[list[str], Query(max_length=50)]
                       ) -> list[AvailabilityOut]:
    return [AvailabilityOut(name=a.name, available=a.available, reason=a.reason)
            for a in await domain_check(services, actor, name)]


@router.get("/domains/{name}", response_model=DomainOut)
async def read(name: str, actor: ActorDep, services: ServicesDep) -> DomainOut:
    return DomainOut.of(await domain_read(services, actor, name))


@router.post("/domains/{name}/renew", response_model=DomainOut,
             responses=PENDING)
async def renew(name: str, body: RenewIn, response: Response, actor: ActorDep,
                services: ServicesDep, context: ContextDep) -> DomainOut:
    requested = await run_flow(services, actor, context, DomainRenew(name, body.years))
    return await _answer(services, actor, requested, response)


@router.put("/domains/{name}/nameservers", response_model=DomainOut,
            responses=PENDING)
async def set_nameservers(name: str, body: NameserversIn, response: Response,
                          actor: SteppedUpActorDep, services: ServicesDep,
                          context: ContextDep) -> DomainOut:
    requested = await run_flow(services, actor, context, NameserversSet(name, body.nameservers))
    return await _answer(services, actor, requested, response)


@router.put("/domains/{name}/registrant", response_model=DomainOut,
            responses=PENDING)
async def set_registrant(name: str, body: RegistrantIn, response: Response,
                         actor: SteppedUpActorDep, services: ServicesDep,
                         context: ContextDep) -> DomainOut:
    """Change of registrant (step-up); a 60-day transfer lock follows unless opted out."""
    requested = await run_flow(services, actor, context, RegistrantChange(
        name, body.registrant, body.opt_out_of_transfer_lock))
    return await _answer(services, actor, requested, response)


@router.put("/domains/{name}/contacts", response_model=DomainOut,
            responses=PENDING)
async def set_contacts(name: str, body: ContactsIn, response: Response, actor: ActorDep,
                       services: ServicesDep, context: ContextDep) -> DomainOut:
    """Set or remove the tech contact."""
    requested = await run_flow(services, actor, context, ContactsSet(name, body.tech))
    return await _answer(services, actor, requested, response)


@router.put("/domains/{name}/ds", response_model=DomainOut,
            responses=PENDING)
async def set_ds(name: str, body: DsIn, response: Response, actor: SteppedUpActorDep,
                 services: ServicesDep, context: ContextDep) -> DomainOut:
    requested = await run_flow(services, actor, context,
                               DsSet(name, body.ds, force=body.force))
    return await _answer(services, actor, requested, response)


@router.post("/domains/{name}/registrar-lock", response_model=DomainOut)
async def lock(name: str, response: Response, actor: SteppedUpActorDep, services: ServicesDep,
               context: ContextDep, body: RegistrarLockIn | None = None) -> DomainOut:
    update_lock = body.update_lock if body else None
    requested = await run_flow(services, actor, context,
                               RegistrarLockSet(name, True, update_lock))
    return await _answer(services, actor, requested, response)


@router.delete("/domains/{name}/registrar-lock", response_model=DomainOut)
async def unlock(name: str, response: Response, actor: SteppedUpActorDep,
                 services: ServicesDep, context: ContextDep) -> DomainOut:
    requested = await run_flow(services, actor, context, RegistrarLockSet(name, False))
    return await _answer(services, actor, requested, response)


@router.post("/domains/{name}/transfer-code", response_model=TransferCodeOut,
             status_code=status.HTTP_201_CREATED)
async def transfer_code(name: str, actor: SteppedUpActorDep, services: ServicesDep,
                        context: ContextDep) -> TransferCodeOut:
    """A new transfer code, set at the registry, shown once. Nothing is shown unless the
    registry confirmed it."""
    issued = await run_flow(services, actor, context, TransferCodeIssue(name))
    assert issued.requested.operation is not None
    operation = await execute_all(services, issued.requested.operation, secret=issued.code)
    if operation.state == "refused":
        raise refusal_error(operation)
    if operation.state != "confirmed":
        raise RegistryUnavailable("the registry did not confirm the code; no code was issued, "
                                  "try again later")
    return TransferCodeOut(code=issued.code.reveal(), expires_at=issued.expires_at,
                           operation=OperationOut.of(OperationView.of(operation)))


@router.post("/transfers", response_model=DomainOut, status_code=status.HTTP_201_CREATED,
             responses={202: {"description": "Requested; the current registrar or the "
                                             "registry has yet to approve"}})
async def transfer_in(body: TransferIn, response: Response, actor: ActorDep,
                      services: ServicesDep, context: ContextDep) -> DomainOut:
    code = Secret(body.auth_code)
    requested = await run_flow(services, actor, context,
                               TransferRequest(body.name, code, body.account,
                                               body.registrant))
    answer = await _answer(services, actor, requested, response, created=True, secret=code)
    if answer.state == "pending_transfer_in":
        response.status_code = status.HTTP_202_ACCEPTED
    return answer


@router.delete("/domains/{name}", response_model=DomainOut,
               responses=PENDING)
async def delete(name: str, response: Response, actor: SteppedUpActorDep,
                 services: ServicesDep, context: ContextDep) -> DomainOut:
    """Delete (step-up). Where the registry keeps a redemption period, the domain stays in
    pending_delete and can be restored; otherwise it is gone (404 afterwards)."""
    requested = await run_flow(services, actor, context, DomainDelete(name))
    return await _answer(services, actor, requested, response)


@router.post("/domains/{name}/restore", response_model=DomainOut,
             responses=PENDING)
async def restore(name: str, response: Response, actor: ActorDep, services: ServicesDep,
                  context: ContextDep) -> DomainOut:
    requested = await run_flow(services, actor, context, DomainRestore(name))
    return await _answer(services, actor, requested, response)


@router.post("/domains/{name}/transfer/approve", response_model=DomainOut,
             responses=PENDING)
async def approve_transfer(name: str, response: Response, actor: SteppedUpActorDep,
                           services: ServicesDep, context: ContextDep) -> DomainOut:
    """Let another registrar take the domain now (step-up)."""
    requested = await run_flow(services, actor, context, TransferDecide(name, approve=True))
    return await _answer(services, actor, requested, response)


@router.post("/domains/{name}/transfer/reject", response_model=DomainOut,
             responses=PENDING)
async def reject_transfer(name: str, body: TransferRejectIn, response: Response,
                          actor: ActorDep, services: ServicesDep,
                          context: ContextDep) -> DomainOut:
    """Refuse another registrar's transfer request, for one of the Transfer Policy's reasons."""
    requested = await run_flow(services, actor, context,
                               TransferDecide(name, approve=False, reason=body.reason))
    return await _answer(services, actor, requested, response)


# --- registry lock -------------------------------------------------------------------------


@router.put("/me/registry-lock", status_code=status.HTTP_204_NO_CONTENT)
async def set_lock_credential(body: LockCredentialIn, actor: SteppedUpActorDep,
                              services: ServicesDep, context: ContextDep) -> None:
    """Your registry-lock credential: its own password and the address codes go to
    (step-up)."""
    await run_flow(services, actor, context,
                   LockCredentialSet(body.lock_email, Secret(body.lock_password)))


@router.post("/domains/{name}/registry-lock", response_model=RegistryLockRequestOut,
             status_code=status.HTTP_202_ACCEPTED)
async def request_registry_lock(name: str, body: RegistryLockIn, actor: ActorDep,
                                services: ServicesDep,
                                context: ContextDep) -> RegistryLockRequestOut:
    """Ask to lock or unlock at the registry. A verification code goes to your lock address;
    redeem it with POST /registry-lock/verify within the hour."""
    issued = await run_flow(services, actor, context, RegistryLockRequestCreate(
        name, body.action, Secret(body.lock_password), body.relock_after_hours))
    assert issued is not None
    try:
        await send_lock_code(services.settings, services.clock, issued.request,
                             issued.code.reveal(), issued.domain, issued.send_to)
    except Exception as exc:
        await run_flow(services, system_actor("registry-lock"), context,
                       RegistryLockCancel(issued.request.public_id))
        raise RegistryLockCodeUndelivered(
            "the verification code could not be sent; the request was cancelled") from exc
    return RegistryLockRequestOut(
        request=issued.request.public_id, domain=issued.domain,
        action=str(issued.request.action), expires_at=issued.request.expires_at,
        needs_approval=issued.request.needs_approval, sent_to=masked(issued.send_to))


async def _lock_answer(services: Services, actor: Actor, requested: Requested,
                       response: Response) -> DomainOut:
    if requested.operation is None:  # waits for approval (or the code) still
        response.status_code = status.HTTP_202_ACCEPTED
        return DomainOut.of(requested.domain)
    return await _answer(services, actor, requested, response)


@router.post("/registry-lock/verify", response_model=DomainOut,
             responses={202: {"description": "Verified; waits for approval or the registry"}})
async def verify_registry_lock(body: RegistryLockVerifyIn, response: Response,
                               actor: ActorDep, services: ServicesDep,
                               context: ContextDep) -> DomainOut:
    requested = await run_flow(services, actor, context,
                               RegistryLockVerify(body.code, body.request))
    return await _lock_answer(services, actor, requested, response)


@router.post("/registry-lock/{request_id}/approve", response_model=DomainOut,
             responses={202: {"description": "Approved; waits for the code or the registry"}})
async def approve_registry_lock(request_id: str, response: Response, actor: ActorDep,
                                services: ServicesDep, context: ContextDep) -> DomainOut:
    requested = await run_flow(services, actor, context, RegistryLockApprove(request_id))
    return await _lock_answer(services, actor, requested, response)
