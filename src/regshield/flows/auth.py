"""Signing in: passwords, second factors, login throttling, API tokens and console sessions."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
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
from regshield.notify.messages import Change
from regshield.notify.requests import Recipient, notice, to_account_owners, to_user
from regshield.policy.security import SecurityPolicy, security_policy
from regshield.security import totp
from regshield.security.keyring import KeyRing
from regshield.security.passwords import (
    hash_password,
    needs_rehash,
    password_problems,
    verify_password,
)
from regshield.security.permissions import permissions_for, valid_scope
from regshield.security.step_up import STEP_UP_SCOPE
from regshield.security.tokens import (
    API_TOKEN_PREFIX,
    SESSION_PREFIX,
    new_credential,
    new_public_id,
)
from regshield.services import Services
from regshield.store.models import (
    ApiToken,
    ConsoleSession,
    LoginSource,
    RecoveryCode,
    ThrottleCounter,
    User,
)
from regshield.store.queries.accounts import public_ids
from regshield.store.queries.users import (
    delete_recovery_codes,
    has_login_sources,
    login_source,
    revoke_other_credentials,
    session_by_hash,
    throttle_counter_values,
    throttle_counters,
    token_by_public_id,
    tokens_of_user,
    unused_recovery_codes,
    user_by_email_index,
    user_by_public_id,
    user_for_update,
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


@dataclass(frozen=True)
class ThrottleKeys:
    """The failure counters of one attempt: per user, per source address, and per user and
    source together (keys are keyed hashes, never the email or the address)."""

    user: str
    address: str
    pair: str

    @property
    def all(self) -> list[str]:
        return [self.user, self.address, self.pair]


def _throttle_keys(keyring: KeyRing, email: str, context: RequestContext) -> ThrottleKeys:
    who, where = email.strip().lower(), context.source_address or "-"
    return ThrottleKeys(
        user="login:user:" + keyring.index("login-user", who),
        address="login:address:" + keyring.index("login-address", where),
        pair="login:user-address:" + keyring.index("login-user-address", f"{who}\0{where}"),
    )


def _block_end(keys: ThrottleKeys, counters: Mapping[str, ThrottleCounter], now: datetime,
               policy: SecurityPolicy) -> datetime | None:
    """When attempts for this user from this source may resume; None when they may now.

    A source that failed too often is blocked (for every user, or for this user). A user whose
    failures from all sources together reached the limit is guarded: sources that failed for
    them are blocked until the guard ends, but a source that has not failed, where the holder
    signs in with the right password (and second factor), is not. So failures never lock the
    right password out everywhere (docs/architecture.md, "Login throttling").
    """
    def blocked(counter: ThrottleCounter | None) -> datetime | None:
        end = as_utc(counter.blocked_until) if counter and counter.blocked_until else None
        return end if end and end > now else None

    ends = [end for end in (blocked(counters.get(keys.address)), blocked(counters.get(keys.pair)))
            if end]
    guarded = blocked(counters.get(keys.user))
    pair = counters.get(keys.pair)
    if guarded and pair and pair.failures > 0 \
            and as_utc(pair.window_start) + policy.login_window > now:
        ends.append(guarded)
    return max(ends) if ends else None


def _count_failure(tx: Tx, keys: ThrottleKeys, counters: Mapping[str, ThrottleCounter]) -> None:
    """One more failed password or one-time code for this user from this source."""
    policy = tx.security
    limits = {keys.user: policy.login_failures_per_user,
              keys.pair: policy.login_failures_per_user,
              keys.address: policy.login_failures_per_address}
    for key, limit in limits.items():
        counter = counters[key]
        if as_utc(counter.window_start) + policy.login_window <= tx.now:
            counter.window_start, counter.failures = tx.now, 0
        counter.failures += 1
        if counter.failures >= limit:
            counter.blocked_until = tx.now + policy.login_block


def _clear_failures(keys: ThrottleKeys, counters: Mapping[str, ThrottleCounter]) -> None:
    for key in (keys.user, keys.pair):
        counters[key].failures = 0
        counters[key].blocked_until = None


def _throttled(tx: Tx, end: datetime) -> Throttled:
    return Throttled(int((end - tx.now).total_seconds()) + 1)


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

    async def prepare(self, services: Services, context: RequestContext, actor: Actor
                      ) -> PasswordCheck | None:
        """Check the password outside the write transaction (argon2 takes tens of ms); skip it
        when the attempt is throttled anyway, so that a blocked attacker costs nothing."""
        keyring = services.keyring
        async with services.store.read() as session:
            keys = _throttle_keys(keyring, self.email, context)
            now = services.clock.now()
            counters = {c.key: c for c in await throttle_counter_values(session, keys.all)}
            if _block_end(keys, counters, now, security_policy(now)) is not None:
                return None
            user = await user_by_email_index(session, email_index(keyring, self.email))
        password_hash = user.password_hash if user else None
        matched = await asyncio.to_thread(verify_password, password_hash, self.password)
        return PasswordCheck(user.id if user else None, password_hash, matched)

    async def run(self, tx: Tx) -> IssuedCredential | None:
        policy = tx.security
        keyring = tx.services.keyring
        keys = _throttle_keys(keyring, self.email, tx.context)
        counters = await throttle_counters(tx.session, keys.all, tx.now)
        block_end = _block_end(keys, counters, tx.now, policy)
        if block_end is not None:
            tx.record("auth:login:throttled", credential=self.credential)
            tx.refuse(_throttled(tx, block_end))
            return None

        # Locked: the one-time code below is checked and its counter kept under the lock, so
        # concurrent logins cannot both accept the same code.
        user = await user_by_email_index(tx.session, email_index(keyring, self.email),
                                         lock=True)
        check: PasswordCheck | None = tx.prepared
        if check is None or (user.id if user else None, user.password_hash if user else None) \
                != (check.user_id, check.password_hash):
            # Blocked when prepared, or the password changed meanwhile: check it here.
            check = PasswordCheck(None, None, await asyncio.to_thread(
                verify_password, user.password_hash if user else None, self.password))
        if user is None or not check.matched or user.disabled_at is not None:
            self._fail(tx, keys, counters, user, "bad_credentials")
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
                self._fail(tx, keys, counters, user, outcome)
                return None
            method = "password+recovery_code" if totp.looks_like_recovery_code(self.otp) \
                else "password+totp"
            second_factor_at = tx.now

        _clear_failures(keys, counters)
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
        actor = await self._actor(tx, user)
        tx.record("auth:login:succeeded", actor=actor, method=method,
                  credential=self.credential, issued=issued.public_id)
        await _note_login_source(tx, user, actor, method)
        return issued

    def _fail(self, tx: Tx, keys: ThrottleKeys, counters: dict[str, ThrottleCounter],
              user: User | None, reason: str) -> None:
        _count_failure(tx, keys, counters)
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
    An accepted TOTP counter is kept, so the same code is never accepted twice: call it only
    with the user's row locked (`user_for_update`, `user_by_email_index(lock=True)`), so that
    concurrent requests see each other's counter."""
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
class Guarded:
    """The acting user, locked, with the throttle counters of this attempt (locked too)."""

    user: User
    keys: ThrottleKeys
    counters: dict[str, ThrottleCounter]


async def _guard(tx: Tx, user: User, action: str) -> Guarded | None:
    """Lock the throttle counters, then the user's row (read again, latest values), before any
    password or one-time code is checked. None when throttled (refused, with an event)."""
    email = await user_email(tx.session, tx.sealer, user)
    keys = _throttle_keys(tx.services.keyring, email, tx.context)
    counters = await throttle_counters(tx.session, keys.all, tx.now)
    block_end = _block_end(keys, counters, tx.now, tx.security)
    if block_end is not None:
        tx.record(f"auth:{action}:throttled")
        tx.refuse(_throttled(tx, block_end))
        return None
    locked = await user_for_update(tx.session, user.id)
    if locked is None:
        raise NotFound("no such user")
    return Guarded(locked, keys, counters)


async def _require_interactive_credential(tx: Tx, what: str) -> None:
    """Passwords and second factors are managed from a console session or a login token,
    never with an API token: an automation token must not be able to take the account over."""
    if tx.actor.kind == "system" or tx.actor.token_id is None:
        return
    token = await tx.session.get(ApiToken, tx.actor.token_id)
    if token is None or token.kind != "login":
        raise PermissionDenied(f"{what} needs a console session or a login token "
                               "(POST /auth/login), not an API token")


async def _prove_holder(tx: Tx, password: str, otp: str | None, action: str,
                        what: str) -> User | None:
    """The acting user, locked, once the credential kind, the password and (when enrolled) a
    current second factor are proved. Wrong ones count toward the login throttle; None when
    refused that way (the refusal is raised after the failure is committed).

    Raises PermissionDenied, SecondFactorRequired (and, through tx.refuse, Throttled and
    AuthenticationFailed).
    """
    user = await _acting_user(tx, "mfa:write")
    await _require_interactive_credential(tx, what)
    guarded = await _guard(tx, user, action)
    if guarded is None:
        return None
    user = guarded.user
    # Rare and throttled: the check runs inside the transaction, where the row is locked.
    reason = None if await asyncio.to_thread(verify_password, user.password_hash, password) \
        else "bad_password"
    if reason is None and user.totp_enabled_at is not None:
        if not otp:
            raise SecondFactorRequired(f"{what} needs a current one-time code or a recovery "
                                       "code (otp)")
        reason = await check_second_factor(tx, user, otp)
    if reason is not None:
        _count_failure(tx, guarded.keys, guarded.counters)
        tx.record(f"auth:{action}:failed", reason=reason)
        tx.refuse(AuthenticationFailed("the password or the one-time code is wrong"))
        return None
    return user


def _holder_recipients(user: User, account: str | None) -> list[Recipient]:
    """A change to a user's credentials is told to the user and to the account's owners."""
    recipients = [to_user(user.public_id)]
    if account is not None:
        recipients.append(to_account_owners(account))
    return recipients


async def _account_of(tx: Tx, user: User) -> str | None:
    if user.account_id is None:
        return None
    return (await public_ids(tx.session, {user.account_id})).get(user.account_id)


async def _note_login_source(tx: Tx, user: User, actor: Actor, method: str) -> None:
    """Remember the source address of a sign-in (as a keyed hash) and tell the user of one
    not seen before. The first sign-in ever only remembers it."""
    address = tx.context.source_address
    if address is None:
        return
    address_hash = tx.services.keyring.index("login-source", f"{user.public_id}\0{address}")
    seen = await login_source(tx.session, user.id, address_hash)
    if seen is not None:
        seen.last_seen_at = tx.now
        return
    first = not await has_login_sources(tx.session, user.id)
    tx.session.add(LoginSource(user_id=user.id, address_hash=address_hash,
                               first_seen_at=tx.now, last_seen_at=tx.now))
    if first:
        return
    tx.record("auth:login:new_address", actor=actor, user=user.public_id)
    notice(tx, change=Change.LOGIN_ADDRESS, recipients=[to_user(user.public_id)],
           details={"user": user.public_id, "method": method}, actor=actor)


@dataclass(frozen=True)
class StepUp:
    """Prove a second factor for the credential in use (the `X-OTP` header): the request then
    runs with `second_factor_at` = now, and the token or console session remembers it for the
    step-up window (security/step_up.py). A wrong or replayed code counts toward the same
    throttle as failed logins and leaves an event. The user's row is locked before the code is
    checked, so one code is accepted once however many requests race with it.

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
            raise StepUpRequired("enrol a one-time code generator first (POST /auth/mfa/totp)")
        guarded = await _guard(tx, user, "step-up")
        if guarded is None:
            return tx.actor
        outcome = await check_second_factor(tx, guarded.user, self.otp)
        if outcome is not None:
            _count_failure(tx, guarded.keys, guarded.counters)
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
    """Start enrolling a one-time code generator (TOTP), or replacing the one enrolled: a new
    secret, pending until confirmed with a code. Needs a console session or a login token, the
    password, and, when a generator is enrolled, a current code or a recovery code (`otp`).

    Raises PermissionDenied (an API token), SecondFactorRequired, Throttled,
    AuthenticationFailed.
    """

    password: str
    otp: str | None = None

    async def run(self, tx: Tx) -> TotpEnrollment | None:
        user = await _prove_holder(tx, self.password, self.otp, "totp",
                                   "enrolling a one-time code generator")
        if user is None:
            return None
        secret = totp.new_secret()
        data_key = await tx.sealer.data_key(tx.session, user.data_key_id)
        user.totp_pending_sealed = tx.sealer.seal(data_key, secret.encode(),
                                                  totp_binding(user, "totp-pending"))
        label = await user_email(tx.session, tx.sealer, user)
        tx.record("auth:totp:enrollment_started", replacing=user.totp_enabled_at is not None)
        return TotpEnrollment(secret, totp.provisioning_uri(secret, label, ISSUER))


def _new_recovery_codes(tx: Tx, user: User) -> list[str]:
    codes = [totp.new_recovery_code() for _ in range(tx.security.recovery_code_count)]
    tx.session.add_all(RecoveryCode(user_id=user.id, code_hash=recovery_code_hash(tx, code),
                                    created_at=tx.now) for code in codes)
    return codes


@dataclass(frozen=True)
class TotpConfirm:
    """Finish enrolling (or replacing) the one-time code generator with a current code of the
    new secret; returns new recovery codes, shown once. The user and the account's owners are
    told. Needs a console session or a login token.

    Raises PermissionDenied, Conflict (nothing pending), ValidationFailed (otp).
    """

    otp: str

    async def run(self, tx: Tx) -> list[str]:
        user = await _acting_user(tx, "mfa:write")
        await _require_interactive_credential(tx, "enrolling a one-time code generator")
        locked = await user_for_update(tx.session, user.id)
        pending = locked.totp_pending_sealed if locked else None
        if locked is None or pending is None:
            raise Conflict("no TOTP enrollment is pending; start one first")
        user = locked
        data_key = await tx.sealer.data_key(tx.session, user.data_key_id)
        secret = tx.sealer.open(data_key, pending,
                                totp_binding(user, "totp-pending"))
        check = totp.check_code(secret.decode(), self.otp, tx.now, None)
        if check.outcome is not totp.TotpOutcome.ACCEPTED:
            raise ValidationFailed([FieldError("otp", "invalid_code",
                                               "is not the current code of the authenticator")])
        replaced = user.totp_enabled_at is not None
        user.totp_secret_sealed = tx.sealer.seal(data_key, secret, totp_binding(user, "totp"))
        user.totp_pending_sealed = None
        user.totp_last_counter = check.counter
        user.totp_enabled_at = tx.now
        await delete_recovery_codes(tx.session, user.id)
        codes = _new_recovery_codes(tx, user)
        tx.record("auth:totp:replaced" if replaced else "auth:totp:enabled",
                  recovery_codes=len(codes))
        notice(tx, change=Change.SECOND_FACTOR,
               recipients=_holder_recipients(user, await _account_of(tx, user)),
               details={"user": user.public_id, "enabled": True, "replaced": replaced})
        return codes


@dataclass(frozen=True)
class TotpRemove:
    """Turn the one-time code generator off: its secret and every recovery code are deleted.
    Needs a console session or a login token, the password and a current code or a recovery
    code (`otp`). The user and the account's owners are told.

    Raises PermissionDenied, Conflict (none enrolled), SecondFactorRequired, Throttled,
    AuthenticationFailed.
    """

    password: str
    otp: str | None = None

    async def run(self, tx: Tx) -> None:
        user = await _prove_holder(tx, self.password, self.otp, "totp",
                                   "removing the one-time code generator")
        if user is None:
            return
        if user.totp_enabled_at is None:
            raise Conflict("no one-time code generator is enrolled")
        user.totp_secret_sealed = None
        user.totp_pending_sealed = None
        user.totp_last_counter = None
        user.totp_enabled_at = None
        await delete_recovery_codes(tx.session, user.id)
        tx.record("auth:totp:removed")
        notice(tx, change=Change.SECOND_FACTOR,
               recipients=_holder_recipients(user, await _account_of(tx, user)),
               details={"user": user.public_id, "enabled": False})


@dataclass(frozen=True)
class RecoveryCodesRegenerate:
    """Replace every recovery code with new ones, shown once. Needs a console session or a
    login token, the password and a current code or a recovery code (`otp`). The user and
    the account's owners are told.

    Raises PermissionDenied, Conflict (no generator enrolled), SecondFactorRequired,
    Throttled, AuthenticationFailed.
    """

    password: str
    otp: str | None = None

    async def run(self, tx: Tx) -> list[str] | None:
        user = await _prove_holder(tx, self.password, self.otp, "recovery-codes",
                                   "regenerating recovery codes")
        if user is None:
            return None
        if user.totp_enabled_at is None:
            raise Conflict("recovery codes come with a one-time code generator; enrol one")
        await delete_recovery_codes(tx.session, user.id)
        codes = _new_recovery_codes(tx, user)
        tx.record("auth:recovery-codes:regenerated", recovery_codes=len(codes))
        notice(tx, change=Change.RECOVERY_CODES,
               recipients=_holder_recipients(user, await _account_of(tx, user)),
               details={"user": user.public_id})
        return codes


@dataclass(frozen=True)
class PasswordChange:
    """Change the acting user's password. Needs a console session or a login token, the
    current password and, when enrolled, a current code or a recovery code (`otp`). Every
    other token and console session of the user is revoked; the user and the account's owners
    are told.

    Raises PermissionDenied, SecondFactorRequired, Throttled, AuthenticationFailed,
    ValidationFailed (new_password).
    """

    current_password: str
    new_password: str
    otp: str | None = None
    session_hash: str | None = None  # the console session in use, kept

    async def run(self, tx: Tx) -> None:
        user = await _prove_holder(tx, self.current_password, self.otp, "password",
                                   "changing the password")
        if user is None:
            return
        email = await user_email(tx.session, tx.sealer, user)
        problems = password_problems(self.new_password, email=email, field="new_password",
                                     min_length=tx.security.password_min_length)
        if self.new_password == self.current_password:
            problems.append(FieldError("new_password", "unchanged",
                                       "must differ from the current password"))
        if problems:
            raise ValidationFailed(problems)
        user.password_hash = await asyncio.to_thread(hash_password, self.new_password)
        ended = await revoke_other_credentials(tx.session, user.id, tx.now,
                                               keep_token=tx.actor.token_id,
                                               keep_session=self.session_hash)
        tx.record("auth:password:changed", credentials_ended=ended)
        notice(tx, change=Change.PASSWORD_CHANGED,
               recipients=_holder_recipients(user, await _account_of(tx, user)),
               details={"user": user.public_id})


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
        if tx.actor.kind != "system":
            # The operator's command line is out of band; through the API, a new token is
            # told to its user (a stolen login token could otherwise mint a quiet one).
            notice(tx, change=Change.API_TOKEN, recipients=[to_user(user.public_id)],
                   details={"user": user.public_id, "token": issued.public_id,
                            "scopes": list(self.scopes),
                            "expires_at": issued.expires_at.isoformat()})
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
