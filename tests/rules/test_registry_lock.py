"""The registry-lock workflow (rules/registry_lock.py): a LOCK or UNLOCK is requested, verified
with a single-use code within the hour by its requester, approved by a second staff member when
needed, and completed only while the domain's lock is still the one it was requested against."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from regshield.errors import Conflict, PermissionDenied, ValidationFailed
from regshield.rules.registry_lock import (
    ATTEMPTS_CANCELLER,
    CODE_ENTROPY_BITS,
    DS_WINDOW,
    LOCK_EFFECT,
    MAX_FAILED_ATTEMPTS,
    REGISTRY_LOCK_STATUSES,
    RELOCK_REQUESTER,
    REQUEST_LIFETIME,
    UNLOCK_EFFECT,
    DomainLock,
    LockAction,
    LockActor,
    LockEvent,
    LockRefused,
    LockRequest,
    RefusalReason,
    RequestState,
    Transition,
    approve,
    cancel,
    change_while_locked,
    code_matches,
    due_relocks,
    expire,
    expired_requests,
    new_verification_code,
    permits_while_locked,
    relock,
    request_lock,
    request_unlock,
    verify,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
NAME = "example.com"
UNLOCKED = DomainLock(NAME)
LOCKED = DomainLock(NAME, locked=True, revision=1)

ALICE = LockActor("usr_alice", may_lock=True)  # a customer with the lock permission
BOB = LockActor("usr_bob", may_lock=True)  # her colleague on the same account
CAROL = LockActor("usr_carol", may_lock=False)  # a customer without it
STAFF = LockActor("usr_staff", may_lock=True, is_staff=True)
OTHER_STAFF = LockActor("usr_staff2", may_lock=True, is_staff=True)
SUPPORT = LockActor("usr_support", may_lock=False, is_staff=True)

SERVER_STATUSES = {"serverUpdateProhibited", "serverDeleteProhibited",
                   "serverTransferProhibited"}


def ask(action: LockAction, domain: DomainLock, *, by: LockActor = ALICE, at: datetime = T0,
        needs_approval: bool = False, relock_after: timedelta | None = None,
        requests: tuple[LockRequest, ...] = ()) -> tuple[LockRequest, str]:
    """A fresh request and the code sent to its requester."""
    code, code_digest = new_verification_code()
    if action is LockAction.LOCK:
        step = request_lock(domain, requests, requester=by, code_digest=code_digest, now=at,
                            needs_approval=needs_approval)
    else:
        step = request_unlock(domain, requests, requester=by, code_digest=code_digest, now=at,
                              needs_approval=needs_approval, relock_after=relock_after)
    return step.request, code


def refusal_reason(step: Transition) -> RefusalReason:
    assert isinstance(step.refusal, LockRefused)
    return step.refusal.reason


# Verification codes


def test_a_verification_code_carries_at_least_128_bits() -> None:
    assert CODE_ENTROPY_BITS >= 128


def test_a_code_is_seven_dashed_groups_of_symbols_without_look_alikes() -> None:
    code, _ = new_verification_code()
    assert re.fullmatch(r"[a-km-np-z2-9]{4}(-[a-km-np-z2-9]{4}){6}", code)
    assert not set(code) & set("01ilo")


def test_every_code_is_new() -> None:
    assert len({new_verification_code()[0] for _ in range(200)}) == 200


def test_only_the_digest_is_kept_and_it_matches_the_code() -> None:
    code, code_digest = new_verification_code()
    assert code not in code_digest
    assert re.fullmatch(r"[0-9a-f]{64}", code_digest)
    assert code_matches(code, code_digest)


def test_a_code_typed_in_capitals_without_dashes_or_with_spaces_still_matches() -> None:
    code, code_digest = new_verification_code()
    assert code_matches(code.upper().replace("-", ""), code_digest)
    assert code_matches(" " + code.replace("-", " ") + "\n", code_digest)


@pytest.mark.parametrize("typed", ["", "abcd-efgh-jkmn-pqrs-tuvw-xyz2-3456", "é" * 28])
def test_any_other_code_does_not_match(typed: str) -> None:
    _, code_digest = new_verification_code()
    assert not code_matches(typed, code_digest)


def test_the_request_never_holds_the_code() -> None:
    request, code = ask(LockAction.LOCK, UNLOCKED)
    assert code not in repr(request)
    assert code.replace("-", "") not in repr(request)


# Requesting


def test_a_lock_request_waits_one_hour_for_its_code_and_changes_nothing_yet() -> None:
    _, code_digest = new_verification_code()
    step = request_lock(UNLOCKED, (), requester=ALICE, code_digest=code_digest, now=T0)
    assert step.event is LockEvent.REQUESTED
    assert str(step.event) == "domains:registry-lock:requested"
    assert step.effect is None and step.refusal is None
    assert step.domain == UNLOCKED
    request = step.request
    assert request.action is LockAction.LOCK
    assert request.domain == NAME
    assert request.requested_by == "usr_alice"
    assert request.requested_at == T0
    assert request.expires_at == T0 + timedelta(hours=1) == T0 + REQUEST_LIFETIME
    assert request.revision == 0
    assert request.code_digest == code_digest
    assert request.public_id.startswith("rlk_")
    assert request.state(T0) is RequestState.PENDING


def test_an_unlock_request_captures_the_revision_of_the_lock_it_would_remove() -> None:
    domain = DomainLock(NAME, locked=True, revision=7)
    request, _ = ask(LockAction.UNLOCK, domain, relock_after=timedelta(hours=6))
    assert request.action is LockAction.UNLOCK
    assert request.revision == 7
    assert request.relock_after == timedelta(hours=6)


@pytest.mark.parametrize(("action", "domain"), [(LockAction.LOCK, UNLOCKED),
                                                (LockAction.UNLOCK, LOCKED)])
@pytest.mark.parametrize("actor", [CAROL, SUPPORT])
def test_a_user_without_the_lock_permission_cannot_request(
        action: LockAction, domain: DomainLock, actor: LockActor) -> None:
    with pytest.raises(PermissionDenied, match="registry-lock permission"):
        ask(action, domain, by=actor)


def test_a_second_request_while_one_is_pending_is_refused() -> None:
    first, _ = ask(LockAction.LOCK, UNLOCKED)
    with pytest.raises(LockRefused, match=first.public_id) as refused:
        ask(LockAction.LOCK, UNLOCKED, by=BOB, at=T0 + timedelta(minutes=10),
            requests=(first,))
    assert refused.value.reason is RefusalReason.PENDING_REQUEST


def test_a_pending_unlock_blocks_a_second_unlock_from_staff_too() -> None:
    first, _ = ask(LockAction.UNLOCK, LOCKED)
    with pytest.raises(LockRefused) as refused:
        ask(LockAction.UNLOCK, LOCKED, by=STAFF, requests=(first,))
    assert refused.value.reason is RefusalReason.PENDING_REQUEST


def test_a_request_that_expired_or_ended_no_longer_blocks_a_new_one() -> None:
    expired, _ = ask(LockAction.LOCK, UNLOCKED)
    cancelled, _ = ask(LockAction.LOCK, UNLOCKED)
    cancelled = replace(cancelled, cancelled_at=T0, cancelled_by="usr_alice")
    later = T0 + REQUEST_LIFETIME
    request, _ = ask(LockAction.LOCK, UNLOCKED, at=later, requests=(expired, cancelled))
    assert request.state(later) is RequestState.PENDING


def test_locking_a_locked_domain_is_refused() -> None:
    with pytest.raises(LockRefused, match="already locked") as refused:
        ask(LockAction.LOCK, LOCKED)
    assert refused.value.reason is RefusalReason.ALREADY_LOCKED


def test_unlocking_an_unlocked_domain_is_refused() -> None:
    with pytest.raises(LockRefused, match="not locked") as refused:
        ask(LockAction.UNLOCK, UNLOCKED)
    assert refused.value.reason is RefusalReason.NOT_LOCKED


@pytest.mark.parametrize("delay", [timedelta(0), timedelta(hours=-1)])
def test_a_relock_delay_must_be_positive(delay: timedelta) -> None:
    with pytest.raises(ValidationFailed) as failed:
        ask(LockAction.UNLOCK, LOCKED, relock_after=delay)
    assert [(e.field, e.code) for e in failed.value.errors] == [("relock_after", "not_positive")]


def test_a_lock_request_cannot_carry_a_relock_delay() -> None:
    request, _ = ask(LockAction.LOCK, UNLOCKED)
    with pytest.raises(ValueError, match="relock_after"):
        replace(request, relock_after=timedelta(hours=1))


def test_a_request_needs_the_digest_not_the_code() -> None:
    code, _ = new_verification_code()
    with pytest.raises(ValueError, match="code_digest"):
        request_lock(UNLOCKED, (), requester=ALICE, code_digest=code, now=T0)


def test_a_time_without_a_zone_is_a_programming_error() -> None:
    _, code_digest = new_verification_code()
    with pytest.raises(ValueError, match="timezone-aware"):
        request_lock(UNLOCKED, (), requester=ALICE, code_digest=code_digest,
                     now=datetime(2025, 3, 1, 12, 0))


def test_requests_of_another_domain_are_a_programming_error() -> None:
    elsewhere, _ = ask(LockAction.LOCK, DomainLock("example.net"))
    with pytest.raises(ValueError, match=r"example\.net"):
        ask(LockAction.LOCK, UNLOCKED, requests=(elsewhere,))


# Verifying and completing


def test_the_right_code_completes_a_lock_and_sets_the_three_server_statuses() -> None:
    request, code = ask(LockAction.LOCK, UNLOCKED)
    at = T0 + timedelta(minutes=5)
    step = verify(request, UNLOCKED, code=code, actor=ALICE, now=at)
    assert step.event is LockEvent.COMPLETED
    assert step.refusal is None
    assert step.effect == LOCK_EFFECT
    assert step.effect.add == SERVER_STATUSES == REGISTRY_LOCK_STATUSES
    assert step.effect.remove == frozenset()
    assert step.domain == DomainLock(NAME, locked=True, revision=1)
    assert step.request.verified_at == at
    assert step.request.completed_at == at
    assert step.request.state(at) is RequestState.COMPLETED


def test_the_right_code_completes_an_unlock_and_keeps_the_revision() -> None:
    request, code = ask(LockAction.UNLOCK, LOCKED)
    step = verify(request, LOCKED, code=code, actor=ALICE, now=T0 + timedelta(minutes=1))
    assert step.event is LockEvent.COMPLETED
    assert step.effect == UNLOCK_EFFECT
    assert step.effect.remove == SERVER_STATUSES
    assert step.effect.add == frozenset()
    assert step.domain == DomainLock(NAME, locked=False, revision=1)


def test_the_code_still_works_one_microsecond_before_the_hour() -> None:
    request, code = ask(LockAction.LOCK, UNLOCKED)
    at = T0 + REQUEST_LIFETIME - timedelta(microseconds=1)
    step = verify(request, UNLOCKED, code=code, actor=ALICE, now=at)
    assert step.event is LockEvent.COMPLETED
    assert step.domain.locked


def test_the_code_is_refused_at_exactly_one_hour_and_the_expiry_is_recorded() -> None:
    request, code = ask(LockAction.LOCK, UNLOCKED)
    at = T0 + timedelta(hours=1)
    step = verify(request, UNLOCKED, code=code, actor=ALICE, now=at)
    assert step.event is LockEvent.EXPIRED
    assert refusal_reason(step) is RefusalReason.EXPIRED
    assert step.effect is None
    assert step.domain == UNLOCKED
    assert step.request.expired_at == at
    assert step.request.verified_at is None
    assert step.request.state(at) is RequestState.EXPIRED


def test_a_recorded_expiry_refuses_the_code_with_nothing_more_to_save() -> None:
    request, code = ask(LockAction.LOCK, UNLOCKED)
    expired = expire(request, UNLOCKED, now=T0 + REQUEST_LIFETIME).request
    with pytest.raises(LockRefused) as refused:
        verify(expired, UNLOCKED, code=code, actor=ALICE, now=T0 + REQUEST_LIFETIME)
    assert refused.value.reason is RefusalReason.EXPIRED


def test_a_replayed_code_is_refused_once_the_request_completed() -> None:
    request, code = ask(LockAction.LOCK, UNLOCKED)
    done = verify(request, UNLOCKED, code=code, actor=ALICE, now=T0 + timedelta(minutes=1))
    with pytest.raises(LockRefused, match="already used") as refused:
        verify(done.request, done.domain, code=code, actor=ALICE,
               now=T0 + timedelta(minutes=2))
    assert refused.value.reason is RefusalReason.CODE_USED


def test_a_code_used_while_the_request_waits_for_approval_cannot_be_used_again() -> None:
    request, code = ask(LockAction.LOCK, UNLOCKED, needs_approval=True)
    verified = verify(request, UNLOCKED, code=code, actor=ALICE, now=T0).request
    with pytest.raises(LockRefused, match="waits for approval") as refused:
        verify(verified, UNLOCKED, code=code, actor=ALICE, now=T0 + timedelta(minutes=1))
    assert refused.value.reason is RefusalReason.CODE_USED
    assert verified.failed_attempts == 0


@pytest.mark.parametrize("colleague", [BOB, STAFF])
def test_only_the_requester_can_redeem_the_code(colleague: LockActor) -> None:
    request, code = ask(LockAction.UNLOCK, LOCKED)
    with pytest.raises(PermissionDenied, match="only the user who made"):
        verify(request, LOCKED, code=code, actor=colleague, now=T0)


def test_a_requester_who_lost_the_permission_cannot_redeem_the_code() -> None:
    request, code = ask(LockAction.UNLOCK, LOCKED)
    demoted = replace(ALICE, may_lock=False)
    with pytest.raises(PermissionDenied, match="no longer"):
        verify(request, LOCKED, code=code, actor=demoted, now=T0)


def test_a_wrong_code_is_refused_counted_and_saved() -> None:
    request, _ = ask(LockAction.UNLOCK, LOCKED)
    step = verify(request, LOCKED, code="aaaa-bbbb-cccc-dddd-eeee-ffff-gggg", actor=ALICE,
                  now=T0)
    assert step.event is LockEvent.REFUSED
    assert isinstance(step.refusal, ValidationFailed)
    assert [(e.field, e.code) for e in step.refusal.errors] == [("code", "wrong_code")]
    assert "4 attempts left" in step.refusal.errors[0].message
    assert step.request.failed_attempts == 1
    assert step.request.state(T0) is RequestState.PENDING
    assert step.effect is None
    assert step.domain == LOCKED


def test_the_fifth_wrong_code_cancels_the_request_and_the_right_one_no_longer_works() -> None:
    request, code = ask(LockAction.UNLOCK, LOCKED)
    for attempt in range(1, MAX_FAILED_ATTEMPTS):
        step = verify(request, LOCKED, code="wrong", actor=ALICE, now=T0)
        request = step.request
        assert step.event is LockEvent.REFUSED
        assert request.failed_attempts == attempt
        assert request.state(T0) is RequestState.PENDING
    fifth = verify(request, LOCKED, code="wrong", actor=ALICE, now=T0)
    assert MAX_FAILED_ATTEMPTS == 5
    assert fifth.event is LockEvent.CANCELLED
    assert refusal_reason(fifth) is RefusalReason.TOO_MANY_ATTEMPTS
    assert fifth.request.failed_attempts == 5
    assert fifth.request.cancelled_by == ATTEMPTS_CANCELLER
    assert fifth.request.state(T0) is RequestState.CANCELLED
    assert fifth.effect is None
    with pytest.raises(LockRefused) as refused:
        verify(fifth.request, LOCKED, code=code, actor=ALICE, now=T0)
    assert refused.value.reason is RefusalReason.CANCELLED


def test_a_wrong_code_after_the_hour_records_the_expiry_not_an_attempt() -> None:
    request, _ = ask(LockAction.LOCK, UNLOCKED)
    step = verify(request, UNLOCKED, code="wrong", actor=ALICE, now=T0 + REQUEST_LIFETIME)
    assert step.event is LockEvent.EXPIRED
    assert step.request.failed_attempts == 0


# Approval by a second staff member


def test_a_request_needing_approval_is_not_completed_by_the_code_alone() -> None:
    request, code = ask(LockAction.UNLOCK, LOCKED, needs_approval=True)
    step = verify(request, LOCKED, code=code, actor=ALICE, now=T0 + timedelta(minutes=3))
    assert step.event is LockEvent.VERIFIED
    assert step.effect is None and step.refusal is None
    assert step.domain == LOCKED
    assert step.request.verified_at == T0 + timedelta(minutes=3)
    assert step.request.state(T0 + timedelta(minutes=3)) is RequestState.PENDING


def test_an_approval_alone_does_not_complete_the_request() -> None:
    request, _ = ask(LockAction.UNLOCK, LOCKED, needs_approval=True)
    step = approve(request, LOCKED, approver=STAFF, now=T0 + timedelta(minutes=3))
    assert step.event is LockEvent.APPROVED
    assert step.effect is None and step.refusal is None
    assert step.domain == LOCKED
    assert step.request.approved_by == "usr_staff"
    assert step.request.approved_at == T0 + timedelta(minutes=3)
    assert step.request.state(T0 + timedelta(minutes=3)) is RequestState.PENDING


def test_code_then_approval_completes_the_request() -> None:
    request, code = ask(LockAction.UNLOCK, LOCKED, needs_approval=True)
    verified = verify(request, LOCKED, code=code, actor=ALICE, now=T0).request
    step = approve(verified, LOCKED, approver=STAFF, now=T0 + timedelta(minutes=20))
    assert step.event is LockEvent.COMPLETED
    assert step.effect == UNLOCK_EFFECT
    assert step.domain == DomainLock(NAME, locked=False, revision=1)
    assert step.request.completed_at == T0 + timedelta(minutes=20)


def test_approval_then_code_completes_the_request() -> None:
    request, code = ask(LockAction.LOCK, UNLOCKED, needs_approval=True)
    approved = approve(request, UNLOCKED, approver=STAFF, now=T0).request
    step = verify(approved, UNLOCKED, code=code, actor=ALICE, now=T0 + timedelta(minutes=20))
    assert step.event is LockEvent.COMPLETED
    assert step.effect == LOCK_EFFECT
    assert step.domain == DomainLock(NAME, locked=True, revision=1)


def test_the_requester_cannot_approve_their_own_request() -> None:
    request, _ = ask(LockAction.UNLOCK, LOCKED, by=STAFF, needs_approval=True)
    with pytest.raises(PermissionDenied, match="different person"):
        approve(request, LOCKED, approver=STAFF, now=T0)
    assert approve(request, LOCKED, approver=OTHER_STAFF, now=T0).event is LockEvent.APPROVED


@pytest.mark.parametrize("approver", [BOB, SUPPORT])
def test_an_approver_is_a_staff_member_with_the_lock_permission(approver: LockActor) -> None:
    request, _ = ask(LockAction.UNLOCK, LOCKED, needs_approval=True)
    with pytest.raises(PermissionDenied, match="staff member"):
        approve(request, LOCKED, approver=approver, now=T0)


def test_approval_of_a_request_that_needs_none_is_refused() -> None:
    request, _ = ask(LockAction.UNLOCK, LOCKED)
    with pytest.raises(LockRefused) as refused:
        approve(request, LOCKED, approver=STAFF, now=T0)
    assert refused.value.reason is RefusalReason.APPROVAL_NOT_NEEDED


def test_a_second_approval_is_refused() -> None:
    request, _ = ask(LockAction.UNLOCK, LOCKED, needs_approval=True)
    approved = approve(request, LOCKED, approver=STAFF, now=T0).request
    with pytest.raises(LockRefused, match="usr_staff") as refused:
        approve(approved, LOCKED, approver=OTHER_STAFF, now=T0)
    assert refused.value.reason is RefusalReason.ALREADY_APPROVED


def test_an_approval_after_the_hour_is_refused_even_if_the_code_was_redeemed() -> None:
    request, code = ask(LockAction.UNLOCK, LOCKED, needs_approval=True)
    verified = verify(request, LOCKED, code=code, actor=ALICE, now=T0).request
    step = approve(verified, LOCKED, approver=STAFF, now=T0 + REQUEST_LIFETIME)
    assert step.event is LockEvent.EXPIRED
    assert refusal_reason(step) is RefusalReason.EXPIRED
    assert step.effect is None
    assert step.domain == LOCKED


def test_approval_of_a_completed_request_is_refused() -> None:
    request, code = ask(LockAction.LOCK, UNLOCKED, needs_approval=True)
    approved = approve(request, UNLOCKED, approver=STAFF, now=T0)
    done = verify(approved.request, UNLOCKED, code=code, actor=ALICE, now=T0)
    with pytest.raises(LockRefused) as refused:
        approve(done.request, done.domain, approver=OTHER_STAFF, now=T0)
    assert refused.value.reason is RefusalReason.COMPLETED


# Superseded requests: the lock revision


def test_an_unlock_older_than_the_current_lock_can_never_remove_it() -> None:
    request, code = ask(LockAction.UNLOCK, LOCKED)  # against revision 1
    relocked = DomainLock(NAME, locked=True, revision=2)  # unlocked and locked again since
    at = T0 + timedelta(minutes=30)
    step = verify(request, relocked, code=code, actor=ALICE, now=at)
    assert step.event is LockEvent.SUPERSEDED
    assert refusal_reason(step) is RefusalReason.SUPERSEDED
    assert "revision 1, now 2" in str(step.refusal)
    assert step.effect is None
    assert step.domain == relocked
    assert step.request.superseded_at == at
    assert step.request.completed_at is None
    assert step.request.state(at) is RequestState.SUPERSEDED
    with pytest.raises(LockRefused) as refused:
        verify(step.request, relocked, code=code, actor=ALICE, now=at)
    assert refused.value.reason is RefusalReason.SUPERSEDED


def test_an_unlock_overtaken_while_it_waits_for_approval_is_superseded_on_approval() -> None:
    request, code = ask(LockAction.UNLOCK, LOCKED, needs_approval=True)
    verified = verify(request, LOCKED, code=code, actor=ALICE, now=T0).request
    relocked = DomainLock(NAME, locked=True, revision=2)
    step = approve(verified, relocked, approver=STAFF, now=T0 + timedelta(minutes=10))
    assert step.event is LockEvent.SUPERSEDED
    assert step.effect is None
    assert step.domain == relocked


def test_an_unlock_whose_domain_is_already_unlocked_is_superseded() -> None:
    request, code = ask(LockAction.UNLOCK, LOCKED)
    already = DomainLock(NAME, locked=False, revision=1)
    step = verify(request, already, code=code, actor=ALICE, now=T0)
    assert step.event is LockEvent.SUPERSEDED
    assert step.effect is None


def test_a_lock_overtaken_by_another_lock_is_superseded_not_applied_twice() -> None:
    request, code = ask(LockAction.LOCK, UNLOCKED)
    locked_meanwhile = DomainLock(NAME, locked=True, revision=1)
    step = verify(request, locked_meanwhile, code=code, actor=ALICE, now=T0)
    assert step.event is LockEvent.SUPERSEDED
    assert step.effect is None
    assert step.domain == locked_meanwhile


# Cancelling and expiring


@pytest.mark.parametrize("actor", [ALICE, STAFF])
def test_the_requester_or_staff_can_cancel_a_pending_request(actor: LockActor) -> None:
    request, code = ask(LockAction.UNLOCK, LOCKED)
    step = cancel(request, LOCKED, actor=actor, now=T0 + timedelta(minutes=2))
    assert step.event is LockEvent.CANCELLED
    assert step.effect is None and step.refusal is None
    assert step.request.cancelled_by == actor.user_id
    assert step.request.state(T0 + timedelta(minutes=2)) is RequestState.CANCELLED
    with pytest.raises(LockRefused):
        verify(step.request, LOCKED, code=code, actor=ALICE, now=T0 + timedelta(minutes=3))


@pytest.mark.parametrize("actor", [BOB, CAROL, SUPPORT])
def test_no_one_else_can_cancel_a_request(actor: LockActor) -> None:
    request, _ = ask(LockAction.UNLOCK, LOCKED)
    with pytest.raises(PermissionDenied):
        cancel(request, LOCKED, actor=actor, now=T0)


def test_a_completed_request_cannot_be_cancelled() -> None:
    request, code = ask(LockAction.LOCK, UNLOCKED)
    done = verify(request, UNLOCKED, code=code, actor=ALICE, now=T0)
    with pytest.raises(LockRefused) as refused:
        cancel(done.request, done.domain, actor=ALICE, now=T0)
    assert refused.value.reason is RefusalReason.COMPLETED


def test_a_request_is_expired_from_exactly_one_hour() -> None:
    request, _ = ask(LockAction.LOCK, UNLOCKED)
    with pytest.raises(LockRefused) as refused:
        expire(request, UNLOCKED, now=T0 + REQUEST_LIFETIME - timedelta(microseconds=1))
    assert refused.value.reason is RefusalReason.NOT_EXPIRED
    step = expire(request, UNLOCKED, now=T0 + REQUEST_LIFETIME)
    assert step.event is LockEvent.EXPIRED
    assert step.refusal is None and step.effect is None
    assert step.request.expired_at == T0 + REQUEST_LIFETIME
    with pytest.raises(LockRefused) as again:
        expire(step.request, UNLOCKED, now=T0 + 2 * REQUEST_LIFETIME)
    assert again.value.reason is RefusalReason.EXPIRED


def test_the_sweep_lists_only_unrecorded_expiries_oldest_first() -> None:
    older, _ = ask(LockAction.LOCK, UNLOCKED, at=T0)
    newer, _ = ask(LockAction.LOCK, UNLOCKED, at=T0 + timedelta(minutes=30))
    recorded = replace(older, public_id="rlk_recorded", expired_at=T0 + REQUEST_LIFETIME)
    fresh, _ = ask(LockAction.LOCK, UNLOCKED, at=T0 + timedelta(minutes=80))
    now = T0 + timedelta(minutes=90)
    assert expired_requests([fresh, newer, recorded, older], now) == [older, newer]


# Automatic relock


def unlocked_with_relock(after: timedelta = timedelta(hours=2)
                         ) -> tuple[LockRequest, DomainLock, datetime]:
    """A completed unlock of revision 1, with its relock delay, and when it completed."""
    request, code = ask(LockAction.UNLOCK, LOCKED, relock_after=after)
    done_at = T0 + timedelta(minutes=5)
    step = verify(request, LOCKED, code=code, actor=ALICE, now=done_at)
    assert step.event is LockEvent.COMPLETED
    return step.request, step.domain, done_at


def test_a_relock_is_due_exactly_its_delay_after_the_unlock_completed() -> None:
    unlock, _, done_at = unlocked_with_relock()
    assert unlock.relock_due_at == done_at + timedelta(hours=2)
    assert due_relocks([unlock], done_at + timedelta(hours=2, microseconds=-1)) == []
    assert due_relocks([unlock], done_at + timedelta(hours=2)) == [unlock]


def test_a_due_relock_locks_again_without_a_code() -> None:
    unlock, domain, done_at = unlocked_with_relock()
    at = done_at + timedelta(hours=2)
    step = relock(unlock, domain, now=at)
    assert step.event is LockEvent.RELOCKED
    assert step.effect == LOCK_EFFECT
    assert step.domain == DomainLock(NAME, locked=True, revision=2)
    assert step.lock is not None
    assert step.lock.action is LockAction.LOCK
    assert step.lock.requested_by == RELOCK_REQUESTER
    assert step.lock.code_digest is None
    assert step.lock.relock_of == unlock.public_id
    assert step.lock.revision == 1
    assert step.lock.state(at) is RequestState.COMPLETED
    assert step.unlock.relock_settled_at == at
    assert step.unlock.relock_id == step.lock.public_id
    assert due_relocks([step.unlock], at + timedelta(days=1)) == []


def test_a_relock_already_done_is_refused() -> None:
    unlock, domain, done_at = unlocked_with_relock()
    first = relock(unlock, domain, now=done_at + timedelta(hours=2))
    with pytest.raises(LockRefused) as refused:
        relock(first.unlock, first.domain, now=done_at + timedelta(hours=3))
    assert refused.value.reason is RefusalReason.RELOCK_DONE


def test_a_relock_has_nothing_to_do_when_the_domain_was_locked_again_meanwhile() -> None:
    unlock, domain, done_at = unlocked_with_relock()
    request, code = ask(LockAction.LOCK, domain, at=done_at + timedelta(minutes=30))
    relocked_by_hand = verify(request, domain, code=code, actor=ALICE,
                              now=done_at + timedelta(minutes=31))
    assert relocked_by_hand.domain == DomainLock(NAME, locked=True, revision=2)
    at = done_at + timedelta(hours=2)
    step = relock(unlock, relocked_by_hand.domain, now=at)
    assert step.event is LockEvent.SUPERSEDED
    assert step.lock is None
    assert step.effect is None
    assert step.domain == relocked_by_hand.domain
    assert step.unlock.relock_settled_at == at
    assert step.unlock.relock_id is None
    assert due_relocks([step.unlock], at) == []


def test_a_relock_leaves_a_newer_unlock_in_charge() -> None:
    unlock, _, done_at = unlocked_with_relock()
    # Locked again (revision 2) and unlocked again for good, before the relock was due.
    unlocked_again = DomainLock(NAME, locked=False, revision=2)
    step = relock(unlock, unlocked_again, now=done_at + timedelta(hours=2))
    assert step.event is LockEvent.SUPERSEDED
    assert step.effect is None
    assert step.domain == unlocked_again


def test_a_pending_lock_request_overtaken_by_the_relock_is_superseded() -> None:
    unlock, domain, done_at = unlocked_with_relock()
    request, code = ask(LockAction.LOCK, domain, at=done_at + timedelta(hours=1, minutes=50))
    relocked = relock(unlock, domain, now=done_at + timedelta(hours=2))
    step = verify(request, relocked.domain, code=code, actor=ALICE,
                  now=done_at + timedelta(hours=2, minutes=1))
    assert step.event is LockEvent.SUPERSEDED
    assert step.effect is None
    assert step.domain == relocked.domain


def test_a_relock_before_its_time_is_refused() -> None:
    unlock, domain, done_at = unlocked_with_relock()
    with pytest.raises(LockRefused) as refused:
        relock(unlock, domain, now=done_at + timedelta(hours=1))
    assert refused.value.reason is RefusalReason.RELOCK_NOT_DUE


def test_an_unlock_without_a_relock_delay_is_never_relocked() -> None:
    request, code = ask(LockAction.UNLOCK, LOCKED)
    done = verify(request, LOCKED, code=code, actor=ALICE, now=T0)
    assert done.request.relock_due_at is None
    assert due_relocks([done.request], T0 + timedelta(days=365)) == []
    with pytest.raises(LockRefused) as refused:
        relock(done.request, done.domain, now=T0 + timedelta(days=365))
    assert refused.value.reason is RefusalReason.NO_RELOCK


def test_a_pending_unlock_is_not_due_for_relock() -> None:
    request, _ = ask(LockAction.UNLOCK, LOCKED, relock_after=timedelta(hours=1))
    assert due_relocks([request], T0 + timedelta(days=1)) == []


def test_due_relocks_come_earliest_first() -> None:
    late, _, _ = unlocked_with_relock(timedelta(hours=6))
    early, _, _ = unlocked_with_relock(timedelta(hours=1))
    assert due_relocks([late, early], T0 + timedelta(days=1)) == [early, late]


# Changes while locked: the DNSSEC exception


@pytest.mark.parametrize(("kinds", "hosted", "allowed"), [
    ({"ds"}, True, True),
    ({"ds"}, False, False),
    ({"ds", "nameservers"}, True, False),
    ({"nameservers"}, True, False),
    ({"contacts"}, True, False),
    (set(), True, False),
])
def test_only_a_ds_change_for_a_hosted_zone_is_permitted_while_locked(
        kinds: set[str], hosted: bool, allowed: bool) -> None:
    assert permits_while_locked(kinds, hosted) is allowed


def test_a_ds_rollover_lifts_only_update_prohibited_and_sets_it_back() -> None:
    window = change_while_locked(LOCKED, {"ds"}, hosted_zone=True)
    assert window == DS_WINDOW
    assert window.lift.remove == {"serverUpdateProhibited"}
    assert window.lift.add == frozenset()
    assert window.restore.add == {"serverUpdateProhibited"}
    assert window.restore.remove == frozenset()
    assert window.lifted == "domains:registry-lock:lifted-for-ds"
    assert window.restored == "domains:registry-lock:restored-after-ds"


def test_any_other_change_to_a_locked_domain_is_refused() -> None:
    with pytest.raises(LockRefused, match="nameservers") as refused:
        change_while_locked(LOCKED, {"nameservers", "ds"}, hosted_zone=True)
    assert refused.value.reason is RefusalReason.LOCKED


def test_an_unlocked_domain_changes_as_usual() -> None:
    assert change_while_locked(UNLOCKED, {"nameservers"}, hosted_zone=False) is None


# The error


def test_a_lock_refusal_is_a_conflict_that_names_its_reason() -> None:
    with pytest.raises(LockRefused) as refused:
        ask(LockAction.LOCK, LOCKED)
    assert isinstance(refused.value, Conflict)
    assert refused.value.http_status == 409
    assert refused.value.extra() == {"reason": "already_locked"}
    assert refused.value.type_slug == "registry-lock-refused"


# A whole story


def test_lock_unlock_and_automatic_relock_in_sequence() -> None:
    lock_request, code = ask(LockAction.LOCK, UNLOCKED, needs_approval=True)
    approved = approve(lock_request, UNLOCKED, approver=STAFF, now=T0)
    locked = verify(approved.request, UNLOCKED, code=code, actor=ALICE, now=T0)
    assert locked.domain == DomainLock(NAME, locked=True, revision=1)

    history: tuple[LockRequest, ...] = (locked.request,)
    unlock_at = T0 + timedelta(days=3)
    unlock_request, code = ask(LockAction.UNLOCK, locked.domain, by=BOB, at=unlock_at,
                               relock_after=timedelta(hours=4), requests=history)
    unlocked = verify(unlock_request, locked.domain, code=code, actor=BOB, now=unlock_at)
    assert unlocked.domain == DomainLock(NAME, locked=False, revision=1)

    history += (unlocked.request,)
    assert due_relocks(history, unlock_at + timedelta(hours=4)) == [unlocked.request]
    relocked = relock(unlocked.request, unlocked.domain, now=unlock_at + timedelta(hours=4))
    assert relocked.domain == DomainLock(NAME, locked=True, revision=2)
    assert relocked.effect == LOCK_EFFECT
