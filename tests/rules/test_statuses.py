"""The status authority (rules/statuses.py): holds from independent features combine into one
set of client statuses, and no feature lifts another's hold (RFC 5731 §2.3)."""

from __future__ import annotations

import pytest

from regshield.errors import ValidationFailed
from regshield.rules.statuses import (
    CLIENT_STATUSES,
    PENDING_EXCLUDES,
    PENDING_STATUSES,
    REASON_STATUSES,
    Hold,
    HoldReason,
    Operation,
    StatusChange,
    client_statuses,
    place,
    refusal,
    release,
    status_changes,
    status_problems,
    status_update_steps,
    validate_statuses,
)

LOCK = Hold.of(HoldReason.REGISTRAR_LOCK)
ACCURACY = Hold.of(HoldReason.ACCURACY_SUSPENSION)
ABUSE = Hold.of(HoldReason.ABUSE_SUSPENSION, reference="case-1")


def codes(statuses: set[str], rgp: tuple[str, ...] = ()) -> set[str]:
    return {problem.code for problem in status_problems(statuses, rgp)}


# Combining holds


def test_a_domain_without_holds_or_registry_statuses_is_ok() -> None:
    assert client_statuses(frozenset()) == {"ok"}


@pytest.mark.parametrize("reported", ["serverTransferProhibited", "pendingDelete", "inactive"])
def test_ok_is_not_claimed_while_the_registry_reports_another_status(reported: str) -> None:
    assert client_statuses(frozenset(), registry_statuses={reported}) == frozenset()


def test_ok_is_never_combined_with_a_hold() -> None:
    assert client_statuses({LOCK}) == {"clientTransferProhibited", "clientDeleteProhibited"}


def test_the_client_statuses_are_the_union_of_every_hold() -> None:
    holds = {LOCK, ACCURACY, Hold.of(HoldReason.REGISTRAR_UPDATE_LOCK)}
    assert client_statuses(holds) == {
        "clientTransferProhibited", "clientDeleteProhibited", "clientHold",
        "clientUpdateProhibited",
    }


def test_an_accuracy_suspension_holds_the_name_and_stops_transfers() -> None:
    # WAPS: no reply within 15 days -> clientHold + clientTransferProhibited (row 9).
    assert client_statuses({ACCURACY}) == {"clientHold", "clientTransferProhibited"}


def test_lifting_an_accuracy_suspension_keeps_the_abuse_hold() -> None:
    holds = release({ACCURACY, ABUSE}, HoldReason.ACCURACY_SUSPENSION)
    assert holds == {ABUSE}
    assert "clientHold" in client_statuses(holds)


def test_lifting_an_accuracy_suspension_keeps_the_registrar_locks_transfer_prohibition() -> None:
    holds = release({ACCURACY, LOCK}, HoldReason.ACCURACY_SUSPENSION)
    assert client_statuses(holds) == {"clientTransferProhibited", "clientDeleteProhibited"}


def test_renewing_an_expired_name_keeps_an_abuse_suspension_on_hold() -> None:
    expired = Hold.of(HoldReason.ERRP_EXPIRED)
    holds = release({expired, ABUSE}, HoldReason.ERRP_EXPIRED)
    assert client_statuses(holds) == {"clientHold"}


def test_closing_one_abuse_case_keeps_the_hold_of_another() -> None:
    second = Hold.of(HoldReason.ABUSE_SUSPENSION, reference="case-2")
    holds = release({ABUSE, second}, HoldReason.ABUSE_SUSPENSION, "case-1")
    assert holds == {second}
    assert client_statuses(holds) == {"clientHold"}


def test_the_last_released_hold_returns_the_domain_to_ok() -> None:
    holds = release({ABUSE}, HoldReason.ABUSE_SUSPENSION, "case-1")
    assert client_statuses(holds) == {"ok"}


def test_releasing_a_hold_that_is_not_there_changes_nothing() -> None:
    holds = frozenset({LOCK, ABUSE})
    assert release(holds, HoldReason.ACCURACY_SUSPENSION) == holds
    assert release(holds, HoldReason.ABUSE_SUSPENSION, "another-case") == holds


def test_an_abuse_suspension_may_also_stop_transfers_and_updates() -> None:
    strict = Hold.of(HoldReason.ABUSE_SUSPENSION, reference="case-1",
                     adding={"clientTransferProhibited", "clientUpdateProhibited"})
    assert strict.statuses == {"clientHold", "clientTransferProhibited",
                               "clientUpdateProhibited"}


def test_placing_a_hold_again_replaces_it_instead_of_keeping_both() -> None:
    strict = Hold.of(HoldReason.ABUSE_SUSPENSION, reference="case-1",
                     adding={"clientTransferProhibited"})
    holds = place(place({LOCK}, strict), ABUSE)
    assert holds == {LOCK, ABUSE}


@pytest.mark.parametrize("status", ["serverHold", "pendingDelete", "ok", "inactive", "locked"])
def test_a_hold_carries_only_client_statuses(status: str) -> None:
    with pytest.raises(ValueError, match="client statuses"):
        Hold.of(HoldReason.ABUSE_SUSPENSION, adding={status})


def test_a_hold_always_carries_the_statuses_of_its_reason() -> None:
    with pytest.raises(ValueError, match="clientTransferProhibited"):
        Hold(HoldReason.ACCURACY_SUSPENSION, frozenset({"clientHold"}))


@pytest.mark.parametrize("reason", list(HoldReason))
def test_every_reason_brings_client_statuses(reason: HoldReason) -> None:
    statuses = Hold.of(reason).statuses
    assert statuses and statuses <= CLIENT_STATUSES
    assert statuses == REASON_STATUSES[reason]


@pytest.mark.parametrize("reason", [
    HoldReason.CHANGE_OF_REGISTRANT_LOCK,
    HoldReason.TRANSFER_LOCK_AFTER_REGISTRATION,
    HoldReason.TRANSFER_LOCK_AFTER_TRANSFER,
])
def test_transfer_locks_stop_transfers_and_nothing_else(reason: HoldReason) -> None:
    assert client_statuses({Hold.of(reason)}) == {"clientTransferProhibited"}


# Changes sent to the registry


def test_status_changes_add_and_remove_only_client_statuses() -> None:
    current = {"clientTransferProhibited", "clientHold", "serverHold", "pendingTransfer"}
    desired = frozenset({"clientTransferProhibited", "clientDeleteProhibited",
                         "serverDeleteProhibited", "pendingDelete"})
    add, remove = status_changes(current, desired)
    assert (add, remove) == (frozenset({"clientDeleteProhibited"}), frozenset({"clientHold"}))


def test_status_changes_never_send_ok_or_inactive() -> None:
    assert status_changes({"ok"}, frozenset({"ok"})) == (frozenset(), frozenset())
    assert status_changes({"clientHold", "inactive"}, client_statuses(frozenset())) == (
        frozenset(), frozenset({"clientHold"}))


def test_lifting_a_suspension_removes_only_the_statuses_no_other_hold_needs() -> None:
    current = {"clientHold", "clientTransferProhibited", "clientDeleteProhibited"}
    desired = client_statuses(release({ACCURACY, LOCK}, HoldReason.ACCURACY_SUSPENSION))
    assert status_changes(current, desired) == (frozenset(), frozenset({"clientHold"}))


def test_without_the_update_lock_one_update_carries_the_whole_change() -> None:
    steps = status_update_steps({"clientTransferProhibited"},
                                frozenset({"clientHold", "clientUpdateProhibited"}))
    assert steps == (StatusChange(add=frozenset({"clientHold", "clientUpdateProhibited"}),
                                  remove=frozenset({"clientTransferProhibited"})),)


def test_under_the_update_lock_the_lock_is_removed_alone_first_and_restored_after() -> None:
    current = {"clientUpdateProhibited", "clientTransferProhibited"}
    desired = frozenset({"clientUpdateProhibited", "clientTransferProhibited", "clientHold"})
    steps = status_update_steps(current, desired)
    assert steps == (
        StatusChange(remove=frozenset({"clientUpdateProhibited"})),
        StatusChange(add=frozenset({"clientHold", "clientUpdateProhibited"})),
    )
    # Each step is one the registry accepts, given the statuses before it.
    statuses = set(current)
    for step in steps:
        assert refusal(Operation.UPDATE, statuses, adding=step.add, removing=step.remove,
                       changes_other_fields=False) is None
        statuses = (statuses - step.remove) | step.add
    assert statuses == desired


def test_lifting_the_update_lock_with_other_changes_removes_it_first() -> None:
    steps = status_update_steps({"clientUpdateProhibited", "clientHold"},
                                frozenset({"clientTransferProhibited"}))
    assert steps == (
        StatusChange(remove=frozenset({"clientUpdateProhibited"})),
        StatusChange(add=frozenset({"clientTransferProhibited"}),
                     remove=frozenset({"clientHold"})),
    )


def test_removing_only_the_update_lock_is_one_step() -> None:
    assert status_update_steps({"clientUpdateProhibited"}, frozenset({"ok"})) == (
        StatusChange(remove=frozenset({"clientUpdateProhibited"})),)


def test_nothing_to_change_sends_nothing() -> None:
    assert status_update_steps({"clientHold", "serverHold"}, frozenset({"clientHold"})) == ()


# Operations the statuses prohibit


@pytest.mark.parametrize(("status", "operation"), [
    ("clientUpdateProhibited", Operation.UPDATE),
    ("serverUpdateProhibited", Operation.UPDATE),
    ("clientDeleteProhibited", Operation.DELETE),
    ("serverDeleteProhibited", Operation.DELETE),
    ("clientTransferProhibited", Operation.TRANSFER),
    ("serverTransferProhibited", Operation.TRANSFER),
    ("clientRenewProhibited", Operation.RENEW),
    ("serverRenewProhibited", Operation.RENEW),
])
def test_each_prohibition_refuses_its_operation_and_names_itself(
        status: str, operation: Operation) -> None:
    reason = refusal(operation, {status})
    assert reason is not None and status in reason
    others = [op for op in Operation if op is not operation]
    assert all(refusal(op, {status}) is None for op in others)


def test_client_update_prohibited_allows_only_its_own_removal() -> None:
    statuses = {"clientUpdateProhibited", "clientHold"}
    assert refusal(Operation.UPDATE, statuses, removing={"clientUpdateProhibited"},
                   changes_other_fields=False) is None
    # Removing the lock while changing nameservers (or anything else) in the same command is not
    # removing it alone; a caller that does not say is refused.
    assert refusal(Operation.UPDATE, statuses, removing={"clientUpdateProhibited"}) is not None
    assert refusal(Operation.UPDATE, statuses, removing={"clientUpdateProhibited",
                                                         "clientHold"}) is not None
    assert refusal(Operation.UPDATE, statuses, removing={"clientUpdateProhibited"},
                   adding={"clientTransferProhibited"}) is not None
    assert refusal(Operation.UPDATE, statuses, adding={"clientDeleteProhibited"}) is not None


def test_server_update_prohibited_refuses_every_update_even_removing_the_client_lock() -> None:
    statuses = {"serverUpdateProhibited", "clientUpdateProhibited"}
    reason = refusal(Operation.UPDATE, statuses, removing={"clientUpdateProhibited"})
    assert reason is not None and "serverUpdateProhibited" in reason


@pytest.mark.parametrize("pending", sorted(PENDING_STATUSES))
@pytest.mark.parametrize("operation", list(Operation))
def test_an_operation_pending_at_the_registry_refuses_every_other(
        pending: str, operation: Operation) -> None:
    reason = refusal(operation, {pending})
    assert reason is not None and pending in reason


@pytest.mark.parametrize("statuses", [
    {"ok"}, {"inactive"}, {"clientHold"}, {"serverHold"}, {"clientHold", "serverHold"},
])
@pytest.mark.parametrize("operation", list(Operation))
def test_holds_and_inactive_prohibit_no_operation(
        statuses: set[str], operation: Operation) -> None:
    assert refusal(operation, statuses) is None


def test_a_registrar_lock_refuses_transfer_and_delete_but_not_renewal() -> None:
    statuses = client_statuses({LOCK})
    assert refusal(Operation.TRANSFER, statuses) is not None
    assert refusal(Operation.DELETE, statuses) is not None
    assert refusal(Operation.RENEW, statuses) is None
    assert refusal(Operation.UPDATE, statuses) is None


# Status sets reported by a registry


@pytest.mark.parametrize("statuses", [
    {"ok"},
    {"inactive"},
    {"clientTransferProhibited", "serverDeleteProhibited", "serverHold"},
    {"pendingTransfer", "clientDeleteProhibited"},
    {"pendingDelete", "serverHold"},
])
def test_sound_status_sets_are_accepted(statuses: set[str]) -> None:
    assert status_problems(statuses) == []
    assert validate_statuses(statuses) == statuses


def test_an_unknown_status_is_refused_by_name() -> None:
    problems = status_problems({"clientHold", "clientLocked"})
    assert [(p.code, "clientLocked" in p.message) for p in problems] == [("unknown_status", True)]


@pytest.mark.parametrize("other", ["inactive", "clientHold", "serverTransferProhibited",
                                   "pendingCreate"])
def test_ok_combined_with_any_other_status_is_refused(other: str) -> None:
    assert codes({"ok", other}) == {"ok_combined"}


def test_pending_statuses_exclude_each_other() -> None:
    assert codes({"pendingTransfer", "pendingUpdate"}) == {"pending_combined"}


@pytest.mark.parametrize(("pending", "prohibition"), [
    (pending, prohibition)
    for pending, prohibitions in sorted(PENDING_EXCLUDES.items())
    for prohibition in sorted(prohibitions)
])
def test_a_pending_operation_cannot_coexist_with_its_prohibition(
        pending: str, prohibition: str) -> None:
    assert codes({pending, prohibition}) == {"pending_prohibited"}


def test_a_domain_always_has_a_status() -> None:
    assert codes(set()) == {"no_status"}


def test_redemption_and_restore_need_pending_delete() -> None:
    assert codes({"pendingDelete"}, ("redemptionPeriod",)) == set()
    assert codes({"clientHold"}, ("redemptionPeriod",)) == {"rgp_without_pending_delete"}
    assert codes({"ok"}, ("pendingRestore",)) == {"rgp_without_pending_delete"}
    assert codes({"ok"}, ("autoRenewPeriod",)) == set()
    assert codes({"ok"}, ("graceful",)) == {"unknown_rgp_status"}


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ValidationFailed) as refused:
        validate_statuses({"ok", "pendingDelete", "pendingRenew", "clientDeleteProhibited",
                           "frozen"})
    assert {e.code for e in refused.value.errors} == {
        "unknown_status", "ok_combined", "pending_combined", "pending_prohibited"}
