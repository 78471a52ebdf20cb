"""Sign-in, second factors and API tokens."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status

from regshield.api.deps import ActorDep, ContextDep, ServicesDep
from regshield.api.schemas import (
    LoginIn,
    OtpIn,
    PasswordChangeIn,
    ProofIn,
    RecoveryCodesOut,
    TokenCreateIn,
    TokenInfoOut,
    TokenOut,
    TotpEnrollOut,
)
from regshield.flows.auth import (
    PasswordChange,
    RecoveryCodesRegenerate,
    TokenCreate,
    TokenRevoke,
    TotpConfirm,
    TotpEnroll,
    TotpRemove,
    UserLogin,
    token_list,
)
from regshield.flows.context import ANONYMOUS
from regshield.flows.runner import run_flow

router = APIRouter(tags=["authentication"])
LOGIN_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "Wrong email, password or one-time code"},
    429: {"description": "Too many failed attempts; see Retry-After"},
}


@router.post("/auth/login", response_model=TokenOut, responses=LOGIN_RESPONSES)
async def login(body: LoginIn, services: ServicesDep, context: ContextDep) -> TokenOut:
    issued = await run_flow(services, ANONYMOUS, context,
                            UserLogin(body.email, body.password, body.otp, "api"))
    assert issued is not None
    return TokenOut(token=issued.value, token_id=issued.public_id, expires_at=issued.expires_at)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT, responses={
    204: {"description": "The calling token is revoked"}})
async def logout(actor: ActorDep, services: ServicesDep, context: ContextDep) -> None:
    """Sign out: revoke the token (or console session) that made this request. It is revoked
    at once and for good: every later request with it answers 401 `authentication-failed`,
    so do not retry a logout, and do not reuse the token; sign in again for a new one."""
    await run_flow(services, actor, context, TokenRevoke(None))


FACTOR_RESPONSES: dict[int | str, dict[str, Any]] = {
    **LOGIN_RESPONSES,
    403: {"description": "An API token: only a console session or a login token may manage "
                         "passwords and second factors"},
}


@router.post("/auth/mfa/totp", response_model=TotpEnrollOut, responses=FACTOR_RESPONSES)
async def totp_enroll(body: ProofIn, actor: ActorDep, services: ServicesDep,
                      context: ContextDep) -> TotpEnrollOut:
    """Start enrolling (or replacing) the one-time code generator: the password, and a
    current code or a recovery code when one is enrolled."""
    enrollment = await run_flow(services, actor, context, TotpEnroll(body.password, body.otp))
    assert enrollment is not None
    return TotpEnrollOut(secret=enrollment.secret, uri=enrollment.uri)


@router.post("/auth/mfa/totp/remove", status_code=status.HTTP_204_NO_CONTENT,
             responses=FACTOR_RESPONSES)
async def totp_remove(body: ProofIn, actor: ActorDep, services: ServicesDep,
                      context: ContextDep) -> None:
    """Turn the one-time code generator off: the password and a current code or a recovery
    code."""
    await run_flow(services, actor, context, TotpRemove(body.password, body.otp))


@router.post("/auth/mfa/recovery-codes", response_model=RecoveryCodesOut,
             responses=FACTOR_RESPONSES)
async def recovery_codes_regenerate(body: ProofIn, actor: ActorDep, services: ServicesDep,
                                    context: ContextDep) -> RecoveryCodesOut:
    """Replace the recovery codes: the password and a current code or a recovery code."""
    codes = await run_flow(services, actor, context,
                           RecoveryCodesRegenerate(body.password, body.otp))
    assert codes is not None
    return RecoveryCodesOut(recovery_codes=codes)


@router.post("/auth/password", status_code=status.HTTP_204_NO_CONTENT,
             responses=FACTOR_RESPONSES)
async def password_change(body: PasswordChangeIn, actor: ActorDep, services: ServicesDep,
                          context: ContextDep) -> None:
    """Change the password: the current one and, when enrolled, a one-time code. Every other
    token and session of the user is revoked."""
    await run_flow(services, actor, context,
                   PasswordChange(body.current_password, body.new_password, body.otp))


@router.post("/auth/mfa/totp/confirm", response_model=RecoveryCodesOut)
async def totp_confirm(body: OtpIn, actor: ActorDep, services: ServicesDep,
                       context: ContextDep) -> RecoveryCodesOut:
    codes = await run_flow(services, actor, context, TotpConfirm(body.otp))
    return RecoveryCodesOut(recovery_codes=codes)


@router.get("/tokens", response_model=list[TokenInfoOut])
async def tokens(actor: ActorDep, services: ServicesDep) -> list[TokenInfoOut]:
    return [
        TokenInfoOut(token_id=t.public_id, name=t.name, kind=t.kind, scopes=t.scopes,
                     created_at=t.created_at, expires_at=t.expires_at, revoked_at=t.revoked_at,
                     last_used_at=t.last_used_at)
        for t in await token_list(services, actor)
    ]


@router.post("/tokens", response_model=TokenOut, status_code=status.HTTP_201_CREATED)
async def token_create(body: TokenCreateIn, actor: ActorDep, services: ServicesDep,
                       context: ContextDep) -> TokenOut:
    issued = await run_flow(services, actor, context, TokenCreate(
        None, body.name, body.expires_days, tuple(body.scopes)))
    return TokenOut(token=issued.value, token_id=issued.public_id, expires_at=issued.expires_at)


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
async def token_revoke(token_id: str, actor: ActorDep, services: ServicesDep,
                       context: ContextDep) -> None:
    await run_flow(services, actor, context, TokenRevoke(token_id))
