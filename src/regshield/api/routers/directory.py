"""The registrar, its accounts and users."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from regshield.api.deps import ActorDep, ContextDep, ServicesDep
from regshield.api.schemas import (
    MAX_SEQUENCE,
    AccountIn,
    AccountOut,
    InvitationAcceptIn,
    InvitationOut,
    RegistrarOut,
    RegistrarPatch,
    UserIn,
    UserOut,
)
from regshield.flows.accounts import AccountCreate, account_list, account_read
from regshield.flows.context import ANONYMOUS
from regshield.flows.registrar import RegistrarUpdate, registrar_read
from regshield.flows.runner import run_flow
from regshield.flows.users import InvitationAccept, UserCreate, UserInvite, user_profile

router = APIRouter(tags=["directory"])


@router.get("/registrar", response_model=RegistrarOut)
async def registrar(actor: ActorDep, services: ServicesDep) -> RegistrarOut:
    return RegistrarOut.model_validate(await registrar_read(services, actor), from_attributes=True)


@router.patch("/registrar", response_model=RegistrarOut)
async def registrar_update(body: RegistrarPatch, actor: ActorDep, services: ServicesDep,
                           context: ContextDep) -> RegistrarOut:
    record = await run_flow(services, actor, context, RegistrarUpdate(**body.model_dump()))
    return RegistrarOut.model_validate(record, from_attributes=True)


@router.post("/accounts", response_model=AccountOut, status_code=status.HTTP_201_CREATED)
async def account_create(body: AccountIn, actor: ActorDep, services: ServicesDep,
                         context: ContextDep) -> AccountOut:
    return AccountOut.of(await run_flow(services, actor, context, AccountCreate(body.name)))


@router.get("/accounts", response_model=list[AccountOut])
async def accounts(actor: ActorDep, services: ServicesDep,
                   limit: Annotated[int, Query(ge=1, le=500)] = 100,
                   offset: Annotated[int, Query(ge=0, le=MAX_SEQUENCE)] = 0
                   ) -> list[AccountOut]:
    return [AccountOut.of(a) for a in await account_list(services, actor, limit, offset)]


@router.get("/accounts/{account_id}", response_model=AccountOut)
async def account(account_id: str, actor: ActorDep, services: ServicesDep) -> AccountOut:
    return AccountOut.of(await account_read(services, actor, account_id))


@router.post("/users", response_model=UserOut | InvitationOut,
             status_code=status.HTTP_201_CREATED, responses={
                 202: {"model": InvitationOut, "description": (
                     "A customer's request: an invitation is mailed, the same answer whether "
                     "or not the address already has a user")}})
async def user_create(body: UserIn, actor: ActorDep, services: ServicesDep,
                      context: ContextDep, response: Response) -> UserOut | InvitationOut:
    """Staff create users directly; an account's owner invites them by email."""
    if actor.kind == "customer":
        invited = await run_flow(services, actor, context, UserInvite(
            body.email, body.role, body.account, password_given=body.password is not None))
        response.status_code = status.HTTP_202_ACCEPTED
        return InvitationOut(invitation_id=invited.invitation, email=invited.email,
                             role=invited.role, account=invited.account,
                             expires_at=invited.expires_at)
    created = await run_flow(services, actor, context,
                             UserCreate(body.email, body.password or "", body.role, body.account))
    return UserOut.of(created.user, created.account, created.email)


@router.post("/invitations/accept", response_model=UserOut,
             status_code=status.HTTP_201_CREATED)
async def invitation_accept(body: InvitationAcceptIn, services: ServicesDep,
                            context: ContextDep) -> UserOut:
    """Become the user an invitation offers, with a password of one's own."""
    created = await run_flow(services, ANONYMOUS, context,
                             InvitationAccept(body.token, body.password))
    return UserOut.of(created.user, created.account, created.email)


@router.get("/me", response_model=UserOut)
async def me(actor: ActorDep, services: ServicesDep) -> UserOut:
    profile = await user_profile(services, actor)
    return UserOut.of(profile.user, profile.account, profile.email)
