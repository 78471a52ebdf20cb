"""Signing in: passwords, second factors, login throttling, API tokens and console sessions."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from regshield.clock import as_utc
from regshield.errors import (
    AuthenticationFailed,
    Conflict,
    FieldError,
    NotFound,
    PermissionDenied,
    SecondFactorRequired,
    StepUpRequired,
    Throttled,
    ValidationFailed,
)
from regshield.flows.context import Actor, RequestContext
from regshield.flows.runner import Tx
from regshield.flows.users import email_index, user_email
from regshield.security import totp
from regshield.security.keyring import KeyRing
from regshield.security.passwords import hash_password, needs_rehash, verify_password
from regshield.security.permissions import permissions_for, valid_scope
from regshield.security.step_up import STEP_UP_SCOPE
from regshield.security.tokens import (
    API_TOKEN_PREFIX,
    SESSION_PREFIX,
    new_credential,
    new_public_id,
)
from regshield.services import Services
from regshield.store.models import ApiToken, ConsoleSession, RecoveryCode, ThrottleCounter, User
from regshield.store.queries.accounts import public_ids
from regshield.store.queries.users import (
    delete_recovery_codes,
    session_by_hash,
    throttle_counter_values,
    throttle_counters,
    token_by_public_id,
    tokens_of_user,
    unused_recovery_codes,
    user_by_email_index,
    user_by_public_id,
)

ISSUER = "regshield"
Credential = Literal["api", "console"]


@dataclass(frozen=True)
class IssuedCredential:
    """A secret shown once: an API token or a console session value."""

    value: str
    public_id: str
    expires_at: datetime


def totp_binding(user: User, slot: str) -> str:
    return f"users:{user.public_id}:{slot}"


def recovery_code_hash(tx: Tx, code: str) -> str:
    return tx.services.keyring.index("recovery-code", totp.normalize_recovery_code(code))


@dataclass(frozen=True)
class PasswordCheck:
    """The outcome of the (slow) password check, made before the login's transaction."""

    user_id: int | None
    password_hash: str | None
    matched: bool


def _throttle_keys(keyring: KeyRing, email: str, context: RequestContext) -> list[str]:
    return [
        "login:user:" + keyring.index("login-user", email.strip().lower()),
        "login:address:" + keyring.index("login-address", context.source_address or "-"),
    ]


def _block_ends(counters: Iterable[ThrottleCounter], now: datetime) -> datetime | None:
    ends = [as_utc(c.blocked_until) for c in counters
            if c.blocked_until and as_utc(c.blocked_until) > now]
    return max(ends) if ends else None


@dataclass(frozen=True)
class UserLogin:
    """Check email, password and (when enrolled) a one-time code; issue a credential.

    Every attempt leaves an event. Failures count per user and per source address; at the
    policy's limit further attempts are refused until the block ends.
    Raises Throttled, AuthenticationFailed, SecondFactorRequired.
    """

    email: str
    password: str
    otp: str | None = None
    credential: Credential = "api"

    async def prepare(self, services: Services, context: RequestContext) -> PasswordCheck | None:
        """Check the password outside the write transaction (argon2 takes tens of ms); skip it
        when the attempt is throttled anyway, so that a blocked attacker costs nothing."""
        keyring = services.keyring
        async with services.store.read() as session:
            counters = await throttle_counter_values(
                session, _throttle_keys(keyring, self.email, context))
            if _block_ends(counters, services.clock.now()) is not None:
                return None
            user = await user_by_email_index(session, email_index(keyring, self.email))
        password_hash = user.password_hash if user else None
        matched = await asyncio.to_thread(verify_password, password_hash, self.password)
        return PasswordCheck(user.id if user else None, password_hash, matched)

    async def run(self, tx: Tx) -> IssuedCredential | None:
        policy = tx.security
        keyring = tx.services.keyring
        keys = _throttle_keys(keyring, self.email, tx.context)
        counters = await throttle_counters(tx.session, keys, tx.now)
        block_end = _block_ends(counters.values(), tx.now)
        if block_end is not None:
            tx.record("auth:login:throttled", credential=self.credential)
            tx.refuse(Throttled(int((block_end - tx.now).total_seconds()) + 1))
            return None

        user = await user_by_email_index(tx.session, email_index(keyring, self.email))
        check: PasswordCheck | None = tx.prepared
        if check is None or (user.id if user else None, user.password_hash if user else None) \
                != (check.user_id, check.password_hash):
            # Blocked when prepared, or the password changed meanwhile: check it here.
            check = PasswordCheck(None, None, await asyncio.to_thread(
                verify_password, user.password_hash if user else None, self.password))
        if user is None or not check.matched or user.disabled_at is not None:
            self._fail(tx, counters, user, "bad_credentials")
            return None

        method = "password"
        second_factor_at = None
        if user.totp_enabled_at is not None:
            if not self.otp:
                tx.record("auth:login:failed", actor=await self._actor(tx, user),
                          reason="second_factor_missing", credential=self.credential)
                tx.refuse(SecondFactorRequired("this account needs a one-time code (otp)"))
                return None
            outcome = await check_second_factor(tx, user, self.otp)
            if outcome is not None:
                self._fail(tx, counters, user, outcome)
                return None
            method = "password+recovery_code" if totp.looks_like_recovery_code(self.otp) \
                else "password+totp"
            second_factor_at = tx.now

        counters[keys[0]].failures = 0
        counters[keys[0]].blocked_until = None
        user.last_login_at = tx.now
        if needs_rehash(user.password_hash):
            user.password_hash = await asyncio.to_thread(hash_password, self.password)
        issued = (
            await _issue_token(tx, user, name="login", kind="login",
                               lifetime=policy.login_token_lifetime, scopes=["*"],
                               second_factor_at=second_factor_at)
            if self.credential == "api"
            else _issue_session(tx, user, second_factor_at)
        )
        tx.record("auth:login:succeeded", actor=await self._actor(tx, user), method=method,
                  credential=self.credential, issued=issued.public_id)
        return issued

    def _fail(self, tx: Tx, counters: dict[str, ThrottleCounter], user: User | None,
              reason: str) -> None:
        policy = tx.security
        limits = {"user": policy.login_failures_per_user,
                  "address": policy.login_failures_per_address}
        for key, counter in counters.items():
            if as_utc(counter.window_start) + policy.login_window <= tx.now:
                counter.window_start, counter.failures = tx.now, 0
            counter.failures += 1
            if counter.failures >= limits[key.split(":")[1]]:
                counter.blocked_until = tx.now + policy.login_block
        tx.record("auth:login:failed", reason=reason, credential=self.credential,
                  user=user.public_id if user else None)
        tx.refuse(AuthenticationFailed("email, password or one-time code is wrong"))

    @staticmethod
    async def _actor(tx: Tx, user: User) -> Actor:
        account = (await public_ids(tx.session, {user.account_id})).get(user.account_id) \
            if user.account_id else None
        return Actor(kind="staff" if user.kind == "staff" else "customer", user_id=user.id,
                     user_public_id=user.public_id, role=user.role, account_id=user.account_id,
                     account_public_id=account)


async def check_second_factor(tx: Tx, user: User, code: str) -> str | None:
    """None when the code (TOTP or recovery code) is accepted, else the reason it was not.
    An accepted TOTP counter is kept, so the same code is never accepted twice."""
    if totp.looks_like_recovery_code(code):
        wanted = recovery_code_hash(tx, code)
        for stored in await unused_recovery_codes(tx.session, user.id):
            if stored.code_hash == wanted:
                stored.used_at = tx.now
                return None
        return "recovery_code_invalid"
    assert user.totp_secret_sealed is not None
    data_key = await tx.sealer.data_key(tx.session, user.data_key_id)
    secret = tx.sealer.open(data_key, user.totp_secret_sealed,
                            totp_binding(user, "totp")).decode()
    check = totp.check_code(secret, code, tx.now, user.totp_last_counter)
    if check.outcome is totp.TotpOutcome.ACCEPTED:
        user.totp_last_counter = check.counter
        return None
    return "totp_replayed" if check.outcome is totp.TotpOutcome.REPLAYED else "totp_invalid"


async def _issue_token(tx: Tx, user: User, *, name: str, kind: str, lifetime: timedelta,
                       scopes: list[str], second_factor_at: datetime | None) -> IssuedCredential:
    value, digest = new_credential(API_TOKEN_PREFIX)
    token = ApiToken(
        public_id=new_public_id("tok"), token_hash=digest, user_id=user.id, name=name, kind=kind,
        scopes=scopes, created_at=tx.now, expires_at=tx.now + lifetime,
        second_factor_at=second_factor_at,
    )
    tx.session.add(token)
    await tx.session.flush()
    return IssuedCredential(value, token.public_id, token.expires_at)


def _issue_session(tx: Tx, user: User, second_factor_at: datetime | None) -> IssuedCredential:
    value, digest = new_credential(SESSION_PREFIX)
    policy = tx.security
    session = ConsoleSession(
        session_hash=digest, user_id=user.id, created_at=tx.now, last_seen_at=tx.now,
        expires_at=tx.now + policy.console_session_absolute, second_factor_at=second_factor_at,
    )
    tx.session.add(session)
    return IssuedCredential(value, "session", session.expires_at)


async def _acting_user(tx: Tx, permission: str) -> User:
    tx.actor.require_self(permission)
    assert tx.actor.user_id is not None
    user = await tx.session.get(User, tx.actor.user_id)
    if user is None:
        raise NotFound("no such user")
    return user


@dataclass(frozen=True)
class StepUp:
    """Prove a second factor for the credential in use (the `X-OTP` header): the request then
    runs with `second_factor_at` = now, and the token or console session remembers it for the
    step-up window (security/step_up.py). A wrong or replayed code counts toward the same
    per-user throttle as failed logins and leaves an event.

    Raises StepUpRequired (the user has no one-time code generator, or the credential may not
    step up), Throttled, AuthenticationFailed.
    """

    otp: str
    session_hash: str | None = None  # the console session, when the actor came from one

    async def run(self, tx: Tx) -> Actor:
        if not tx.actor.step_up_allowed or tx.actor.user_id is None:
            raise StepUpRequired(f"this credential cannot step up; create a token with the "
                                 f"scope {STEP_UP_SCOPE}")
        user = await tx.session.get(User, tx.actor.user_id)
        if user is None or user.totp_enabled_at is None:
            raise StepUpRequired("enrol a one-time code generator first (POST /auth/totp)")
        email = await user_email(tx.session, tx.sealer, user)
        key = _throttle_keys(tx.services.keyring, email, tx.context)[0]
        counters = await throttle_counters(tx.session, [key], tx.now)
        block_end = _block_ends(counters.values(), tx.now)
        if block_end is not None:
            tx.record("auth:step-up:throttled")
            tx.refuse(Throttled(int((block_end - tx.now).total_seconds()) + 1))
            return tx.actor
        outcome = await check_second_factor(tx, user, self.otp)
        if outcome is not None:
            policy = tx.security
            counter = counters[key]
            if as_utc(counter.window_start) + policy.login_window <= tx.now:
                counter.window_start, counter.failures = tx.now, 0
            counter.failures += 1
            if counter.failures >= policy.login_failures_per_user:
                counter.blocked_until = tx.now + policy.login_block
            tx.record("auth:step-up:failed", reason=outcome)
            tx.refuse(AuthenticationFailed("the one-time code (X-OTP) is wrong"))
            return tx.actor
        if tx.actor.token_id is not None:
            token = await tx.session.get(ApiToken, tx.actor.token_id)
            if token is not None:
                token.second_factor_at = tx.now
        elif self.session_hash is not None:
            console = await session_by_hash(tx.session, self.session_hash)
            if console is not None:
                console.second_factor_at = tx.now
        tx.record("auth:step-up:succeeded")
        return replace(tx.actor, second_factor_at=tx.now)


@dataclass(frozen=True)
class TotpEnrollment:
    secret: str
    uri: str


@dataclass(frozen=True)
class TotpEnroll:
    """Start TOTP enrollment: a new secret, pending until confirmed with a code.

    Raises PermissionDenied, Conflict (already enrolled).
    """

    async def run(self, tx: Tx) -> TotpEnrollment:
        user = await _acting_user(tx, "mfa:write")
        if user.totp_enabled_at is not None:
            raise Conflict("TOTP is already enabled for this user")
        secret = totp.new_secret()
        data_key = await tx.sealer.data_key(tx.session, user.data_key_id)
        user.totp_pending_sealed = tx.sealer.seal(data_key, secret.encode(),
                                                  totp_binding(user, "totp-pending"))
        label = await user_email(tx.session, tx.sealer, user)
        tx.record("auth:totp:enrollment_started")
        return TotpEnrollment(secret, totp.provisioning_uri(secret, label, ISSUER))


@dataclass(frozen=True)
class TotpConfirm:
    """Finish TOTP enrollment with a current code; returns the recovery codes, shown once.

    Raises PermissionDenied, Conflict (nothing pending), ValidationFailed (otp).
    """

    otp: str

    async def run(self, tx: Tx) -> list[str]:
        user = await _acting_user(tx, "mfa:write")
        if user.totp_pending_sealed is None:
            raise Conflict("no TOTP enrollment is pending; start one first")
        data_key = await tx.sealer.data_key(tx.session, user.data_key_id)
        secret = tx.sealer.open(data_key, user.totp_pending_sealed,
                                totp_binding(user, "totp-pending"))
        check = totp.check_code(secret.decode(), self.otp, tx.now, None)
        if check.outcome is not totp.TotpOutcome.ACCEPTED:
            raise ValidationFailed([FieldError("otp", "invalid_code",
                                               "is not the current code of the authenticator")])
        user.totp_secret_sealed = tx.sealer.seal(data_key, secret, totp_binding(user, "totp"))
        user.totp_pending_sealed = None
        user.totp_last_counter = check.counter
        user.totp_enabled_at = tx.now
        await delete_recovery_codes(tx.session, user.id)
        codes = [totp.new_recovery_code() for _ in range(tx.security.recovery_code_count)]
        tx.session.add_all(RecoveryCode(user_id=user.id, code_hash=recovery_code_hash(tx, code),
                                        created_at=tx.now) for code in codes)
        tx.record("auth:totp:enabled", recovery_codes=len(codes))
        return codes


@dataclass(frozen=True)
class TokenCreate:
    """Create an API token for `user_public_id` (default: the actor). Shown once.

    Raises PermissionDenied (also when a scoped credential asks for a wider token), NotFound,
    ValidationFailed (name, expires_days, scopes).
    """

    user_public_id: str | None = None
    name: str = "api"
    expires_days: int | None = None
    scopes: tuple[str, ...] = ("*",)

    async def run(self, tx: Tx) -> IssuedCredential:
        policy = tx.security
        if self.user_public_id is None or self.user_public_id == tx.actor.user_public_id:
            user = await _acting_user(tx, "tokens:write")
        else:
            tx.actor.require("tokens", "write")
            found = await user_by_public_id(tx.session, self.user_public_id)
            if found is None or not tx.actor.can("tokens", "write", found.account_id):
                raise NotFound("no such user")
            user = found
        errors: list[FieldError] = []
        if not 1 <= len(self.name.strip()) <= 100 or not self.name.isprintable():
            errors.append(FieldError("name", "invalid_length",
                                     "must be 1 to 100 printable characters"))
        days = self.expires_days
        max_days = policy.api_token_max_lifetime.days
        if days is not None and not 1 <= days <= max_days:
            errors.append(FieldError("expires_days", "out_of_range",
                                     f"must be between 1 and {max_days}"))
        bad_scopes = [s for s in self.scopes if not valid_scope(s)]
        if not self.scopes or bad_scopes:
            errors.append(FieldError("scopes", "invalid_scope",
                                     "each scope reads scope:resource:action or is *"))
        if errors:
            raise ValidationFailed(errors)
        # A scoped credential must not mint a token that can do more than itself.
        scoped = tx.actor.kind != "system" and \
            tx.actor.permissions != permissions_for(tx.actor.role or "")
        if scoped and not permissions_for(user.role, list(self.scopes)) <= tx.actor.permissions:
            raise PermissionDenied("a scoped credential cannot create a wider token")
        if STEP_UP_SCOPE in self.scopes and tx.actor.kind != "system" \
                and not tx.actor.step_up_allowed:
            raise PermissionDenied(f"only a credential that may step up can grant {STEP_UP_SCOPE}")
        lifetime = timedelta(days=days) if days else policy.api_token_default_lifetime
        issued = await _issue_token(tx, user, name=self.name.strip(), kind="api",
                                    lifetime=lifetime, scopes=list(self.scopes),
                                    second_factor_at=None)
        tx.record("auth:token:created", token=issued.public_id, user=user.public_id,
                  scopes=list(self.scopes), expires_at=issued.expires_at.isoformat())
        return issued


@dataclass(frozen=True)
class TokenRevoke:
    """Revoke a token: the token in use (`None`: signing out, always allowed), another of the
    holder's own tokens (needs self:tokens:write), or any token for staff allowed to manage
    tokens. Raises NotFound (also for tokens the actor may not touch)."""

    token_public_id: str | None = None

    async def run(self, tx: Tx) -> None:
        if self.token_public_id is None:
            token = await tx.session.get(ApiToken, tx.actor.token_id) \
                if tx.actor.token_id else None
        else:
            token = await token_by_public_id(tx.session, self.token_public_id)
        owner = await tx.session.get(User, token.user_id) if token else None
        in_use = token is not None and token.id == tx.actor.token_id
        own = token is not None and token.user_id == tx.actor.user_id and \
            "self:tokens:write" in tx.actor.permissions
        if token is None or owner is None or not (
            in_use or own or tx.actor.can("tokens", "write", owner.account_id)
        ):
            raise NotFound("no such token")
        if token.revoked_at is None:
            token.revoked_at = tx.now
            tx.record("auth:token:revoked", token=token.public_id, user=owner.public_id)


@dataclass(frozen=True)
class ConsoleSessionEnd:
    """Sign out of the console."""

    session_hash: str

    async def run(self, tx: Tx) -> None:
        session = await session_by_hash(tx.session, self.session_hash)
        if session is None or session.user_id != tx.actor.user_id:
            raise NotFound("no such session")
        if session.ended_at is None:
            session.ended_at = tx.now
            tx.record("auth:session:ended")



async def token_list(services: Services, actor: Actor) -> list[ApiToken]:
    """The actor's own tokens (never their secrets)."""
    actor.require_self("tokens:write")
    assert actor.user_id is not None
    async with services.store.read() as session:
        return list(await tokens_of_user(session, actor.user_id))
