"""ICANN Transfer Policy: inter-registrar transfers, transfer codes and change of registrant.

Two versions (refs/icann-obligations.md rows 16-18):
- the 2016 Transfer Policy as updated on 21 Feb 2024 for the Registration Data Policy,
  mandatory from 21 Aug 2025: the version in force;
- the Transfer Policy Review (TPR) rules, adopted by the ICANN Board in June 2026. ICANN has
  published neither the final text nor an effective date, and says they are not contractual
  requirements until it does. They have no effective date here: an installation that wants
  them passes the date ICANN announces as `tpr_effective`; without one, `transfer_policy`
  never chooses them. TPR numbers marked "draft" come from working-group drafts; check them
  against the published text before setting a date.

Durations count from the moment of the event (creation, transfer, issue), not calendar days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from regshield.errors import ConfigurationError
from regshield.policy import in_force


class TransferRules(StrEnum):
    POLICY_2016 = "2016"  # as updated 21 Feb 2024 (Registration Data Policy)
    TPR = "tpr"  # Transfer Policy Review recommendations


@dataclass(frozen=True)
class TransferPolicy:
    effective: date
    rules: TransferRules
    # Transfer code (AuthInfo; "TAC" under TPR).
    transfer_code_delivery: timedelta  # the code reaches the registrant within this
    transfer_code_on_request_only: bool  # no code on the domain until the registrant asks
    transfer_code_ttl: timedelta  # after this the code no longer transfers the domain
    transfer_code_single_use: bool  # a completed transfer clears the code
    # Inter-registrar transfer.
    registry_auto_approve: timedelta  # a pending transfer completes unless denied before
    gaining_foa_validity: timedelta | None  # None: no gaining-registrar FOA any more
    losing_foa: bool  # the losing registrar sends the FOA to the registrant
    transfer_confirmation: timedelta | None  # TPR Transfer Confirmation window
    after_registration_restriction: timedelta  # no transfer this long after creation
    after_transfer_restriction: timedelta  # ... and after an inter-registrar transfer
    restriction_mandatory: bool  # False: the registrar may deny; True: it must restrict
    # Change of registrant (material change of name, organization or email).
    change_of_registrant_processing: timedelta | None  # done within this of confirmation
    change_of_registrant_lock: timedelta | None  # transfer lock after the change
    change_of_registrant_lock_opt_out: bool  # prior registrant may opt out beforehand
    change_of_registrant_notice: bool  # notify instead of locking
    # Notices.
    transfer_code_issued_notice: timedelta | None  # tell the registrant a code was issued
    transfer_completed_notice: timedelta | None  # tell the registrant the transfer completed


POLICY_2016 = TransferPolicy(
    effective=date(2025, 8, 21),
    rules=TransferRules.POLICY_2016,
    transfer_code_delivery=timedelta(days=5),
    transfer_code_on_request_only=False,
    # The 2016 policy sets no lifetime and no single use; regshield applies RFC 9154's
    # short-lived, one-time code (with the TPR's 14 days) anyway: a code that lives forever
    # is a standing hijack credential.
    transfer_code_ttl=timedelta(days=14),
    transfer_code_single_use=True,
    registry_auto_approve=timedelta(days=5),
    gaining_foa_validity=timedelta(days=60),
    losing_foa=True,
    transfer_confirmation=None,
    after_registration_restriction=timedelta(days=60),
    after_transfer_restriction=timedelta(days=60),
    restriction_mandatory=False,
    change_of_registrant_processing=timedelta(days=1),
    change_of_registrant_lock=timedelta(days=60),
    change_of_registrant_lock_opt_out=True,
    change_of_registrant_notice=False,
    transfer_code_issued_notice=None,
    transfer_completed_notice=None,
)

VERSIONS: tuple[TransferPolicy, ...] = (POLICY_2016,)

# Transfer Policy Part II (Change of Registrant): a Material Change is a change of the
# registrant's name, organization or email address. The policy leaves out typographical
# corrections; regshield cannot tell a typo from a new holder, so every change counts.
MATERIAL_FIELDS: frozenset[str] = frozenset({"name", "organization", "email"})

# No date until ICANN publishes one (row 18); settings pass theirs to `transfer_policy`.
TPR_EFFECTIVE: date | None = None


def tpr_policy(effective: date) -> TransferPolicy:
    """The TPR rules, taking effect on `effective`."""
    return TransferPolicy(
        effective=effective,
        rules=TransferRules.TPR,
        transfer_code_delivery=timedelta(days=5),
        transfer_code_on_request_only=True,
        transfer_code_ttl=timedelta(days=14),  # 336 hours, enforced by the registry
        transfer_code_single_use=True,  # reset to null after the transfer
        registry_auto_approve=timedelta(days=5),
        gaining_foa_validity=None,  # the gaining FOA is eliminated
        losing_foa=False,  # replaced by the Transfer Confirmation
        transfer_confirmation=timedelta(hours=120),  # default window
        after_registration_restriction=timedelta(days=30),
        after_transfer_restriction=timedelta(days=30),
        restriction_mandatory=True,
        change_of_registrant_processing=None,
        change_of_registrant_lock=None,  # the 60-day lock is eliminated
        change_of_registrant_lock_opt_out=False,
        change_of_registrant_notice=True,
        transfer_code_issued_notice=timedelta(minutes=10),  # draft
        transfer_completed_notice=timedelta(hours=24),  # draft
    )


def versions(tpr_effective: date | None) -> tuple[TransferPolicy, ...]:
    """Every version that can be in force, the TPR rules only when a date is configured."""
    if tpr_effective is None:
        return VERSIONS
    if tpr_effective <= POLICY_2016.effective:
        raise ConfigurationError(
            f"the TPR effective date {tpr_effective} must be after {POLICY_2016.effective}, "
            "when the 2016 Transfer Policy as updated took effect")
    return (*VERSIONS, tpr_policy(tpr_effective))


def transfer_policy(moment: datetime, tpr_effective: date | None) -> TransferPolicy:
    """The Transfer Policy in force at `moment` (timezone-aware)."""
    _require_aware(moment, "moment")
    return in_force(versions(tpr_effective), moment.astimezone(UTC))


def transfer_restriction_end(policy: TransferPolicy, *, created_at: datetime,
                             transferred_at: datetime | None = None) -> datetime:
    """When the post-creation and post-transfer windows have both passed. Before it, the
    2016 policy lets the registrar deny a transfer; the TPR rules make it refuse."""
    _require_aware(created_at, "created_at")
    end = created_at + policy.after_registration_restriction
    if transferred_at is not None:
        _require_aware(transferred_at, "transferred_at")
        end = max(end, transferred_at + policy.after_transfer_restriction)
    return end


def change_of_registrant_lock_end(policy: TransferPolicy, *, changed_at: datetime,
                                  opted_out: bool) -> datetime | None:
    """End of the transfer lock after a change of registrant, or None when there is none
    (the prior registrant opted out beforehand, or the policy notifies instead)."""
    _require_aware(changed_at, "changed_at")
    if policy.change_of_registrant_lock is None:
        return None
    if opted_out and policy.change_of_registrant_lock_opt_out:
        return None
    return changed_at + policy.change_of_registrant_lock


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
