"""DNSSEC key lifecycle rules (KASP): signing policies, key timestamps and the rollover planner.

Pure logic: no I/O, no database, no key material. Time is passed in as timezone-aware UTC.

A `Policy` says which keys a zone has (KSK+ZSK or a CSK), how long they live and the TTLs and
delays that bound how long old data stays in caches. A `KeyState` records when each step of one
key's life happened. `plan` looks at a zone's keys at `now` and returns a `Plan`: the keys to
generate, the timestamps to record (each one an event upstream), the DS records to submit to
or withdraw from the parent, the CDS/CDNSKEY to publish, which keys are in the DNSKEY RRset and
which sign what, and when to call `plan` again. The caller applies the plan (`apply_plan`) and
calls again; a zone runs by repeating that.

The intervals are those of RFC 7583 section 3 (the names are the RFC's):

- Ipub = propagation delay + DNSKEY TTL: a new DNSKEY is in every cache that holds the DNSKEY
  RRset (RFC 7583 section 3.2.1, "Ipub = Dprp + TTLkey").
- Iret = propagation delay + the zone's largest TTL: no cache holds an RRSIG made before the
  retired key stopped signing (section 3.2.1, "Iret = Dsgn + Dprp + TTLsig"). Dsgn is zero
  because a plan that changes the signing keys asks for a full re-sign (`Plan.resign`).
- Iwait for the parent = propagation delay + DS TTL, counted from the moment the new DS is
  seen at every parent server (section 3.3.2); seen means checked by the caller, never
  assumed from the time that passed (`parent_ds_seen`).

Rollovers, one at a time per zone (an emergency may start during another):

- ZSK: pre-publication (RFC 6781 section 4.1.1.1, RFC 7583 section 3.2.1).
- KSK and CSK: double-DS (RFC 6781 section 4.1.2, RFC 7583 section 3.3.2), with the new key
  pre-published in the DNSKEY RRset while its DS is submitted.
- Algorithm: the conservative order of RFC 6781 section 4.1.4 and RFC 7583 section 3.4:
  new keys sign before they are published, old keys' signatures go last.
- Emergency (a key marked `compromised`): RFC 6781 section 4.2.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

import dns.exception
import dns.name

from regshield.dnssec.keys import ALGORITHM_NAMES, ECDSAP256SHA256, GENERATED_ALGORITHMS
from regshield.errors import Conflict, FieldError, ValidationFailed
from regshield.rules.zones import MAX_TTL, MIN_TTL

Role = Literal["ksk", "zsk", "csk"]
Scheme = Literal["ksk-zsk", "csk"]
CdsMode = Literal["none", "rollover", "always", "delete-dnssec"]
TimestampField = Literal[
    "published", "ready", "active", "retire_active", "retired", "removed",
    "ds_submitted", "ds_seen", "ds_removed_submitted", "ds_gone",
]

ROLES: tuple[Role, ...] = get_args(Role)
SCHEMES: tuple[Scheme, ...] = get_args(Scheme)
CDS_MODES: tuple[CdsMode, ...] = get_args(CdsMode)

CDS_DELETE = "0 0 0 00"
"""The CDS record that asks the parent to remove every DS (RFC 8078 section 4)."""
CDNSKEY_DELETE = "0 3 0 AA=="
"""The CDNSKEY record that asks the parent to remove every DS (RFC 8078 section 4)."""

_MAX_PASSES = 16  # a plan settles in a handful of passes; more means a rule loops
_ZERO = timedelta(0)


@dataclass(frozen=True)
class Policy:
    """How a zone's keys are kept; checked when built (every problem at once).

    `ksk_lifetime` also applies to a CSK; zero means the key rolls only on request. The
    `rrsig_refresh` default is Knot DNS's: a tenth of the lifetime plus the propagation delay
    plus the zone's largest TTL, so a signature is renewed before any cached copy can expire.

    `cds_publish`: `none`; `rollover` publishes CDS/CDNSKEY (RFC 7344) while a DS change
    waits for the parent; `always` whenever the zone wants a DS; `delete-dnssec` publishes the
    RFC 8078 delete records and withdraws every DS, the first step of turning DNSSEC off.
    """

    name: str = "default"
    algorithm: int = ECDSAP256SHA256
    scheme: Scheme = "ksk-zsk"
    zsk_lifetime: timedelta = timedelta(days=30)
    ksk_lifetime: timedelta = _ZERO
    dnskey_ttl: timedelta = timedelta(hours=1)
    zone_max_ttl: timedelta = timedelta(days=1)
    ds_ttl: timedelta = timedelta(days=1)
    propagation_delay: timedelta = timedelta(hours=1)
    rrsig_lifetime: timedelta = timedelta(days=14)
    rrsig_refresh: timedelta | None = None
    nsec3: bool = False
    cds_publish: CdsMode = "rollover"
    parent_check_interval: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        problems = policy_problems(self)
        if problems:
            raise ValidationFailed(problems)

    @property
    def publish_interval(self) -> timedelta:
        """Ipub (RFC 7583 section 3.2.1): a published DNSKEY has reached every cache."""
        return self.propagation_delay + self.dnskey_ttl

    @property
    def retire_interval(self) -> timedelta:
        """Iret (RFC 7583 section 3.2.1): no cache holds a signature of a retired key."""
        return self.propagation_delay + self.zone_max_ttl

    @property
    def parent_interval(self) -> timedelta:
        """How long a DS change seen at every parent server takes to reach every cache."""
        return self.propagation_delay + self.ds_ttl

    @property
    def signature_refresh(self) -> timedelta:
        """How long before its expiration a signature is renewed."""
        if self.rrsig_refresh is not None:
            return self.rrsig_refresh
        return self.rrsig_lifetime / 10 + self.propagation_delay + self.zone_max_ttl


def policy_problems(policy: Policy) -> list[FieldError]:
    """Every reason `policy` cannot be used, each naming its field."""
    errors: list[FieldError] = []
    if not isinstance(policy.name, str) or not policy.name.strip():
        errors.append(FieldError("name", "required", "must be a non-empty name"))
    if policy.algorithm not in GENERATED_ALGORITHMS:
        names = ", ".join(f"{number} ({ALGORITHM_NAMES[number]})"
                          for number in GENERATED_ALGORITHMS)
        errors.append(FieldError("algorithm", "unsupported", f"must be one of {names}"))
    if policy.scheme not in SCHEMES:
        errors.append(FieldError("scheme", "invalid", f"must be one of {', '.join(SCHEMES)}"))
    if policy.cds_publish not in CDS_MODES:
        errors.append(FieldError("cds_publish", "invalid",
                                 f"must be one of {', '.join(CDS_MODES)}"))
    if not isinstance(policy.nsec3, bool):
        errors.append(FieldError("nsec3", "invalid", "must be true or false"))
    durations = ("zsk_lifetime", "ksk_lifetime", "dnskey_ttl", "zone_max_ttl", "ds_ttl",
                 "propagation_delay", "rrsig_lifetime", "parent_check_interval")
    bad = {name for name in durations if not isinstance(getattr(policy, name), timedelta)}
    if policy.rrsig_refresh is not None and not isinstance(policy.rrsig_refresh, timedelta):
        bad.add("rrsig_refresh")
    errors.extend(FieldError(name, "invalid", "must be a duration") for name in sorted(bad))
    if bad:
        return errors
    for name in durations:
        if getattr(policy, name) < _ZERO:
            errors.append(FieldError(name, "negative", "cannot be negative"))
    ttl_bounds = f"must be between {MIN_TTL} s and {MAX_TTL} s"
    for name in ("dnskey_ttl", "zone_max_ttl"):
        if not MIN_TTL <= getattr(policy, name).total_seconds() <= MAX_TTL:
            errors.append(FieldError(name, "out_of_range", ttl_bounds))
    if policy.ds_ttl <= _ZERO:
        errors.append(FieldError("ds_ttl", "out_of_range", "must be positive"))
    if policy.parent_check_interval <= _ZERO:
        errors.append(FieldError("parent_check_interval", "out_of_range", "must be positive"))
    if policy.dnskey_ttl > policy.zone_max_ttl:
        errors.append(FieldError("zone_max_ttl", "too_small",
                                 "must be at least the DNSKEY TTL, which is one of the zone's"))
    if errors:
        return errors
    zsk_minimum = policy.publish_interval + policy.retire_interval
    if _ZERO < policy.zsk_lifetime < zsk_minimum:
        errors.append(FieldError("zsk_lifetime", "too_short",
                                 f"must be zero or at least Ipub + Iret ({zsk_minimum}), "
                                 "or a ZSK would roll before its own rollover ends"))
    ksk_minimum = policy.publish_interval + 2 * policy.parent_interval + policy.retire_interval
    if _ZERO < policy.ksk_lifetime < ksk_minimum:
        errors.append(FieldError("ksk_lifetime", "too_short",
                                 f"must be zero or at least {ksk_minimum}, the length of a "
                                 "double-DS rollover"))
    if policy.rrsig_lifetime <= _ZERO:
        errors.append(FieldError("rrsig_lifetime", "out_of_range", "must be positive"))
    refresh = policy.signature_refresh
    if refresh < policy.retire_interval:
        errors.append(FieldError("rrsig_refresh", "too_small",
                                 f"must be at least the propagation delay plus the zone's "
                                 f"largest TTL ({policy.retire_interval}), or cached "
                                 "signatures expire"))
    if refresh >= policy.rrsig_lifetime:
        errors.append(FieldError("rrsig_refresh", "too_large",
                                 "must be shorter than rrsig_lifetime"))
    return errors


@dataclass(frozen=True)
class KeyState:
    """One key's life. A timestamp is set when its step happened; None means not yet.

    - published: the DNSKEY is in the zone's DNSKEY RRset; ready: it has reached every cache
      (published + Ipub).
    - active: the key makes signatures (before `published` during an algorithm rollover:
      the "pre-active" state); retire_active: it stopped making them; retired: no cache holds
      one of its signatures any more; removed: the DNSKEY left the DNSKEY RRset.
    - KSK and CSK only: ds_submitted (DS sent to the registry, or CDS published), ds_seen (the
      DS is served by every parent server, as checked by the caller), ds_removed_submitted
      (withdrawal sent), ds_gone (no parent server serves it, as checked).

    A KSK signs the DNSKEY RRset, a ZSK every other RRset, a CSK both.
    """

    id: str
    role: Role
    algorithm: int
    key_tag: int
    created: datetime
    published: datetime | None = None
    ready: datetime | None = None
    active: datetime | None = None
    retire_active: datetime | None = None
    retired: datetime | None = None
    removed: datetime | None = None
    ds_submitted: datetime | None = None
    ds_seen: datetime | None = None
    ds_removed_submitted: datetime | None = None
    ds_gone: datetime | None = None
    compromised: bool = False

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, not {self.role!r}")
        for name in ("created", *get_args(TimestampField)):
            moment = getattr(self, name)
            if moment is not None and moment.utcoffset() is None:
                raise ValueError(f"{name} must be timezone-aware")

    @property
    def has_ds(self) -> bool:
        """KSK and CSK only: the key is an entry point, so it has a DS at the parent."""
        return self.role != "zsk"

    @property
    def in_dnskey_set(self) -> bool:
        return self.published is not None and self.removed is None

    @property
    def signing(self) -> bool:
        return self.active is not None and self.retire_active is None

    @property
    def signs_dnskey_set(self) -> bool:
        return self.has_ds and self.signing

    @property
    def signs_data(self) -> bool:
        return self.role != "ksk" and self.signing

    @property
    def ds_wanted(self) -> bool:
        """The zone wants this key's DS at the parent."""
        return self.ds_submitted is not None and self.ds_removed_submitted is None

    @property
    def ds_pending(self) -> bool:
        """A DS change for this key waits to be seen at the parent."""
        return (self.ds_wanted and self.ds_seen is None) or (
            self.ds_removed_submitted is not None and self.ds_gone is None)

    @property
    def done(self) -> bool:
        """Out of the zone for good: not published and no signature of it left anywhere."""
        return self.removed is not None and (self.retired is not None or self.active is None)


@dataclass(frozen=True)
class KeyToGenerate:
    role: Role
    algorithm: int


@dataclass(frozen=True)
class Transition:
    """One timestamp of one key to record; upstream it becomes the event `event`."""

    key_id: str
    field: TimestampField
    at: datetime

    @property
    def event(self) -> str:
        return f"dnssec:key:{self.field}"


@dataclass(frozen=True)
class CdsPublication:
    """The CDS/CDNSKEY RRsets to publish at the apex (RFC 7344 section 4).

    `keys` are the ids of the keys the parent should have a DS for; with `delete`, the RRsets
    hold only `CDS_DELETE` and `CDNSKEY_DELETE` (RFC 8078 section 4).
    """

    keys: tuple[str, ...]
    delete: bool = False


@dataclass(frozen=True)
class Plan:
    """What to do at `now` and the zone as it is once it is done.

    `ds_submit` and `ds_withdraw` are DS changes to send now (EPP secDNS for domains at this
    registrar); `ds_wanted` is the DS set the zone wants. When `check_parent` is true, the
    caller checks every parent server and passes the result as `parent_ds_seen`: true when
    each of them serves a DS for every key in `ds_wanted` and none for a withdrawn key.

    `resign`: the signing keys changed, so every RRset is signed again now with the keys listed
    here (this keeps Dsgn of RFC 7583 section 3.2.1 at zero); a change of the DNSKEY RRset alone
    needs only that RRset signed again. `unsign_safe` (with `cds_publish="delete-dnssec"`
    only): no DS is left at the parent or in caches, so the zone may be served unsigned.
    """

    generate: tuple[KeyToGenerate, ...]
    transitions: tuple[Transition, ...]
    ds_submit: tuple[str, ...]
    ds_withdraw: tuple[str, ...]
    ds_wanted: tuple[str, ...]
    check_parent: bool
    cds: CdsPublication | None
    dnskey_set: tuple[str, ...]
    dnskey_signers: tuple[str, ...]
    data_signers: tuple[str, ...]
    resign: bool
    unsign_safe: bool
    next_event_at: datetime | None


def plan(policy: Policy, keys: Sequence[KeyState], now: datetime, *,
         parent_ds_seen: bool | None) -> Plan:
    """The key events due at `now` for a zone kept by `policy` whose keys are `keys`.

    `parent_ds_seen` is the caller's check of the parent (see `Plan`): true, false, or None
    when it was not checked. False and None are the same to the planner: steps that wait for
    the parent never proceed on elapsed time alone.
    """
    _require_aware(now, "now")
    planner = _Planner(policy, keys, now)
    if parent_ds_seen:
        planner.parent_seen()
    for _ in range(_MAX_PASSES):
        before = len(planner.transitions)
        planner.waits.clear()
        planner.generate.clear()
        planner.step()
        if len(planner.transitions) == before:
            return planner.result()
    raise RuntimeError("the key plan did not settle")  # a rule that keeps firing is a bug


def apply_plan(keys: Sequence[KeyState], result: Plan) -> list[KeyState]:
    """`keys` with the plan's timestamps recorded (the keys to generate are the caller's)."""
    changes: dict[str, dict[str, Any]] = {}
    for transition in result.transitions:
        changes.setdefault(transition.key_id, {})[transition.field] = transition.at
    return [dataclasses.replace(key, **changes[key.id]) if key.id in changes else key
            for key in keys]


def rollover_under_way(keys: Iterable[KeyState]) -> str | None:
    """Why the zone is in the middle of a rollover, or None when it is not."""
    live = [key for key in keys if not key.done]
    for key in live:
        if key.compromised:
            return f"an emergency rollover of compromised {key.role.upper()} {key.key_tag} " \
                   "is under way"
    if len({key.algorithm for key in live}) > 1:
        return "an algorithm rollover is under way"
    for key in live:
        if key.published is None or key.active is None:
            return f"a {key.role.upper()} rollover is under way: {key.key_tag} is being introduced"
        if key.retire_active is not None or key.removed is not None:
            return f"a {key.role.upper()} rollover is under way: {key.key_tag} is being retired"
    return None


def refuse_second_rollover(keys: Iterable[KeyState]) -> None:
    """Raise Conflict when a rollover is under way: one rollover at a time per zone."""
    reason = rollover_under_way(keys)
    if reason is not None:
        raise Conflict(f"A rollover cannot start now: {reason}")


def request_rollover(policy: Policy, keys: Sequence[KeyState], role: Role) -> KeyToGenerate:
    """Start a manual rollover of `role`: the key to generate, after the one-at-a-time check.

    Once the caller has generated the key, `plan` carries the rollover on.
    """
    allowed = _roles(policy.scheme)
    if role not in allowed:
        raise ValidationFailed([FieldError("role", "invalid",
                                           f"must be one of {', '.join(allowed)} under the "
                                           f"{policy.scheme} scheme")])
    refuse_second_rollover(keys)
    current = [key.algorithm for key in keys if key.signing and key.role == role]
    return KeyToGenerate(role, current[0] if current else policy.algorithm)


def bootstrap_signal_names(zone: str, nameservers: Iterable[str]) -> tuple[str, ...]:
    """Owner names of the RFC 9615 signals for `zone`: `_dsboot.<zone>._signal.<nameserver>`.

    The caller publishes the zone's CDS/CDNSKEY at each of them, in the nameserver's signed
    zone (RFC 9615 section 3.1). A nameserver at or below `zone` cannot carry a signal, since
    its signal would sit inside the still-unvalidated child, nor can one whose signal name
    would exceed 255 octets; both are left out.
    """
    child = dns.name.from_text(zone)
    names: list[str] = []
    for nameserver in nameservers:
        host = dns.name.from_text(nameserver)
        if host.is_subdomain(child):
            continue
        try:
            owner = dns.name.Name((b"_dsboot", *child.labels[:-1], b"_signal", *host.labels))
        except dns.exception.DNSException:
            continue
        text = owner.to_text().lower()
        if text not in names:
            names.append(text)
    return tuple(names)


class _Planner:
    """One run of the rules over a working copy of the keys."""

    def __init__(self, policy: Policy, keys: Sequence[KeyState], now: datetime) -> None:
        ids = [key.id for key in keys]
        if len(set(ids)) != len(ids):
            raise ValueError("key ids must be unique")
        self.policy = policy
        self.now = now
        self.keys = {key.id: key for key in keys}
        self.transitions: list[Transition] = []
        self.waits: list[datetime] = []
        self.generate: list[KeyToGenerate] = []
        self.ds_submit: list[str] = []
        self.ds_withdraw: list[str] = []

    # Primitives

    def record(self, key: KeyState, field: TimestampField) -> KeyState:
        current = self.keys[key.id]
        if getattr(current, field) is not None:
            return current
        changes: dict[str, Any] = {field: self.now}
        updated = dataclasses.replace(current, **changes)
        self.keys[key.id] = updated
        self.transitions.append(Transition(key.id, field, self.now))
        if field == "ds_submitted":
            self.ds_submit.append(key.id)
        elif field == "ds_removed_submitted":
            self.ds_withdraw.append(key.id)
        return updated

    def due(self, moment: datetime) -> bool:
        """True when `moment` has come; otherwise remember it as the next time to plan."""
        if moment <= self.now:
            return True
        self.waits.append(moment)
        return False

    def live(self, role: Role | None = None) -> list[KeyState]:
        return [key for key in self.keys.values()
                if not key.done and (role is None or key.role == role)]

    @property
    def submits_ds(self) -> bool:
        return self.policy.cds_publish != "delete-dnssec"

    # Rules

    def parent_seen(self) -> None:
        for key in list(self.keys.values()):
            if key.ds_wanted and key.ds_seen is None:
                self.record(key, "ds_seen")
            elif key.ds_removed_submitted is not None and key.ds_gone is None:
                self.record(key, "ds_gone")

    def step(self) -> None:
        live = self.live()
        if not live:
            self.generate_set(self.policy.algorithm)
            return
        if any(key.role not in _roles(self.policy.scheme) for key in live):
            raise ValidationFailed([FieldError(
                "scheme", "unsupported_change",
                f"the zone has keys of another scheme; moving a signed zone to "
                f"{self.policy.scheme} is not supported")])
        if all(key.published is None and key.active is None for key in live):
            # A new zone: no resolver can depend on its keys before the first DS exists.
            for key in live:
                self.record(key, "published")
                self.record(key, "active")
            return
        self.mark_ready()
        if not self.submits_ds:
            for key in live:
                if key.ds_wanted:
                    self.record(key, "ds_removed_submitted")
        self.submit_first_ds()
        emergency_roles = self.emergencies()
        if self.algorithm_rollover():
            return
        for role in _roles(self.policy.scheme):
            if role in emergency_roles:
                continue
            if role == "zsk":
                self.zsk_rollover()
            else:
                self.double_ds_rollover(role)
        self.start_scheduled_rollover()

    def generate_set(self, algorithm: int) -> None:
        self.generate.extend(KeyToGenerate(role, algorithm)
                             for role in _roles(self.policy.scheme))

    def mark_ready(self) -> None:
        for key in self.live():
            if key.in_dnskey_set and key.ready is None:
                assert key.published is not None
                if self.due(key.published + self.policy.publish_interval):
                    self.record(key, "ready")

    def submit_first_ds(self) -> None:
        """The first DS of a zone, once its DNSKEY and signatures have reached every cache.

        The zone is still insecure at the parent, so nothing depends on timing except that a
        resolver must not meet the DS while it holds unsigned data or a DNSKEY-less answer:
        propagation delay plus the zone's largest TTL covers both (RFC 7583 section 3.3).
        """
        if not self.submits_ds:
            return
        entry_points = [key for key in self.live() if key.has_ds]
        if any(key.ds_submitted is not None for key in entry_points):
            return
        for key in entry_points:
            if key.signing and key.in_dnskey_set and not key.compromised:
                assert key.published is not None
                if self.due(key.published + self.policy.retire_interval):
                    self.record(key, "ds_submitted")

    def zsk_rollover(self) -> None:
        """Pre-publication (RFC 7583 section 3.2.1): publish, wait Ipub, swap, wait Iret."""
        zsks = self.live("zsk")
        incoming = [key for key in zsks if key.active is None and not key.compromised]
        for key in incoming:
            if key.published is None:
                self.record(key, "published")
            elif key.ready is not None:
                self.record(key, "active")
                for old in zsks:
                    if old.id != key.id and old.signing:
                        self.record(old, "retire_active")
        for key in self.live("zsk"):
            if (key.retire_active is not None and key.retired is None
                    and self.due(key.retire_active + self.policy.retire_interval)):
                self.record(key, "retired")
                self.record(key, "removed")

    def double_ds_rollover(self, role: Role) -> None:
        """Double-DS (RFC 7583 section 3.3.2) for a KSK or CSK.

        The new key is published and its DS submitted at once. It starts signing, and the old
        key stops, only when the new DS has been seen at every parent server and the DS TTL
        plus the propagation delay has passed since: no cache then holds a DS RRset without
        it. The old DS is withdrawn once no cache holds a DNSKEY RRset signed by the old key
        only (Iret after the swap), and the old DNSKEY is removed once the old DS is seen gone
        and the DS TTL has passed again.
        """
        policy = self.policy
        entry_points = self.live(role)
        for key in entry_points:
            if key.active is not None or key.compromised:
                continue
            if key.published is None:
                key = self.record(key, "published")
                if self.submits_ds:
                    key = self.record(key, "ds_submitted")
            if key.ds_seen is None or key.ready is None:
                continue
            if self.due(key.ds_seen + policy.parent_interval):
                self.record(key, "active")
                for old in entry_points:
                    if old.id != key.id and self.keys[old.id].signing:
                        self.record(old, "retire_active")
        # A CSK's signatures cover every RRset, a KSK's only the DNSKEY RRset.
        signatures_gone = policy.retire_interval if role == "csk" else policy.publish_interval
        for key in self.live(role):
            if key.retire_active is None:
                continue
            if key.retired is None and self.due(key.retire_active + signatures_gone):
                key = self.record(key, "retired")
                if key.ds_wanted:
                    key = self.record(key, "ds_removed_submitted")
            if key.retired is None or key.removed is not None:
                continue
            if key.ds_submitted is None or (
                    key.ds_gone is not None and self.due(key.ds_gone + policy.parent_interval)):
                self.record(key, "removed")

    def emergencies(self) -> set[Role]:
        """Roll compromised keys at once (RFC 6781 section 4.2); the roles being handled.

        A compromised ZSK: its successor is published and signs at once, beside it; the
        compromised key leaves the DNSKEY RRset as soon as the successor is in every cache
        (Ipub), without waiting Iret. The trade-off: a resolver that re-validates an RRset
        cached before the emergency, signed by the compromised key only, against a DNSKEY
        RRset fetched after its removal finds it bogus, for at most Iret - Ipub. Keeping the
        key longer would keep the attacker's signatures valid as long.

        A compromised KSK or CSK: its successor is published, signs and has its DS submitted
        at once; the compromised DS is withdrawn as soon as the new DS is seen at the parent
        (and the new DNSKEY has reached every cache), not a DS TTL later; the compromised key
        signs until its DS is seen gone and the DS TTL has passed, since until then some
        resolvers know no other entry point.
        """
        policy = self.policy
        roles: set[Role] = set()
        for bad in self.live():
            if not bad.compromised:
                continue
            roles.add(bad.role)
            successors = [key for key in self.live(bad.role) if not key.compromised
                          and key.retire_active is None and key.removed is None]
            if not successors:
                self.generate.append(KeyToGenerate(bad.role, bad.algorithm))
                continue
            new = max(successors, key=lambda key: key.created)
            new = self.record(new, "published")
            new = self.record(new, "active")
            if bad.role == "zsk":
                if new.ready is not None:
                    self.record(bad, "retire_active")
                    self.record(bad, "retired")
                    self.record(bad, "removed")
                continue
            if self.submits_ds and new.ds_submitted is None:
                new = self.record(new, "ds_submitted")
            if bad.ds_wanted and new.ds_seen is not None and new.ready is not None:
                bad = self.record(bad, "ds_removed_submitted")
            if bad.ds_submitted is None:
                finished = new.ready is not None
            else:
                finished = bad.ds_gone is not None and self.due(
                    bad.ds_gone + policy.parent_interval)
            if finished:
                self.record(bad, "retire_active")
                self.record(bad, "retired")
                self.record(bad, "removed")
        return roles

    def algorithm_rollover(self) -> bool:
        """RFC 6781 section 4.1.4, RFC 7583 section 3.4; true while one is under way.

        1. The new keys sign every RRset before they are published (pre-active), so that a
           DNSKEY of the new algorithm never meets an RRset without a signature of it
           (RFC 4035 section 2.2); publish after Iret.
        2. After Ipub, submit the new DS; once it is seen, and the DS TTL has passed,
           withdraw the old DS.
        3. Once the old DS is seen gone and the DS TTL has passed, remove the old DNSKEYs;
           the old keys keep signing for Ipub more, until no cache holds them.
        """
        policy = self.policy
        live = self.live()
        incoming = [key for key in live if key.algorithm == policy.algorithm]
        outgoing = [key for key in live if key.algorithm != policy.algorithm]
        if not incoming or not outgoing or any(key.compromised for key in live):
            return False
        for key in incoming:
            if key.active is None and key.published is None:
                self.record(key, "active")
        incoming = [self.keys[key.id] for key in incoming]
        if any(key.published is None for key in incoming):
            started = max(key.active for key in incoming if key.active is not None)
            if self.due(started + policy.retire_interval):
                for key in incoming:
                    self.record(key, "published")
            return True
        if any(key.ready is None for key in incoming):
            return True
        new_entry_points = [key for key in incoming if key.has_ds]
        if self.submits_ds:
            new_entry_points = [self.record(key, "ds_submitted") for key in new_entry_points]
        old_with_ds = [key for key in outgoing if key.has_ds and key.ds_submitted is not None]
        if old_with_ds:
            seen = [key.ds_seen for key in new_entry_points]
            if not seen or any(moment is None for moment in seen):
                return True
            if not self.due(max(m for m in seen if m is not None) + policy.parent_interval):
                return True
            old_with_ds = [self.record(key, "ds_removed_submitted") for key in old_with_ds]
            gone = [key.ds_gone for key in old_with_ds]
            if any(moment is None for moment in gone):
                return True
            if not self.due(max(m for m in gone if m is not None) + policy.parent_interval):
                return True
        outgoing = [self.record(key, "removed") for key in outgoing]
        removed_at = max(key.removed for key in outgoing if key.removed is not None)
        if self.due(removed_at + policy.publish_interval):
            for key in outgoing:
                self.record(key, "retire_active")
                self.record(key, "retired")
        return True

    def start_scheduled_rollover(self) -> None:
        """Start the rollover a key's lifetime calls for, if none is under way."""
        if self.generate or rollover_under_way(self.keys.values()) is not None:
            return
        policy = self.policy
        signing = [key for key in self.live() if key.signing]
        if any(key.algorithm != policy.algorithm for key in signing):
            self.generate_set(policy.algorithm)
            return
        starts: list[tuple[datetime, Role]] = []
        for key in signing:
            assert key.active is not None
            if key.role == "zsk" and policy.zsk_lifetime > _ZERO:
                # RFC 7583 section 3.2.1: publish Ipub early so the successor is active on
                # the day the lifetime ends.
                starts.append((key.active + policy.zsk_lifetime - policy.publish_interval,
                               key.role))
            elif key.role != "zsk" and policy.ksk_lifetime > _ZERO:
                # How long the parent takes is unknown, so the lifetime is a minimum here.
                starts.append((key.active + policy.ksk_lifetime, key.role))
        if not starts:
            return
        moment, role = min(starts)
        if self.due(moment):
            self.generate.append(KeyToGenerate(role, policy.algorithm))
        else:
            self.waits.extend(start for start, _ in starts)

    def unsign_safe(self) -> bool:
        """Every DS is seen gone from the parent and the DS TTL has passed (RFC 8078 section 4)."""
        withdrawn = [key.ds_gone for key in self.keys.values()
                     if key.ds_removed_submitted is not None]
        if any(key.ds_wanted for key in self.keys.values()) or None in withdrawn:
            return False
        gone = [moment for moment in withdrawn if moment is not None]
        return not gone or self.due(max(gone) + self.policy.parent_interval)

    def result(self) -> Plan:
        keys = list(self.keys.values())
        check_parent = any(key.ds_pending for key in keys)
        if check_parent:
            self.waits.append(self.now + self.policy.parent_check_interval)
        ds_wanted = tuple(key.id for key in keys if key.ds_wanted)
        cds: CdsPublication | None = None
        mode = self.policy.cds_publish
        if mode == "delete-dnssec":
            cds = CdsPublication((), delete=True)
        elif ds_wanted and (mode == "always" or (mode == "rollover" and check_parent)):
            cds = CdsPublication(ds_wanted)
        unsign_safe = mode == "delete-dnssec" and self.unsign_safe()
        next_event_at = self.now if self.generate else min(self.waits, default=None)
        return Plan(
            generate=tuple(self.generate),
            transitions=tuple(self.transitions),
            ds_submit=tuple(self.ds_submit),
            ds_withdraw=tuple(self.ds_withdraw),
            ds_wanted=ds_wanted,
            check_parent=check_parent,
            cds=cds,
            dnskey_set=tuple(key.id for key in keys if key.in_dnskey_set),
            dnskey_signers=tuple(key.id for key in keys if key.signs_dnskey_set),
            data_signers=tuple(key.id for key in keys if key.signs_data),
            resign=any(t.field in ("active", "retire_active") for t in self.transitions),
            unsign_safe=unsign_safe,
            next_event_at=next_event_at,
        )


def _roles(scheme: Scheme) -> tuple[Role, ...]:
    return ("csk",) if scheme == "csk" else ("ksk", "zsk")


def _require_aware(moment: datetime, name: str) -> None:
    if moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
