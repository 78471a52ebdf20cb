"""Contacts: registrant and tech registration data."""

from __future__ import annotations

import contextlib
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from regshield.api.deps import ActorDep, ContextDep, ServicesDep, SteppedUpActorDep
from regshield.api.schemas import (
    ContactIn,
    ContactListOut,
    ContactOut,
    ContactPatch,
    ContactUpdateOut,
    OperationOut,
)
from regshield.flows.contacts import (
    ContactCreate,
    ContactDelete,
    ContactUpdate,
    contact_list,
    contact_read,
)
from regshield.flows.domains import operations_read
from regshield.flows.operations import OperationBusy, execute_all
from regshield.flows.runner import run_flow

router = APIRouter(prefix="/contacts", tags=["contacts"])


@router.post("", response_model=ContactOut, status_code=status.HTTP_201_CREATED)
async def create(body: ContactIn, response: Response, actor: ActorDep, services: ServicesDep,
                 context: ContextDep) -> ContactOut:
    fields = body.model_dump(exclude={"account"}, exclude_none=True)
    view = await run_flow(services, actor, context, ContactCreate(fields, body.account))
    response.headers["Location"] = f"/api/v1/contacts/{view.handle}"
    return ContactOut.of(view)


@router.get("", response_model=ContactListOut)
async def list_(actor: ActorDep, services: ServicesDep, context: ContextDep,
                limit: Annotated[int, Query(ge=1, le=500)] = 100,
                after: Annotated[str | None, Query(max_length=16)] = None,
                account: Annotated[str | None, Query(max_length=100)] = None) -> ContactListOut:
    views = await contact_list(services, actor, limit=limit, after=after, account=account,
                               context=context)
    return ContactListOut(items=[ContactOut.of(v) for v in views],
                          next_after=views[-1].handle if len(views) == limit else None)


@router.get("/{handle}", response_model=ContactOut)
async def read(handle: str, actor: ActorDep, services: ServicesDep,
               context: ContextDep) -> ContactOut:
    return ContactOut.of(await contact_read(services, actor, handle, context=context))


@router.patch("/{handle}", response_model=ContactUpdateOut)
async def update(handle: str, body: ContactPatch, actor: SteppedUpActorDep,
                 services: ServicesDep, context: ContextDep) -> ContactUpdateOut:
    """Edit a contact. A change of the name, organization or email of a live domain's
    registrant is a change of registrant: it needs a step-up (`X-OTP`), and locks transfers
    for 60 days unless `opt_out_of_transfer_lock`. Registries that hold the contact are sent
    the new data before the answer (or later by the outbox, when one cannot be reached)."""
    changes = body.model_dump(exclude_unset=True, exclude={"opt_out_of_transfer_lock"})
    view = await run_flow(services, actor, context, ContactUpdate(
        handle, changes, opt_out_of_transfer_lock=body.opt_out_of_transfer_lock))
    for operation in view.operations:
        with contextlib.suppress(OperationBusy):  # the outbox worker has it
            await execute_all(services, operation)
    settled = await operations_read(services, view.operations)
    return ContactUpdateOut(**ContactOut.of(view).model_dump(),
                            registry_operations=[OperationOut.of(o) for o in settled])


@router.delete("/{handle}", status_code=status.HTTP_204_NO_CONTENT)
async def delete(handle: str, actor: ActorDep, services: ServicesDep,
                 context: ContextDep) -> None:
    await run_flow(services, actor, context, ContactDelete(handle))
