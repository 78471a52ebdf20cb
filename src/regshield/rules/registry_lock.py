"""The registry-lock workflow as a pure state machine: who may lock or unlock a domain at the
registry, how a request is verified, approved, completed, expired, cancelled or superseded, and
when an unlocked domain must be locked again.

A registry lock is the three server statuses serverUpdateProhibited, serverDeleteProhibited and
serverTransferProhibited, set by the registry at the registrar's request (row 22 of
refs/icann-obligations.md: registry-lock orchestration where the TLD offers it). Following
Nomulus's RegistryLock, every LOCK and UNLOCK is first a `LockRequest`: the user who asks gets a
verification code at their separate lock address and redeems it within `REQUEST_LIFETIME`; an
account may also want a second staff member to approve. Only when the request is verified (and
approved, when approval is needed) is it completed, and only then does the flow queue the
`RegistryEffect`.

Pure: no I/O, no clock, no store. A flow loads the domain's `DomainLock` and its requests,
calls one function here with the time, and saves what comes back. Functions either raise (the
request was refused and nothing changes: the flow may catch a `LockRefused`, record
`domains:registry-lock:refused` and pass it to `tx.refuse`), or return a `Transition`: the
record and domain state to save, the event to record, the registry effect to queue, and
possibly a `refusal` to pass to `tx.refuse` once the rest is saved (a wrong code must be
counted even though the answer is "no").

Design choices:
- A domain's lock `revision` counts completed LOCKs and only ever grows. Every request captures
  the revision it was made against, and is completed only if the revision and the lock state
  are still those it expects. So an UNLOCK never removes a lock newer than itself, whatever
  raced with it (two API instances, an emergency lock, an automatic relock), and a LOCK that
  someone else's lock overtook is superseded, not applied twice.
- One deadline: a request is completed within `REQUEST_LIFETIME` of being requested, or never.
  The code and the approval confirm the same intent, so an approval given after the hour would
  approve a stale one; the requester asks again.
- Completing a request decides the domain's lock state; the registry effect is queued in the
  same transaction and applied by the outbox (idempotent and retried); drift detection compares
  the two.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from regshield.errors import Conflict, FieldError, PermissionDenied, ValidationFailed
from regshield.rules.statuses import DomainStatus
from regshield.security.tokens import digest, new_public_id
from regshield.security.totp import RECOVERY_ALPHABET
from regshield.security.transfer_codes import MINIMUM_ENTROPY_BITS, entropy_bits

REQUEST_LIFETIME: Final = timedelta(hours=1)  # Nomulus's verification window
MAX_FAILED_ATTEMPTS: Final = 5  # the fifth wrong code cancels the request
REQUEST_ID_PREFIX: Final = "rlk"
RELOCK_REQUESTER: Final = "system:relock"  # `requested_by` of a relock: the system acting
ATTEMPTS_CANCELLER: Final = "system:too-many-attempts"  # `cancelled_by` after wrong codes

REGISTRY_LOCK_STATUSES: Final[frozenset[str]] = frozenset({
    DomainStatus.SERVER_UPDATE_PROHIBITED,
    DomainStatus.SERVER_DELETE_PROHIBITED,
    DomainStatus.SERVER_TRANSFER_PROHIBITED,
})

# Codes are typed from an email or a text message: the recovery codes' alphabet has no 0/o or
# 1/l/i look-alikes and one case. 7 groups of 4 symbols of 31 carry about 138.7 bits.
CODE_ALPHABET: Final = RECOVERY_ALPHABET
CODE_GROUPS: Final = 7
CODE_GROUP_LENGTH: Final = 4
CODE_ENTROPY_BITS: Final = entropy_bits(len(CODE_ALPHABET), CODE_GROUPS * CODE_GROUP_LENGTH)
if CODE_ENTROPY_BITS < MINIMUM_ENTROPY_BITS:  # a change of alphabet or length
    raise RuntimeError(f"verification codes carry only {CODE_ENTROPY_BITS:.1f} bits")
_DIGEST_FORMAT = re.compile(r"[0-9a-f]{64}")
_CODE_SEPARATORS = str.maketrans("", "", " -\t\n\r")


class LockAction(StrEnum):
    LOCK = "lock"
    UNLOCK = "unlock"


class RequestState(StrEnum):
    PENDING = "pending"  # requested, not yet completed, cancelled, expired or superseded
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"  # the domain's lock changed under it, so it can never complete


class LockEvent(StrEnum):
    """Event tags (`source:subject:action`) the flows record for each transition."""

    REQUESTED = "domains:registry-lock:requested"
    VERIFIED = "domains:registry-lock:verified"
    APPROVED = "domains:registry-lock:approved"
    COMPLETED = "domains:registry-lock:completed"
    REFUSED = "domains:registry-lock:refused"
    CANCELLED = "domains:registry-lock:cancelled"
    EXPIRED = "domains:registry-lock:expired"
    SUPERSEDED = "domains:registry-lock:superseded"
    RELOCKED = "domains:registry-lock:relocked"
    LIFTED_FOR_DS = "domains:registry-lock:lifted-for-ds"
    RESTORED_AFTER_DS = "domains:registry-lock:restored-after-ds"


class RefusalReason(StrEnum):
    PENDING_REQUEST = "pending_request"
    ALREADY_LOCKED = "already_locked"
    NOT_LOCKED = "not_locked"
    EXPIRED = "expired"
    NOT_EXPIRED = "not_expired"
    CODE_USED = "code_used"
    TOO_MANY_ATTEMPTS = "too_many_attempts"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"
    COMPLETED = "completed"
    APPROVAL_NOT_NEEDED = "approval_not_needed"
    ALREADY_APPROVED = "already_approved"
    NO_RELOCK = "no_relock"
    RELOCK_NOT_DUE = "relock_not_due"
    RELOCK_DONE = "relock_done"
    LOCKED = "locked"


class LockRefused(Conflict):
    """The registry-lock state does not allow this step; `reason` says which rule refused."""

    type_slug = "registry-lock-refused"
    title = "Refused by the registry-lock rules"

    def __init__(self, reason: RefusalReason, detail: str) -> None:
        self.reason = reason
        super().__init__(detail)

    def extra(self) -> dict[str, str]:
        return {"reason": str(self.reason)}


@dataclass(frozen=True)
class LockActor:
    """Who acts, as far as these rules care. The flow builds it from its `Actor`; `may_lock`
    has no default, so no caller can leave the permission check out."""

    user_id: str  # the user's public id
    may_lock: bool  # holds the registry-lock permission on the domain's account
    is_staff: bool = False


@dataclass(frozen=True)
class DomainLock:
    """A domain's registry-lock state as regshield decided it. `revision` counts completed
    LOCKs and never decreases."""

    domain: str
    locked: bool = False
    revision: int = 0

    def __post_init__(self) -> None:
        if self.revision < 0:
            raise ValueError("a lock revision cannot be negative")


@dataclass(frozen=True)
class RegistryEffect:
    """Server statuses the registry is asked to add and remove, through the registry-lock
    channel (server statuses are the registry's: a plain <domain:update> cannot carry them)."""

    add: frozenset[str] = frozenset()
    remove: frozenset[str] = frozenset()


LOCK_EFFECT: Final = RegistryEffect(add=REGISTRY_LOCK_STATUSES)
UNLOCK_EFFECT: Final = RegistryEffect(remove=REGISTRY_LOCK_STATUSES)


@dataclass(frozen=True)
class LockRequest:
    """One LOCK or UNLOCK, from request to its end. Never holds the verification code itself,
    only its digest."""

    public_id: str
    domain: str
    action: LockAction
    requested_by: str  # a user's public id, or RELOCK_REQUESTER
    requested_at: datetime
    expires_at: datetime
    revision: int  # the domain's lock revision when requested
    code_digest: str | None  # None only for a relock, which needs no code
    needs_approval: bool = False
    relock_after: timedelta | None = None  # UNLOCK only: lock again this long after completion
    relock_of: str | None = None  # a relock: the public id of the UNLOCK it undoes
    failed_attempts: int = 0
    verified_at: datetime | None = None
    approved_by: str | None = None
    approved_at: datetime | None = None
    completed_at: datetime | None = None
    cancelled_at: datetime | None = None
    cancelled_by: str | None = None  # a user's public id, or ATTEMPTS_CANCELLER
    expired_at: datetime | None = None  # when the expiry was recorded
    superseded_at: datetime | None = None
    relock_settled_at: datetime | None = None  # UNLOCK: the relock ran or was not needed
    relock_id: str | None = None  # UNLOCK: the relock it led to; None when it was not needed

    def __post_init__(self) -> None:
        _require_aware(self.requested_at, "requested_at")
        _require_aware(self.expires_at, "expires_at")
        if self.relock_after is not None and self.action is not LockAction.UNLOCK:
            raise ValueError("only an UNLOCK can carry relock_after")
        if self.code_digest is None and self.relock_of is None:
            raise ValueError("only a relock may have no verification code")
        if self.revision < 0 or self.failed_attempts < 0:
            raise ValueError("revision and failed_attempts cannot be negative")

    def state(self, now: datetime) -> RequestState:
        """Where the request stands at `now`. A request stops working at `expires_at`
        exactly, whether or not its expiry has been recorded yet."""
        if self.completed_at is not None:
            return RequestState.COMPLETED
        if self.superseded_at is not None:
            return RequestState.SUPERSEDED
        if self.cancelled_at is not None:
            return RequestState.CANCELLED
        if self.expired_at is not None or now >= self.expires_at:
            return RequestState.EXPIRED
        return RequestState.PENDING

    @property
    def relock_due_at(self) -> datetime | None:
        """When a completed UNLOCK with `relock_after` must be locked again."""
        if self.completed_at is None or self.relock_after is None:
            return None
        return self.completed_at + self.relock_after


@dataclass(frozen=True)
class Transition:
    """What a step decided: save `request` and `domain`, record `event`, queue `effect` if
    any, then, if `refusal` is set, pass it to `tx.refuse` (saved, but answered with an error)."""

    request: LockRequest
    domain: DomainLock
    event: LockEvent
    effect: RegistryEffect | None = None
    refusal: LockRefused | ValidationFailed | None = None


@dataclass(frozen=True)
class Relock:
    """What a due relock decided: save `unlock` (now settled), `lock` when one was made, and
    `domain`; record `event`; queue `effect` if any."""

    unlock: LockRequest
    lock: LockRequest | None
    domain: DomainLock
    event: LockEvent
    effect: RegistryEffect | None = None


@dataclass(frozen=True)
class DsWindow:
    """The steps for a DS-only change under a registry lock: `lift` through the lock channel,
    the DS update, then `restore`, each recorded with its event."""

    lift: RegistryEffect
    restore: RegistryEffect
    lifted: LockEvent = LockEvent.LIFTED_FOR_DS
    restored: LockEvent = LockEvent.RESTORED_AFTER_DS


DS_WINDOW: Final = DsWindow(
    lift=RegistryEffect(remove=frozenset({DomainStatus.SERVER_UPDATE_PROHIBITED})),
    restore=RegistryEffect(add=frozenset({DomainStatus.SERVER_UPDATE_PROHIBITED})),
)


# Verification codes


def new_verification_code() -> tuple[str, str]:
    """(code, digest): the code to send to the requester's lock address, once, and the digest
    to keep in the request. The code carries CODE_ENTROPY_BITS (>= 128) bits, so a fast
    SHA-256 is enough: a slow hash protects guessable secrets, and these are not."""
    code = "-".join(
        "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_GROUP_LENGTH))
        for _ in range(CODE_GROUPS)
    )
    return code, digest(_normalize_code(code))


def code_matches(code: str, code_digest: str) -> bool:
    """Whether `code` is the one `code_digest` was made from, compared in constant time.
    Case, spaces and dashes are ignored, so a code copied or typed in groups still matches."""
    return hmac.compare_digest(digest(_normalize_code(code)).encode(), code_digest.encode())


def code_digest(code: str) -> str:
    """The digest a request keeps of `code`, to find the request a code belongs to."""
    return digest(_normalize_code(code))


def _normalize_code(code: str) -> str:
    return code.translate(_CODE_SEPARATORS).lower()


# Requests


def request_lock(domain: DomainLock, requests: Iterable[LockRequest], *,
                 requester: LockActor, code_digest: str, now: datetime,
                 needs_approval: bool = False) -> Transition:
    """A new LOCK request for an unlocked domain. `requests` are the domain's requests
    (any that are still pending block a new one).

    Raises PermissionDenied (no lock permission) and LockRefused (a request is pending, the
    domain is already locked)."""
    return _request(LockAction.LOCK, domain, requests, requester=requester,
                    code_digest=code_digest, now=now, needs_approval=needs_approval,
                    relock_after=None)


def request_unlock(domain: DomainLock, requests: Iterable[LockRequest], *,
                   requester: LockActor, code_digest: str, now: datetime,
                   needs_approval: bool = False,
                   relock_after: timedelta | None = None) -> Transition:
    """A new UNLOCK request for a locked domain, against the domain's current revision.
    With `relock_after`, the domain is locked again that long after the unlock completes.

    Raises PermissionDenied (no lock permission), ValidationFailed (relock_after is not
    positive) and LockRefused (a request is pending, the domain is not locked)."""
    if relock_after is not None and relock_after <= timedelta(0):
        raise ValidationFailed([FieldError("relock_after", "not_positive",
                                           "the relock delay must be longer than zero")])
    return _request(LockAction.UNLOCK, domain, requests, requester=requester,
                    code_digest=code_digest, now=now, needs_approval=needs_approval,
                    relock_after=relock_after)


def _request(action: LockAction, domain: DomainLock, requests: Iterable[LockRequest], *,
             requester: LockActor, code_digest: str, now: datetime, needs_approval: bool,
             relock_after: timedelta | None) -> Transition:
    _require_aware(now, "now")
    if not _DIGEST_FORMAT.fullmatch(code_digest):
        raise ValueError("code_digest must be the digest from new_verification_code")
    if not requester.may_lock:
        raise PermissionDenied(f"you may not {action} {domain.domain} at the registry: "
                               "that needs the registry-lock permission")
    pending = [r for r in _of_domain(domain, requests) if r.state(now) is RequestState.PENDING]
    if pending:
        raise LockRefused(RefusalReason.PENDING_REQUEST,
                          f"{domain.domain} already has a pending {pending[0].action} request "
                          f"({pending[0].public_id}); complete or cancel it first")
    if action is LockAction.LOCK and domain.locked:
        raise LockRefused(RefusalReason.ALREADY_LOCKED,
                          f"{domain.domain} is already locked at the registry")
    if action is LockAction.UNLOCK and not domain.locked:
        raise LockRefused(RefusalReason.NOT_LOCKED,
                          f"{domain.domain} is not locked at the registry")
    request = LockRequest(
        public_id=new_public_id(REQUEST_ID_PREFIX), domain=domain.domain, action=action,
        requested_by=requester.user_id, requested_at=now, expires_at=now + REQUEST_LIFETIME,
        revision=domain.revision, code_digest=code_digest, needs_approval=needs_approval,
        relock_after=relock_after,
    )
    return Transition(request, domain, LockEvent.REQUESTED)


# Verification, approval, completion


def verify(request: LockRequest, domain: DomainLock, *, code: str, actor: LockActor,
           now: datetime) -> Transition:
    """Redeem the verification code. The request completes here unless it still waits for
    approval.

    The code is bound to the user who requested it, not to any user of the account with the
    lock permission: it is delivered to that user's own lock address (as in Nomulus, where the
    verification link belongs to the lock request and goes to the requester's registry-lock
    email), so a colleague's session, or anyone reading a shared mailbox with a session of
    their own, cannot complete someone else's request.

    Raises PermissionDenied (another user, or the permission was withdrawn) and LockRefused
    (the request is completed, cancelled, superseded or already verified: a code is used once).
    Returns with a refusal: the code is wrong (the fifth wrong code cancels the request), the
    request has expired, or the domain's lock changed under it (superseded)."""
    _require_aware(now, "now")
    _require_same_domain(request, domain)
    if actor.user_id != request.requested_by:
        raise PermissionDenied("only the user who made this registry-lock request may "
                               "redeem its verification code")
    if not actor.may_lock:
        raise PermissionDenied("you no longer hold the registry-lock permission")
    if request.state(now) is RequestState.COMPLETED:
        raise LockRefused(RefusalReason.CODE_USED,
                          f"this code was already used: request {request.public_id} was "
                          f"completed at {request.completed_at}")
    closed = _closed(request, domain, now)
    if closed is not None:
        return closed
    if request.verified_at is not None:
        raise LockRefused(RefusalReason.CODE_USED,
                          "this request's code has already been used; it waits for approval")
    if request.code_digest is None or not code_matches(code, request.code_digest):
        return _wrong_code(request, domain, now)
    verified = replace(request, verified_at=now)
    if verified.needs_approval and verified.approved_at is None:
        return Transition(verified, domain, LockEvent.VERIFIED)
    return _complete(verified, domain, now)


def approve(request: LockRequest, domain: DomainLock, *, approver: LockActor,
            now: datetime) -> Transition:
    """A second staff member's approval. The request completes here if it is already verified.

    Raises PermissionDenied (the approver is not staff, lacks the permission, or is the
    requester) and LockRefused (no approval needed, already approved, completed, cancelled or
    superseded). Returns with a refusal: the request has expired, or was superseded."""
    _require_aware(now, "now")
    _require_same_domain(request, domain)
    if not (approver.is_staff and approver.may_lock):
        raise PermissionDenied("a registry-lock request is approved by a staff member who "
                               "holds the registry-lock permission")
    if approver.user_id == request.requested_by:
        raise PermissionDenied("the approver must be a different person from the requester")
    if not request.needs_approval:
        raise LockRefused(RefusalReason.APPROVAL_NOT_NEEDED,
                          f"request {request.public_id} does not need approval")
    closed = _closed(request, domain, now)
    if closed is not None:
        return closed
    if request.approved_at is not None:
        raise LockRefused(RefusalReason.ALREADY_APPROVED,
                          f"request {request.public_id} was already approved by "
                          f"{request.approved_by}")
    approved = replace(request, approved_by=approver.user_id, approved_at=now)
    if approved.verified_at is None:
        return Transition(approved, domain, LockEvent.APPROVED)
    return _complete(approved, domain, now)


def cancel(request: LockRequest, domain: DomainLock, *, actor: LockActor,
           now: datetime) -> Transition:
    """Withdraw a pending request: its requester, or a staff member, holding the permission.

    Raises PermissionDenied and LockRefused (the request is no longer pending). Returns with a
    refusal when it has expired."""
    _require_aware(now, "now")
    _require_same_domain(request, domain)
    if not actor.may_lock or not (actor.is_staff or actor.user_id == request.requested_by):
        raise PermissionDenied("a registry-lock request is cancelled by its requester or a "
                               "staff member, holding the registry-lock permission")
    closed = _closed(request, domain, now)
    if closed is not None:
        return closed
    cancelled = replace(request, cancelled_at=now, cancelled_by=actor.user_id)
    return Transition(cancelled, domain, LockEvent.CANCELLED)


def expire(request: LockRequest, domain: DomainLock, *, now: datetime) -> Transition:
    """Record the expiry of a request whose hour has passed (the sweep's step).

    Raises LockRefused when the request is still pending or already closed."""
    _require_aware(now, "now")
    _require_same_domain(request, domain)
    state = request.state(now)
    if state is RequestState.PENDING:
        raise LockRefused(RefusalReason.NOT_EXPIRED,
                          f"request {request.public_id} runs until {request.expires_at}")
    if state is RequestState.EXPIRED and request.expired_at is None:
        return Transition(replace(request, expired_at=now), domain, LockEvent.EXPIRED)
    raise _closing_refusal(request, now)


def expired_requests(requests: Iterable[LockRequest], now: datetime) -> list[LockRequest]:
    """The requests whose expiry is due to be recorded, oldest deadline first."""
    _require_aware(now, "now")
    due = [r for r in requests
           if r.state(now) is RequestState.EXPIRED and r.expired_at is None]
    return sorted(due, key=lambda r: r.expires_at)


def _closed(request: LockRequest, domain: DomainLock, now: datetime) -> Transition | None:
    """None while the request is pending. An expiry not yet recorded is recorded and refused;
    any other end is refused with nothing to save."""
    state = request.state(now)
    if state is RequestState.PENDING:
        return None
    if state is RequestState.EXPIRED and request.expired_at is None:
        return Transition(replace(request, expired_at=now), domain, LockEvent.EXPIRED,
                          refusal=_closing_refusal(request, now))
    raise _closing_refusal(request, now)


def _closing_refusal(request: LockRequest, now: datetime) -> LockRefused:
    """Why a request that is no longer pending cannot take another step."""
    state = request.state(now)
    if state is RequestState.EXPIRED:
        return LockRefused(RefusalReason.EXPIRED,
                           f"request {request.public_id} expired at {request.expires_at}; "
                           "request again")
    if state is RequestState.COMPLETED:
        return LockRefused(RefusalReason.COMPLETED,
                           f"request {request.public_id} was completed at "
                           f"{request.completed_at}; it cannot change any more")
    if state is RequestState.CANCELLED:
        return LockRefused(RefusalReason.CANCELLED,
                           f"request {request.public_id} was cancelled; request again")
    return LockRefused(RefusalReason.SUPERSEDED,
                       f"request {request.public_id} was superseded: the domain's lock "
                       "changed after it was made")


def _wrong_code(request: LockRequest, domain: DomainLock, now: datetime) -> Transition:
    attempts = request.failed_attempts + 1
    if attempts >= MAX_FAILED_ATTEMPTS:
        cancelled = replace(request, failed_attempts=attempts, cancelled_at=now,
                            cancelled_by=ATTEMPTS_CANCELLER)
        return Transition(cancelled, domain, LockEvent.CANCELLED, refusal=LockRefused(
            RefusalReason.TOO_MANY_ATTEMPTS,
            f"{attempts} wrong verification codes: request {request.public_id} is cancelled"))
    left = MAX_FAILED_ATTEMPTS - attempts
    return Transition(replace(request, failed_attempts=attempts), domain, LockEvent.REFUSED,
                      refusal=ValidationFailed([FieldError(
                          "code", "wrong_code",
                          f"the verification code is wrong; {left} attempts left")]))


def _complete(request: LockRequest, domain: DomainLock, now: datetime) -> Transition:
    """Apply a verified (and approved) request if the domain's lock is still the one it was
    made against; otherwise it is superseded and can never complete."""
    wanted_locked = request.action is LockAction.UNLOCK  # the state the request starts from
    if domain.revision != request.revision or domain.locked is not wanted_locked:
        superseded = replace(request, superseded_at=now)
        return Transition(superseded, domain, LockEvent.SUPERSEDED, refusal=LockRefused(
            RefusalReason.SUPERSEDED,
            f"{domain.domain}'s registry lock changed since request {request.public_id} was "
            f"made (revision {request.revision}, now {domain.revision}, "
            f"{'locked' if domain.locked else 'unlocked'}); nothing was changed"))
    completed = replace(request, completed_at=now)
    if request.action is LockAction.LOCK:
        locked = replace(domain, locked=True, revision=domain.revision + 1)
        return Transition(completed, locked, LockEvent.COMPLETED, LOCK_EFFECT)
    return Transition(completed, replace(domain, locked=False), LockEvent.COMPLETED,
                      UNLOCK_EFFECT)


# Automatic relock


def due_relocks(requests: Iterable[LockRequest], now: datetime) -> list[LockRequest]:
    """The completed UNLOCKs whose relock is due and not yet settled, earliest first."""
    _require_aware(now, "now")
    due = [r for r in requests
           if r.action is LockAction.UNLOCK and r.relock_settled_at is None
           and r.relock_due_at is not None and r.relock_due_at <= now]
    return sorted(due, key=lambda r: (r.relock_due_at or now))


def relock(unlock: LockRequest, domain: DomainLock, *, now: datetime) -> Relock:
    """Lock the domain again after `unlock`, the system acting: no code, no approval. If the
    domain's lock moved since the unlock (someone locked it again, or a newer unlock owns the
    decision), there is nothing to do; the unlock is settled either way.

    Raises LockRefused when the unlock has no relock, is not due, or was already settled."""
    _require_aware(now, "now")
    _require_same_domain(unlock, domain)
    due_at = unlock.relock_due_at
    if unlock.action is not LockAction.UNLOCK or due_at is None:
        raise LockRefused(RefusalReason.NO_RELOCK,
                          f"request {unlock.public_id} is not a completed unlock with a relock")
    if unlock.relock_settled_at is not None:
        raise LockRefused(RefusalReason.RELOCK_DONE,
                          f"the relock after {unlock.public_id} was already settled at "
                          f"{unlock.relock_settled_at}")
    if now < due_at:
        raise LockRefused(RefusalReason.RELOCK_NOT_DUE,
                          f"the relock after {unlock.public_id} is due at {due_at}")
    if domain.locked or domain.revision != unlock.revision:
        settled = replace(unlock, relock_settled_at=now)
        return Relock(settled, None, domain, LockEvent.SUPERSEDED)
    lock = LockRequest(
        public_id=new_public_id(REQUEST_ID_PREFIX), domain=domain.domain,
        action=LockAction.LOCK, requested_by=RELOCK_REQUESTER, requested_at=now,
        expires_at=now + REQUEST_LIFETIME, revision=domain.revision, code_digest=None,
        relock_of=unlock.public_id, completed_at=now,
    )
    settled = replace(unlock, relock_settled_at=now, relock_id=lock.public_id)
    locked = replace(domain, locked=True, revision=domain.revision + 1)
    return Relock(settled, lock, locked, LockEvent.RELOCKED, LOCK_EFFECT)


# Changes while locked


def permits_while_locked(change_kinds: AbstractSet[str], hosted_zone: bool) -> bool:
    """Whether a change may go ahead on a registry-locked domain: only a DS-only change for a
    zone the registrar hosts and signs (its key rollover), which regshield can vouch for.

    The lock is not left open for it. The flow runs `DS_WINDOW`: through the registry-lock
    channel it removes serverUpdateProhibited alone (delete and transfer stay prohibited), sends
    the DS update, and sets serverUpdateProhibited back, recording `LIFTED_FOR_DS` and
    `RESTORED_AFTER_DS`. Relying on a registry whose lock leaves secDNS updates open would
    make the exception depend on each registry's policy, so regshield never assumes it."""
    return hosted_zone and set(change_kinds) == {"ds"}


def change_while_locked(domain: DomainLock, change_kinds: AbstractSet[str], *,
                        hosted_zone: bool) -> DsWindow | None:
    """None when the domain is not locked (the change goes as usual); `DS_WINDOW` for a
    permitted DS-only change on a locked domain. Raises LockRefused otherwise."""
    if not domain.locked:
        return None
    if permits_while_locked(change_kinds, hosted_zone):
        return DS_WINDOW
    kinds = ", ".join(sorted(change_kinds)) or "nothing"
    raise LockRefused(RefusalReason.LOCKED,
                      f"{domain.domain} is locked at the registry: changing {kinds} needs an "
                      "unlock first (only a DS change for a zone we host may go through)")


# Helpers


def _of_domain(domain: DomainLock, requests: Iterable[LockRequest]) -> list[LockRequest]:
    mine = list(requests)
    for request in mine:
        _require_same_domain(request, domain)
    return mine


def _require_same_domain(request: LockRequest, domain: DomainLock) -> None:
    if request.domain != domain.domain:
        raise ValueError(f"request {request.public_id} is for {request.domain}, "
                         f"not {domain.domain}")


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")

