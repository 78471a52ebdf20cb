"""The registry-lock workflow as flows: a user's separate lock credential, requests, the
verification code sent out of band, a second staff member's approval, the hourly sweep
(expiries and automatic relocks). The rules themselves are rules/registry_lock.py; these
flows load its records, call it, save what it returns, and queue the registry change
(operation kind `registry_lock`, sent on the registry-lock channel of the link).

The verification code exists in memory only: the flow returns it to the adapter, which sends
it to the requester's lock address and forgets it; the request keeps its digest.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from regshield.errors import (
    AuthenticationFailed,
    FieldError,
    NotFound,
    PermissionDenied,
    RegshieldError,
    ValidationFailed,
)
from regshield.flows.context import Actor
from regshield.flows.domains import Requested, need_step_up, requested_answer
from regshield.flows.operations import new_operation
from regshield.flows.runner import Tx
from regshield.flows.users import user_email
from regshield.registry.codec import Secret
from regshield.rules.contacts import normalize_email
from regshield.rules.names import validate_domain_name
from regshield.rules.registry_lock import (
    DomainLock,
    LockAction,
    LockActor,
    LockRefused,
    LockRequest,
    RegistryEffect,
    Transition,
    approve,
    cancel,
    code_digest,
    due_relocks,
    expire,
    expired_requests,
    new_verification_code,
    relock,
    request_lock,
    request_unlock,
    verify,
)
from regshield.security.passwords import hash_password, password_problems, verify_password
from regshield.store.models import Account, Domain, RegistryLockRequest, User
from regshield.store.queries.domains import live_domain

MAX_RELOCK_HOURS = 24 * 30


class RegistryLockCodeUndelivered(RegshieldError):
    http_status = 503
    type_slug = "registry-lock-code-undelivered"
    title = "The verification code could not be sent"


def lock_email_binding(user: User) -> str:
    return f"users:{user.public_id}:lock_email"


# --- records <-> rules ---------------------------------------------------------------------

_FIELDS = ("public_id", "requested_by", "requested_at", "expires_at", "revision", "code_digest",
           "needs_approval", "relock_of", "failed_attempts", "verified_at", "approved_by",
           "approved_at", "completed_at", "cancelled_at", "cancelled_by", "expired_at",
           "superseded_at", "relock_settled_at", "relock_id")


def _rules_request(row: RegistryLockRequest, domain: Domain) -> LockRequest:
    values = {name: getattr(row, name) for name in _FIELDS}
    seconds = row.relock_after_seconds
    return LockRequest(domain=domain.name, action=LockAction(row.action),
                       relock_after=timedelta(seconds=seconds) if seconds else None, **values)


def _save(tx: Tx, domain: Domain, request: LockRequest,
          row: RegistryLockRequest | None = None) -> RegistryLockRequest:
    if row is None:
        row = RegistryLockRequest(domain_id=domain.id, action=str(request.action))
        tx.session.add(row)
    for name in _FIELDS:
        setattr(row, name, getattr(request, name))
    row.relock_after_seconds = int(request.relock_after.total_seconds()) \
        if request.relock_after else None
    return row


def _domain_lock(domain: Domain) -> DomainLock:
    return DomainLock(domain.name, domain.registry_locked, domain.registry_lock_revision)


async def _requests_of(tx: Tx, domain: Domain) -> dict[str, RegistryLockRequest]:
    rows = await tx.session.scalars(select(RegistryLockRequest)
                                    .where(RegistryLockRequest.domain_id == domain.id))
    return {row.public_id: row for row in rows}


def _lock_actor(actor: Actor, account_id: int) -> LockActor:
    return LockActor(user_id=actor.user_public_id or actor.label,
                     may_lock=actor.can("registry_lock", "write", account_id),
                     is_staff=actor.is_staff)


async def _apply(tx: Tx, domain: Domain, account: Account, transition: Transition,
                 row: RegistryLockRequest | None = None) -> str | None:
    """Save a transition: the request, the domain's lock state, the event, and the registry
    change when it completed one. Returns the operation started, if any."""
    _save(tx, domain, transition.request, row)
    domain.registry_locked = transition.domain.locked
    domain.registry_lock_revision = transition.domain.revision
    tx.record(str(transition.event), account=account.public_id, domain=domain.name,
              request=transition.request.public_id, action=str(transition.request.action),
              revision=transition.domain.revision)
    operation = None
    if transition.effect is not None:
        operation = _queue_effect(tx, domain, transition.effect, transition.request.public_id)
    if transition.refusal is not None:
        tx.refuse(transition.refusal)
    return operation


def _queue_effect(tx: Tx, domain: Domain, effect: RegistryEffect, request_id: str) -> str:
    operation = new_operation(tx, domain, "registry_lock", {
        "add": sorted(effect.add), "remove": sorted(effect.remove), "lock_request": request_id})
    return operation.public_id


async def _domain_for_lock(tx: Tx, name: str) -> tuple[Domain, Account]:
    tx.actor.require("registry_lock", "write")
    errors: list[FieldError] = []
    parsed = validate_domain_name(name, "name", errors)
    if parsed is None:
        raise ValidationFailed(errors)
    domain = await live_domain(tx.session, parsed.ascii)
    if domain is None:
        raise NotFound("no such domain")
    tx.actor.require_object("registry_lock", "write", domain.account_id)
    account = await tx.session.get(Account, domain.account_id)
    assert account is not None
    return domain, account


# --- the lock credential -------------------------------------------------------------------


@dataclass(frozen=True)
class LockCredentialSet:
    """Set the acting user's registry-lock credential: a password of its own (not the login
    password) and the address verification codes go to. Needs a step-up.
    Raises PermissionDenied (StepUpRequired), ValidationFailed."""

    lock_email: Any
    lock_password: Secret

    async def run(self, tx: Tx) -> None:
        tx.actor.require("registry_lock", "write")
        if tx.actor.user_id is None:
            raise PermissionDenied("only a user has a registry-lock credential")
        need_step_up(tx, "setting the registry-lock credential")
        user = await tx.session.get(User, tx.actor.user_id)
        assert user is not None
        errors: list[FieldError] = []
        address = normalize_email(self.lock_email, errors, "lock_email")
        password = self.lock_password.reveal()
        login_email = await user_email(tx.session, tx.sealer, user)
        errors += password_problems(password, min_length=tx.security.password_min_length,
                                    email=login_email, field="lock_password")
        if not errors and await asyncio.to_thread(verify_password, user.password_hash, password):
            errors.append(FieldError("lock_password", "same_as_login",
                                     "must differ from the login password"))
        if errors:
            raise ValidationFailed(errors)
        assert address is not None
        data_key = await tx.sealer.data_key(tx.session, user.data_key_id)
        user.lock_email_sealed = tx.sealer.seal(data_key, address.encode(),
                                                lock_email_binding(user))
        user.lock_password_hash = await asyncio.to_thread(hash_password, password)
        tx.record("auth:registry-lock-credential:set", user=user.public_id)


# --- requests ------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedLockCode:
    """A new request and the code to send to `send_to` (the requester's lock address)."""

    request: LockRequest
    code: Secret
    send_to: str
    domain: str


@dataclass(frozen=True)
class RegistryLockRequestCreate:
    """Ask to lock or unlock a domain at the registry, with the user's lock password. The
    request waits for its verification code (and a staff approval where the installation
    requires one). Raises PermissionDenied, NotFound, ValidationFailed, AuthenticationFailed
    (wrong lock password, recorded), LockRefused (a request is pending; already in that
    state)."""

    name: str
    action: str  # lock | unlock
    lock_password: Secret
    relock_after_hours: int | None = None

    async def run(self, tx: Tx) -> IssuedLockCode | None:
        domain, account = await _domain_for_lock(tx, self.name)
        errors: list[FieldError] = []
        if self.action not in ("lock", "unlock"):
            errors.append(FieldError("action", "invalid", "must be lock or unlock"))
        hours = self.relock_after_hours
        if hours is not None and (self.action != "unlock" or isinstance(hours, bool)
                                  or not isinstance(hours, int)
                                  or not 1 <= hours <= MAX_RELOCK_HOURS):
            errors.append(FieldError("relock_after_hours", "invalid",
                                     f"an unlock may relock after 1 to {MAX_RELOCK_HOURS} hours"))
        link = tx.services.registries.link(domain.registry_link)
        if link.lock_endpoint is None:
            errors.append(FieldError("name", "not_offered",
                                     "this domain's registry offers no registry lock"))
        user = await tx.session.get(User, tx.actor.user_id) if tx.actor.user_id else None
        if user is None or user.lock_password_hash is None or user.lock_email_sealed is None:
            errors.append(FieldError("lock_password", "not_set", "set a registry-lock "
                                     "credential first (PUT /api/v1/me/registry-lock)"))
        if errors:
            raise ValidationFailed(errors)
        assert user is not None and user.lock_password_hash and user.lock_email_sealed
        if not await asyncio.to_thread(verify_password, user.lock_password_hash,
                                       self.lock_password.reveal()):
            tx.record("domains:registry-lock:refused", account=account.public_id,
                      domain=domain.name, reason="bad_lock_password")
            tx.refuse(AuthenticationFailed("the registry-lock password is wrong"))
            return None
        code, digest = new_verification_code()
        rows = await _requests_of(tx, domain)
        existing = [_rules_request(row, domain) for row in rows.values()]
        requester = _lock_actor(tx.actor, domain.account_id)
        needs_approval = tx.services.settings.registry_lock_approval
        try:
            if self.action == "lock":
                transition = request_lock(_domain_lock(domain), existing, requester=requester,
                                          code_digest=digest, now=tx.now,
                                          needs_approval=needs_approval)
            else:
                transition = request_unlock(
                    _domain_lock(domain), existing, requester=requester,
                    code_digest=digest, now=tx.now, needs_approval=needs_approval,
                    relock_after=timedelta(hours=hours) if hours else None)
        except LockRefused as refused:
            tx.record("domains:registry-lock:refused", account=account.public_id,
                      domain=domain.name, reason=refused.reason.value)
            tx.refuse(refused)
            return None
        await _apply(tx, domain, account, transition)
        data_key = await tx.sealer.data_key(tx.session, user.data_key_id)
        send_to = tx.sealer.open(data_key, user.lock_email_sealed,
                                 lock_email_binding(user)).decode()
        return IssuedLockCode(transition.request, Secret(code), send_to, domain.unicode_name)


@dataclass(frozen=True)
class RegistryLockVerify:
    """Redeem a verification code. `request` narrows the search (and lets a wrong code count
    against that request). Completing the request queues the registry change.
    Raises NotFound, PermissionDenied, LockRefused, ValidationFailed (wrong code, counted)."""

    code: str
    request: str | None = None

    async def run(self, tx: Tx) -> Requested:
        tx.actor.require("registry_lock", "write")
        query = select(RegistryLockRequest)
        if self.request:
            query = query.where(RegistryLockRequest.public_id == self.request)
        else:
            query = query.where(RegistryLockRequest.code_digest == code_digest(self.code))
        row = (await tx.session.scalars(query)).first()
        domain = await tx.session.get(Domain, row.domain_id) if row else None
        if row is None or domain is None or not tx.actor.can(
                "registry_lock", "write", domain.account_id):
            raise NotFound("no registry-lock request has this code")
        account = await tx.session.get(Account, domain.account_id)
        assert account is not None
        try:
            transition = verify(_rules_request(row, domain), _domain_lock(domain),
                                code=self.code, actor=_lock_actor(tx.actor, domain.account_id),
                                now=tx.now)
        except LockRefused as refused:
            tx.record("domains:registry-lock:refused", account=account.public_id,
                      domain=domain.name, request=row.public_id, reason=refused.reason.value)
            tx.refuse(refused)
            return await requested_answer(tx, domain, None)
        operation = await _apply(tx, domain, account, transition, row)
        return Requested((await requested_answer(tx, domain, None)).domain, operation)


@dataclass(frozen=True)
class RegistryLockApprove:
    """A second staff member approves a request (when the installation requires approval).
    Raises NotFound, PermissionDenied, LockRefused."""

    request: str

    async def run(self, tx: Tx) -> Requested:
        tx.actor.require("registry_lock", "write")
        row = (await tx.session.scalars(select(RegistryLockRequest).where(
            RegistryLockRequest.public_id == self.request))).first()
        domain = await tx.session.get(Domain, row.domain_id) if row else None
        if row is None or domain is None:
            raise NotFound("no such registry-lock request")
        tx.actor.require_object("registry_lock", "write", domain.account_id)
        account = await tx.session.get(Account, domain.account_id)
        assert account is not None
        transition = approve(_rules_request(row, domain), _domain_lock(domain),
                             approver=_lock_actor(tx.actor, domain.account_id), now=tx.now)
        operation = await _apply(tx, domain, account, transition, row)
        return Requested((await requested_answer(tx, domain, None)).domain, operation)


@dataclass(frozen=True)
class RegistryLockCancel:
    """Withdraw a pending request (its requester or staff). Used also when the code could
    not be delivered. Raises NotFound, PermissionDenied, LockRefused."""

    request: str

    async def run(self, tx: Tx) -> None:
        row = (await tx.session.scalars(select(RegistryLockRequest).where(
            RegistryLockRequest.public_id == self.request))).first()
        domain = await tx.session.get(Domain, row.domain_id) if row else None
        if row is None or domain is None:
            raise NotFound("no such registry-lock request")
        account = await tx.session.get(Account, domain.account_id)
        assert account is not None
        actor = LockActor(user_id=row.requested_by, may_lock=True, is_staff=True) \
            if tx.actor.kind == "system" else _lock_actor(tx.actor, domain.account_id)
        transition = cancel(_rules_request(row, domain), _domain_lock(domain), actor=actor,
                            now=tx.now)
        await _apply(tx, domain, account, transition, row)


@dataclass(frozen=True)
class RegistryLockSweep:
    """Record expired requests and lock again the domains whose unlock has run its time
    (the system acting). Returns the registry operations it started."""

    async def run(self, tx: Tx) -> list[str]:
        rows = (await tx.session.scalars(select(RegistryLockRequest).where(
            RegistryLockRequest.completed_at.is_(None) | (
                (RegistryLockRequest.action == "unlock")
                & RegistryLockRequest.relock_after_seconds.is_not(None)
                & RegistryLockRequest.relock_settled_at.is_(None))))).all()
        started: list[str] = []
        for row in rows:
            domain = await tx.session.get(Domain, row.domain_id)
            account = await tx.session.get(Account, domain.account_id) if domain else None
            if domain is None or account is None:
                continue
            request = _rules_request(row, domain)
            if expired_requests([request], tx.now):
                await _apply(tx, domain, account, expire(request, _domain_lock(domain),
                                                         now=tx.now), row)
            elif due_relocks([request], tx.now):
                started += await _relock(tx, domain, account, request, row)
        return started


async def _relock(tx: Tx, domain: Domain, account: Account, unlock: LockRequest,
                  row: RegistryLockRequest) -> list[str]:
    outcome = relock(unlock, _domain_lock(domain), now=tx.now)
    _save(tx, domain, outcome.unlock, row)
    domain.registry_locked = outcome.domain.locked
    domain.registry_lock_revision = outcome.domain.revision
    tx.record(str(outcome.event), account=account.public_id, domain=domain.name,
              request=unlock.public_id, relock=outcome.lock.public_id if outcome.lock else None)
    if outcome.lock is None or outcome.effect is None:
        return []
    _save(tx, domain, outcome.lock)
    return [_queue_effect(tx, domain, outcome.effect, outcome.lock.public_id)]


def masked(address: str) -> str:
    """An address as an answer may show it: enough to recognize, not to harvest."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"

