"""The one status authority: a domain's EPP statuses (RFC 5731 §2.3), decided from the
independent reasons features have for them.

Every feature that needs a client status places a `Hold` for its own reason (a registrar lock,
an accuracy suspension, an abuse case, the ERRP interruption, ...) and releases only its own.
The statuses the registrar asks the registry for are the union of every hold in place, so
lifting one suspension never lifts another's clientHold. Server statuses (server*) belong to
the registry and pending statuses (pending*) to operations in flight there: the registrar reads
them, refuses what they prohibit, and never adds or removes them.

Pure: no I/O, no clock. Callers keep the holds with the domain and diff against what the
registry reports.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from enum import StrEnum

from regshield.errors import FieldError, ValidationFailed


class DomainStatus(StrEnum):
    """EPP domain status values (RFC 5731 §2.3). Members compare equal to their EPP strings."""

    CLIENT_DELETE_PROHIBITED = "clientDeleteProhibited"
    CLIENT_HOLD = "clientHold"
    CLIENT_RENEW_PROHIBITED = "clientRenewProhibited"
    CLIENT_TRANSFER_PROHIBITED = "clientTransferProhibited"
    CLIENT_UPDATE_PROHIBITED = "clientUpdateProhibited"
    SERVER_DELETE_PROHIBITED = "serverDeleteProhibited"
    SERVER_HOLD = "serverHold"
    SERVER_RENEW_PROHIBITED = "serverRenewProhibited"
    SERVER_TRANSFER_PROHIBITED = "serverTransferProhibited"
    SERVER_UPDATE_PROHIBITED = "serverUpdateProhibited"
    INACTIVE = "inactive"
    OK = "ok"
    PENDING_CREATE = "pendingCreate"
    PENDING_DELETE = "pendingDelete"
    PENDING_RENEW = "pendingRenew"
    PENDING_TRANSFER = "pendingTransfer"
    PENDING_UPDATE = "pendingUpdate"


S = DomainStatus
ALL_STATUSES: frozenset[str] = frozenset(DomainStatus)
# RFC 5731 §3.2.5: a client may add or remove only the values prefixed with "client".
CLIENT_STATUSES: frozenset[str] = frozenset(s for s in DomainStatus if s.startswith("client"))
SERVER_STATUSES: frozenset[str] = frozenset(s for s in DomainStatus if s.startswith("server"))
PENDING_STATUSES: frozenset[str] = frozenset(s for s in DomainStatus if s.startswith("pending"))

# RFC 5731 §2.3: "pendingX" MUST NOT be combined with "clientXProhibited" or "serverXProhibited".
PENDING_EXCLUDES: dict[str, frozenset[str]] = {
    S.PENDING_DELETE: frozenset({S.CLIENT_DELETE_PROHIBITED, S.SERVER_DELETE_PROHIBITED}),
    S.PENDING_RENEW: frozenset({S.CLIENT_RENEW_PROHIBITED, S.SERVER_RENEW_PROHIBITED}),
    S.PENDING_TRANSFER: frozenset({S.CLIENT_TRANSFER_PROHIBITED, S.SERVER_TRANSFER_PROHIBITED}),
    S.PENDING_UPDATE: frozenset({S.CLIENT_UPDATE_PROHIBITED, S.SERVER_UPDATE_PROHIBITED}),
}

# RFC 3915 §2 (registry grace period): reported in the rgp extension, beside the EPP statuses.
RGP_STATUSES: frozenset[str] = frozenset({
    "addPeriod", "autoRenewPeriod", "renewPeriod", "transferPeriod",
    "redemptionPeriod", "pendingRestore", "pendingDelete",
})
# Only a deleted name is redeemable or being restored, so these need the EPP pendingDelete.
RGP_NEEDS_PENDING_DELETE: frozenset[str] = frozenset({"redemptionPeriod", "pendingRestore"})


class HoldReason(StrEnum):
    """Why a feature wants client statuses on a domain. One feature, one reason."""

    REGISTRAR_LOCK = "registrar_lock"  # the registrant's lock, on by default (SAC044, row 22)
    REGISTRAR_UPDATE_LOCK = "registrar_update_lock"  # the registrant also froze updates
    ACCURACY_SUSPENSION = "accuracy_suspension"  # WAPS: unverified or wilfully false data
    ABUSE_SUSPENSION = "abuse_suspension"  # RAA 3.18.2 mitigation
    ERRP_EXPIRED = "errp_expired"  # ERRP: DNS interrupted after expiry, renewal still possible
    CHANGE_OF_REGISTRANT_LOCK = "change_of_registrant_lock"  # Transfer Policy II.C, 60 days
    TRANSFER_LOCK_AFTER_REGISTRATION = "transfer_lock_after_registration"  # 60 (TPR: 30) days
    TRANSFER_LOCK_AFTER_TRANSFER = "transfer_lock_after_transfer"  # 60 (TPR: 30) days
    DISPUTE_LOCK = "dispute_lock"  # UDRP, URS or court order: no transfer, no deletion


# The statuses each reason always brings. Registrant changes under a dispute lock are refused
# by regshield's own flows: clientUpdateProhibited would also freeze the nameservers, which the
# UDRP lock must not touch.
REASON_STATUSES: dict[HoldReason, frozenset[str]] = {
    HoldReason.REGISTRAR_LOCK: frozenset({S.CLIENT_TRANSFER_PROHIBITED,
                                          S.CLIENT_DELETE_PROHIBITED}),
    HoldReason.REGISTRAR_UPDATE_LOCK: frozenset({S.CLIENT_UPDATE_PROHIBITED}),
    HoldReason.ACCURACY_SUSPENSION: frozenset({S.CLIENT_HOLD, S.CLIENT_TRANSFER_PROHIBITED}),
    HoldReason.ABUSE_SUSPENSION: frozenset({S.CLIENT_HOLD}),
    HoldReason.ERRP_EXPIRED: frozenset({S.CLIENT_HOLD}),
    HoldReason.CHANGE_OF_REGISTRANT_LOCK: frozenset({S.CLIENT_TRANSFER_PROHIBITED}),
    HoldReason.TRANSFER_LOCK_AFTER_REGISTRATION: frozenset({S.CLIENT_TRANSFER_PROHIBITED}),
    HoldReason.TRANSFER_LOCK_AFTER_TRANSFER: frozenset({S.CLIENT_TRANSFER_PROHIBITED}),
    HoldReason.DISPUTE_LOCK: frozenset({S.CLIENT_TRANSFER_PROHIBITED,
                                        S.CLIENT_DELETE_PROHIBITED}),
}


@dataclass(frozen=True)
class Hold:
    """One reason's claim on client statuses. `reference` tells two holds of the same reason
    apart (two abuse cases on one domain), so closing one case leaves the other's hold."""

    reason: HoldReason
    statuses: frozenset[str]
    reference: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "statuses", frozenset(self.statuses))
        if not self.statuses:
            raise ValueError(f"a {self.reason} hold needs at least one status")
        foreign = sorted(set(self.statuses) - CLIENT_STATUSES)
        if foreign:
            raise ValueError(f"a hold may only carry client statuses, not {', '.join(foreign)}")
        missing = sorted(REASON_STATUSES[self.reason] - set(self.statuses))
        if missing:
            raise ValueError(f"a {self.reason} hold always carries {', '.join(missing)}")

    @classmethod
    def of(cls, reason: HoldReason, *, reference: str = "",
           adding: Iterable[str] = ()) -> Hold:
        """The hold for `reason` with its usual statuses and any further client statuses
        (an abuse case may also stop transfers and updates while it is investigated)."""
        return cls(reason, REASON_STATUSES[reason] | frozenset(adding), reference)

    @property
    def key(self) -> tuple[HoldReason, str]:
        return (self.reason, self.reference)


@dataclass(frozen=True)
class StatusChange:
    """One EPP <domain:update> of client statuses."""

    add: frozenset[str] = field(default_factory=frozenset)
    remove: frozenset[str] = field(default_factory=frozenset)


class Operation(StrEnum):
    """Transform commands that statuses can prohibit (RFC 5731 §3.2)."""

    UPDATE = "update"
    DELETE = "delete"
    TRANSFER = "transfer"
    RENEW = "renew"


_PROHIBITED_BY: dict[Operation, tuple[DomainStatus, DomainStatus]] = {
    Operation.UPDATE: (S.SERVER_UPDATE_PROHIBITED, S.CLIENT_UPDATE_PROHIBITED),
    Operation.DELETE: (S.SERVER_DELETE_PROHIBITED, S.CLIENT_DELETE_PROHIBITED),
    Operation.TRANSFER: (S.SERVER_TRANSFER_PROHIBITED, S.CLIENT_TRANSFER_PROHIBITED),
    Operation.RENEW: (S.SERVER_RENEW_PROHIBITED, S.CLIENT_RENEW_PROHIBITED),
}


def place(holds: Iterable[Hold], hold: Hold) -> frozenset[Hold]:
    """`holds` with `hold` in place; a hold of the same reason and reference is replaced."""
    return release(holds, hold.reason, hold.reference) | {hold}


def release(holds: Iterable[Hold], reason: HoldReason, reference: str = "") -> frozenset[Hold]:
    """`holds` without the hold of `reason` (and `reference`); every other hold stays.
    Releasing a hold that is not there changes nothing, so a retried release is harmless."""
    return frozenset(h for h in holds if h.key != (reason, reference))


def client_statuses(holds: Iterable[Hold],
                    registry_statuses: Iterable[str] = ()) -> frozenset[str]:
    """The client statuses the domain should carry: the union of every hold's statuses.

    With no hold, and nothing in `registry_statuses` (the server*, pending* or inactive values
    the registry reports) that forbids it, the answer is {"ok"}: RFC 5731 §2.3 lets "ok" stand
    only alone. "ok" is the server's to set; `status_changes` never sends it.
    """
    wanted = frozenset(status for hold in holds for status in hold.statuses)
    if wanted:
        return wanted
    others = set(registry_statuses) - CLIENT_STATUSES - {S.OK}
    return frozenset() if others else frozenset({S.OK})


def status_changes(current: AbstractSet[str],
                   desired: AbstractSet[str]) -> tuple[frozenset[str], frozenset[str]]:
    """(add, remove): the client statuses to add and to remove to go from `current` to
    `desired`. Server, pending, ok and inactive values are never in either."""
    have = frozenset(current) & CLIENT_STATUSES
    want = frozenset(desired) & CLIENT_STATUSES
    return want - have, have - want


def status_update_steps(current: AbstractSet[str],
                        desired: AbstractSet[str]) -> tuple[StatusChange, ...]:
    """The updates to send, in order. While clientUpdateProhibited is on, the registry refuses
    every update but the one that removes it (RFC 5731 §2.3), so that removal goes alone,
    first, and the status comes back with the rest of the change if it is still wanted."""
    add, remove = status_changes(current, desired)
    if not add and not remove:
        return ()
    lock = S.CLIENT_UPDATE_PROHIBITED
    if lock not in current or (not add and remove == {lock}):
        return (StatusChange(add, remove),)
    rest_add = add | {lock} if lock in desired else add
    rest_remove = remove - {lock}
    return (StatusChange(remove=frozenset({lock})), StatusChange(rest_add, rest_remove))


def refusal(operation: Operation, statuses: Iterable[str], *,
            adding: AbstractSet[str] = frozenset(),
            removing: AbstractSet[str] = frozenset(),
            changes_other_fields: bool = True) -> str | None:
    """Why `statuses` prohibit `operation` (naming the status), or None when they allow it.

    For an update, `adding` and `removing` are the statuses it changes, and
    `changes_other_fields` says whether it changes anything else (nameservers, contacts, auth
    info, DNSSEC data); it defaults to True so that a caller who forgets it is refused, not let
    through. Under clientUpdateProhibited the one update allowed is the removal of that status
    alone, changing nothing else. An
    operation pending at the registry blocks every other transform until it completes (the
    RGP restore of a pendingDelete name is a separate command and is not decided here).
    """
    present = frozenset(statuses)
    pending = sorted(present & PENDING_STATUSES)
    if pending:
        return f"{operation} is refused while the domain is {pending[0]}"
    server, client = _PROHIBITED_BY[operation]
    if server in present:
        return f"{operation} is prohibited by {server}, which only the registry can remove"
    if client in present:
        if operation is Operation.UPDATE and not adding and set(removing) == {client} \
                and not changes_other_fields:
            return None
        if operation is Operation.UPDATE:
            return f"update is prohibited by {client}; remove {client} alone first"
        return f"{operation} is prohibited by {client}"
    return None


def status_problems(statuses: Iterable[str], rgp_statuses: Iterable[str] = (), *,
                    field: str = "statuses") -> list[FieldError]:
    """Every reason a status set reported by a registry breaks RFC 5731 §2.3 (and RFC 3915
    for the grace-period values), all at once; an empty list when it is sound."""
    values = set(statuses)
    rgp = set(rgp_statuses)
    problems: list[FieldError] = []
    if not values:
        problems.append(FieldError(field, "no_status",
                                   "a domain always has at least one status (RFC 5731 §2.3)"))
    for value in sorted(values - ALL_STATUSES):
        problems.append(FieldError(field, "unknown_status",
                                   f"{value!r} is not an EPP domain status (RFC 5731 §2.3)"))
    if S.OK in values and len(values) > 1:
        others = ", ".join(sorted(values - {S.OK}))
        problems.append(FieldError(field, "ok_combined",
                                   f"ok cannot be combined with any other status ({others})"))
    pending = sorted(values & PENDING_STATUSES)
    if len(pending) > 1:
        problems.append(FieldError(field, "pending_combined",
                                   f"pending statuses exclude each other ({', '.join(pending)})"))
    for status in pending:
        clash = sorted(values & PENDING_EXCLUDES.get(status, frozenset()))
        if clash:
            problems.append(FieldError(field, "pending_prohibited",
                                       f"{status} cannot be combined with {', '.join(clash)}"))
    rgp_field = f"rgp_{field}"
    for value in sorted(rgp - RGP_STATUSES):
        problems.append(FieldError(rgp_field, "unknown_rgp_status",
                                   f"{value!r} is not a grace-period status (RFC 3915)"))
    for value in sorted(rgp & RGP_NEEDS_PENDING_DELETE):
        if S.PENDING_DELETE not in values:
            problems.append(FieldError(rgp_field, "rgp_without_pending_delete",
                                       f"{value} is only possible with pendingDelete"))
    return problems


def validate_statuses(statuses: Iterable[str], rgp_statuses: Iterable[str] = ()
                      ) -> frozenset[DomainStatus]:
    """The statuses as DomainStatus values; ValidationFailed naming every problem otherwise."""
    values = set(statuses)
    problems = status_problems(values, rgp_statuses)
    if problems:
        raise ValidationFailed(problems)
    return frozenset(DomainStatus(v) for v in values)
