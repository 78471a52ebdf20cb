"""Key lifecycle rules (rules/kasp.py): a zone run on a simulated clock, rollover after rollover.

Each scenario calls `plan`, records what it asks for (the DNSKEY RRset, which keys sign what,
the DS submitted to or withdrawn from a simulated parent), advances the clock to
`next_event_at` and calls again. `assert_resolution_safe` then checks the whole history the way
a validating resolver would meet it: whatever a cache may hold at the same moment (an RRset and
its signatures, a DNSKEY RRset, a DS RRset) must still validate together.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest

from regshield.dnssec.keys import ECDSAP256SHA256, ED25519
from regshield.errors import Conflict, ValidationFailed
from regshield.rules.kasp import (
    CDNSKEY_DELETE,
    CDS_DELETE,
    KeyState,
    Plan,
    Policy,
    Transition,
    apply_plan,
    bootstrap_signal_names,
    plan,
    refuse_second_rollover,
    request_rollover,
    rollover_under_way,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
FOREVER = datetime(9000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Snapshot:
    """The zone as served from `at` until the next snapshot."""

    at: datetime
    dnskey_set: frozenset[str]
    dnskey_signers: frozenset[str]
    data_signers: frozenset[str]


@dataclass
class Parent:
    """The parent zone's DS RRset as all its servers serve it, `delay` after a submission."""

    delay: timedelta = 2 * HOUR
    accepts: bool = True
    ds: frozenset[str] = frozenset()
    history: list[tuple[datetime, frozenset[str]]] = field(default_factory=list)
    pending: list[tuple[datetime, str, bool]] = field(default_factory=list)

    def submit(self, key_id: str, now: datetime, add: bool) -> None:
        if self.accepts:
            self.pending.append((now + self.delay, key_id, add))

    def advance(self, now: datetime) -> None:
        for change in sorted(self.pending):
            at, key_id, add = change
            if at > now:
                continue
            self.pending.remove(change)
            self.ds = self.ds | {key_id} if add else self.ds - {key_id}
            self.history.append((at, self.ds))


@dataclass
class Zone:
    policy: Policy
    parent: Parent = field(default_factory=Parent)
    now: datetime = T0
    keys: list[KeyState] = field(default_factory=list)
    history: list[Snapshot] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    last: Plan | None = None
    last_at: datetime = T0
    plans: list[tuple[datetime, Plan]] = field(default_factory=list)

    def key(self, key_id: str) -> KeyState:
        return next(key for key in self.keys if key.id == key_id)

    def role(self, role: str) -> list[KeyState]:
        return [key for key in self.keys if key.role == role]

    def add_key(self, role: str, algorithm: int) -> None:
        number = len(self.keys) + 1
        self.keys.append(KeyState(id=f"{role}{number}", role=role,  # type: ignore[arg-type]
                                  algorithm=algorithm, key_tag=number, created=self.now))

    def parent_matches(self) -> bool:
        wanted = {key.id for key in self.keys if key.ds_wanted}
        withdrawn = {key.id for key in self.keys if key.ds_removed_submitted is not None}
        return wanted <= self.parent.ds and not withdrawn & self.parent.ds

    def step(self) -> Plan:
        self.parent.advance(self.now)
        checked = self.parent_matches() if self.last is None or self.last.check_parent else None
        result = plan(self.policy, self.keys, self.now, parent_ds_seen=checked)
        self.keys = apply_plan(self.keys, result)
        self.transitions.extend(result.transitions)
        for wanted in result.generate:
            self.add_key(wanted.role, wanted.algorithm)
        for key_id in result.ds_submit:
            self.parent.submit(key_id, self.now, add=True)
        for key_id in result.ds_withdraw:
            self.parent.submit(key_id, self.now, add=False)
        snapshot = Snapshot(self.now, frozenset(result.dnskey_set),
                            frozenset(result.dnskey_signers), frozenset(result.data_signers))
        if self.history and self.history[-1].at == self.now:
            self.history[-1] = snapshot
        else:
            self.history.append(snapshot)
        self.last, self.last_at = result, self.now
        self.plans.append((self.now, result))
        return result

    def run_until(self, end: datetime) -> None:
        for _ in range(10_000):
            result = self.step()
            following = result.next_event_at
            if following is None or following > end:
                self.now = end
                self.parent.advance(end)
                return
            assert following >= self.now, "the plan asked to go back in time"
            self.now = following
        raise AssertionError("the zone never settled")

    def run_for(self, duration: timedelta) -> None:
        self.run_until(self.now + duration)

    def times(self, key_id: str, name: str) -> list[datetime]:
        return [t.at for t in self.transitions if t.key_id == key_id and t.field == name]


def _intervals(starts: list[datetime], end: datetime) -> list[tuple[datetime, datetime]]:
    return [(start, starts[index + 1] if index + 1 < len(starts) else end)
            for index, start in enumerate(starts)]


def assert_resolution_safe(zone: Zone, tolerate: frozenset[str] = frozenset()) -> None:
    """Fail if a resolver could ever meet cached records that do not validate together.

    An RRset served during a snapshot stays in caches for the propagation delay plus the
    zone's largest TTL after the snapshot ends; a DNSKEY RRset for the propagation delay plus
    the DNSKEY TTL; a DS RRset, once all parent servers serve it, for the DS TTL. Whenever two
    of these can be in caches at the same moment:

    - the RRset carries a signature by a key in the DNSKEY RRset (RFC 7583 sections 3.2, 3.3);
    - the RRset carries a signature of every algorithm in the DNSKEY RRset (RFC 4035
      section 2.2, which strict validators enforce);
    - the DNSKEY RRset is signed by a key in it that has a DS in the DS RRset, and of every
      algorithm in that DS RRset (RFC 4035 section 5.2);
    - and at every moment since the first DS appeared: some key signing data has been in the
      DNSKEY RRset for at least Ipub, and a DS leaves the parent only when another DS has been
      there for the DS TTL (or when the last DS goes, turning DNSSEC off).

    Keys in `tolerate` (compromised keys rolled in an emergency) may break the first rule and
    the last, as `plan` documents.
    """
    policy = zone.policy
    algorithm = {key.id: key.algorithm for key in zone.keys}
    data_window = policy.propagation_delay + policy.zone_max_ttl
    dnskey_window = policy.propagation_delay + policy.dnskey_ttl
    snapshots = zone.history
    spans = _intervals([s.at for s in snapshots], zone.now)
    parent = [(at, ds) for at, ds in zone.parent.history]
    parent_spans = _intervals([at for at, _ in parent], FOREVER)

    def algorithms(keys: frozenset[str]) -> set[int]:
        return {algorithm[key] for key in keys}

    for data, (data_start, data_end) in zip(snapshots, spans, strict=True):
        assert data.data_signers, f"nothing signs the zone's data at {data.at}"
        for keyset, (keys_start, keys_end) in zip(snapshots, spans, strict=True):
            if not (keys_start < data_end + data_window and data_start < keys_end + dnskey_window):
                continue
            if not data.data_signers <= tolerate:
                assert data.data_signers & keyset.dnskey_set, (
                    f"data signed at {data.at} by {sorted(data.data_signers)} meets the DNSKEY "
                    f"RRset of {keyset.at}, {sorted(keyset.dnskey_set)}")
            missing = algorithms(keyset.dnskey_set) - algorithms(data.data_signers)
            assert not missing, (f"data signed at {data.at} lacks algorithms {missing} of the "
                                 f"DNSKEY RRset of {keyset.at}")
    for (ds_start, ds), (_, ds_end) in zip(parent, parent_spans, strict=True):
        if not ds:
            continue
        for keyset, (keys_start, keys_end) in zip(snapshots, spans, strict=True):
            if not (keys_start < ds_end + policy.ds_ttl and ds_start < keys_end + dnskey_window):
                continue
            entry = ds & keyset.dnskey_signers & keyset.dnskey_set
            assert entry, (f"the DS RRset of {ds_start}, {sorted(ds)}, meets the DNSKEY RRset "
                           f"of {keyset.at} signed by {sorted(keyset.dnskey_signers)}")
            missing = algorithms(ds) - algorithms(keyset.dnskey_signers)
            assert not missing, f"the DNSKEY RRset of {keyset.at} lacks algorithms {missing}"
    if not parent:
        return
    secure_since = parent[0][0]
    for snapshot in snapshots:
        if snapshot.at < secure_since or snapshot.data_signers <= tolerate:
            continue
        assert any(_published_since(zone, key, snapshot.at - policy.publish_interval,
                                    snapshot.at) for key in snapshot.data_signers), (
            f"at {snapshot.at} no key signing data has been published for Ipub")
    for (previous_at, previous), (at, ds) in itertools.pairwise(parent):
        for gone in previous - ds:
            if gone in tolerate or not ds:  # an empty DS RRset: the zone goes insecure
                continue
            earlier = [change for change in parent if change[0] <= at]
            assert any(_ds_since(earlier, key) <= at - policy.ds_ttl for key in ds), (
                f"the DS of {gone} left the parent at {at}, before another had been there "
                f"for the DS TTL (previous change {previous_at})")


def _published_since(zone: Zone, key: str, start: datetime, end: datetime) -> bool:
    spans = _intervals([s.at for s in zone.history], zone.now)
    return all(key in snapshot.dnskey_set
               for snapshot, (span_start, span_end) in zip(zone.history, spans, strict=True)
               if span_start <= end and span_end > start) and zone.history[0].at <= start


def _ds_since(parent: list[tuple[datetime, frozenset[str]]], key: str) -> datetime:
    since = FOREVER
    for at, ds in parent:
        if key not in ds:
            since = FOREVER
        elif since == FOREVER:
            since = at
    return since


def new_zone(policy: Policy | None = None, parent: Parent | None = None) -> Zone:
    zone = Zone(policy or Policy(), parent or Parent())
    zone.run_for(3 * DAY)
    return zone


# A new zone


def test_new_zone_gets_a_ksk_and_a_zsk_and_submits_the_ds_once_signed_data_has_propagated() -> None:
    zone = Zone(Policy())
    first = zone.step()
    assert [(g.role, g.algorithm) for g in first.generate] == [("ksk", ECDSAP256SHA256),
                                                                ("zsk", ECDSAP256SHA256)]
    assert first.next_event_at == T0
    second = zone.step()
    ksk, zsk = zone.role("ksk")[0], zone.role("zsk")[0]
    assert set(second.dnskey_set) == {ksk.id, zsk.id}
    assert second.dnskey_signers == (ksk.id,) and second.data_signers == (zsk.id,)
    assert second.ds_submit == () and second.cds is None
    zone.run_for(3 * DAY)
    policy = zone.policy
    assert zone.times(ksk.id, "ds_submitted") == [T0 + policy.propagation_delay
                                                  + policy.zone_max_ttl]
    assert zone.parent.ds == {ksk.id}
    assert zone.key(ksk.id).ds_seen is not None
    assert_resolution_safe(zone)


def test_new_csk_zone_has_one_key_signing_everything() -> None:
    zone = new_zone(Policy(scheme="csk"))
    (csk,) = zone.keys
    assert csk.role == "csk"
    assert zone.last is not None
    assert zone.last.dnskey_signers == zone.last.data_signers == (csk.id,)
    assert zone.parent.ds == {csk.id}


def test_cds_describes_the_wanted_ds_only_while_the_parent_has_not_caught_up() -> None:
    zone = Zone(Policy())
    publications = []
    for _ in range(40):
        result = zone.step()
        publications.append((zone.now, result.cds))
        assert result.next_event_at is not None
        zone.now = result.next_event_at
    (ksk,) = zone.role("ksk")
    submitted = zone.key(ksk.id).ds_submitted
    seen = zone.key(ksk.id).ds_seen
    assert submitted is not None and seen is not None
    for moment, cds in publications:
        if submitted <= moment < seen:
            assert cds is not None and cds.keys == (ksk.id,) and not cds.delete
        else:
            assert cds is None


def test_turning_dnssec_off_publishes_the_rfc_8078_delete_and_withdraws_the_ds() -> None:
    zone = new_zone()
    zone.policy = replace(zone.policy, cds_publish="delete-dnssec")
    result = zone.step()
    assert result.cds is not None and result.cds.delete and result.cds.keys == ()
    assert result.ds_withdraw == (zone.role("ksk")[0].id,)
    assert (CDS_DELETE, CDNSKEY_DELETE) == ("0 0 0 00", "0 3 0 AA==")
    assert not result.unsign_safe, "the DS is still at the parent"
    zone.run_for(5 * DAY)
    ksk = zone.role("ksk")[0]
    assert ksk.ds_gone is not None and zone.parent.ds == frozenset()
    safe = [at for at, result in zone.plans if result.unsign_safe]
    assert safe and safe[0] == ksk.ds_gone + zone.policy.parent_interval
    assert_resolution_safe(zone)


# ZSK pre-publication


def test_zsk_rolls_every_lifetime_by_pre_publication() -> None:
    zone = new_zone()
    policy = zone.policy
    zone.run_until(T0 + 100 * DAY)
    zsks = zone.role("zsk")
    assert len(zsks) == 4
    for old, new in itertools.pairwise(zsks):
        assert old.active is not None and new.published is not None and new.active is not None
        assert new.active == old.active + policy.zsk_lifetime
        assert new.active - new.published == policy.publish_interval
        assert old.retire_active == new.active
        assert old.removed == old.retire_active + policy.retire_interval
    assert zone.parent.ds == {zone.role("ksk")[0].id}, "a ZSK rollover never touches the DS"
    assert_resolution_safe(zone)


def test_every_state_change_is_a_transition_with_an_event_name() -> None:
    zone = new_zone()
    zone.run_until(T0 + 40 * DAY)
    new_zsk = zone.role("zsk")[1]
    events = [t.event for t in zone.transitions if t.key_id == new_zsk.id]
    assert events == ["dnssec:key:published", "dnssec:key:ready", "dnssec:key:active"]
    resigned = [at for at, result in zone.plans if result.resign]
    assert resigned == [T0, new_zsk.active], "a full re-sign only when the signing keys change"


# KSK double-DS


def ksk_policy(**changes: object) -> Policy:
    values: dict[str, object] = {"ksk_lifetime": 60 * DAY, "zsk_lifetime": 30 * DAY}
    values.update(changes)
    return Policy(**values)  # type: ignore[arg-type]


def test_ksk_rolls_by_double_ds_after_the_new_ds_is_seen_and_its_ttl_has_passed() -> None:
    zone = new_zone(ksk_policy())
    policy = zone.policy
    zone.run_until(T0 + 100 * DAY)
    old, new = zone.role("ksk")
    assert new.ds_submitted is not None and new.ds_submitted == new.published
    assert new.ds_seen is not None and new.active is not None and old.retire_active is not None
    assert new.ds_seen >= new.ds_submitted + zone.parent.delay, "seen only once it was there"
    assert new.active >= new.ds_seen + policy.parent_interval
    assert old.retire_active == new.active
    assert old.ds_removed_submitted == old.retire_active + policy.publish_interval
    assert old.ds_gone is not None and old.removed == old.ds_gone + policy.parent_interval
    assert zone.parent.ds == {new.id}
    published = {cds.keys for _, result in zone.plans if (cds := result.cds) is not None}
    assert published == {(old.id,), (old.id, new.id), (new.id,)}, "RFC 7344: the wanted DS set"
    assert_resolution_safe(zone)


def test_only_one_rollover_runs_at_a_time() -> None:
    zone = new_zone(ksk_policy())
    zone.run_until(T0 + 200 * DAY)
    # A rollover runs from its new key's generation to the removal of the key it replaces.
    under_way = [(new.created, old.removed or FOREVER, role) for role in ("ksk", "zsk")
                 for old, new in itertools.pairwise(zone.role(role))]
    under_way.sort()
    assert {role for _, _, role in under_way} == {"ksk", "zsk"}
    for (_, end, _), (start, _, _) in itertools.pairwise(under_way):
        assert end <= start, f"two rollovers overlap: {under_way}"
    assert_resolution_safe(zone)


def test_ksk_rollover_waits_for_the_parent_and_never_proceeds_on_time_alone() -> None:
    zone = new_zone(parent=Parent())
    zone.parent.accepts = False  # the registry drops the next submission
    wanted = request_rollover(zone.policy, zone.keys, "ksk")
    zone.add_key(wanted.role, wanted.algorithm)
    zone.run_for(45 * DAY)
    old, new = zone.role("ksk")
    assert new.ds_submitted is not None and new.ds_seen is None
    assert new.active is None and old.signs_dnskey_set
    assert old.ds_removed_submitted is None and zone.parent.ds == {old.id}
    assert zone.last is not None and zone.last.check_parent
    assert zone.last.next_event_at == zone.last_at + zone.policy.parent_check_interval
    assert len(zone.role("zsk")) == 1, "the ZSK rollover due on day 30 waits its turn"
    assert "KSK rollover" in (rollover_under_way(zone.keys) or "")
    unchecked = plan(zone.policy, zone.keys, zone.now + 365 * DAY, parent_ds_seen=None)
    assert "active" not in {t.field for t in unchecked.transitions if t.key_id == new.id}
    assert unchecked.dnskey_signers == (old.id,)

    zone.parent.accepts = True
    zone.parent.submit(new.id, zone.now, add=True)  # the registrar submits again
    zone.run_for(10 * DAY)
    old, new = zone.role("ksk")
    assert new.active is not None and old.removed is not None
    assert zone.parent.ds == {new.id}
    assert len(zone.role("zsk")) == 2, "the ZSK rolls once the KSK rollover is over"
    assert_resolution_safe(zone)


def test_csk_rolls_by_double_ds() -> None:
    zone = new_zone(ksk_policy(scheme="csk"))
    policy = zone.policy
    zone.run_until(T0 + 100 * DAY)
    old, new = zone.role("csk")
    assert new.active is not None and new.ds_seen is not None
    assert new.active >= new.ds_seen + policy.parent_interval
    assert old.ds_removed_submitted is not None and old.retire_active is not None
    assert old.ds_removed_submitted == old.retire_active + policy.retire_interval
    assert zone.parent.ds == {new.id}
    assert_resolution_safe(zone)


# Algorithm rollover


def test_algorithm_rollover_signs_first_publishes_then_swaps_the_ds_and_withdraws_old_keys_last(
) -> None:
    zone = new_zone()
    policy = replace(zone.policy, algorithm=ED25519)
    zone.policy = policy
    zone.run_for(20 * DAY)
    old_ksk, new_ksk = zone.role("ksk")
    old_zsk, new_zsk = zone.role("zsk")
    assert new_ksk.algorithm == new_zsk.algorithm == ED25519
    for new in (new_ksk, new_zsk):
        assert new.active is not None and new.published is not None
        assert new.published == new.active + policy.retire_interval, "signs before published"
    assert new_ksk.published is not None
    assert new_ksk.ds_submitted == new_ksk.published + policy.publish_interval
    assert new_ksk.ds_seen is not None and old_ksk.ds_removed_submitted is not None
    assert old_ksk.ds_removed_submitted == new_ksk.ds_seen + policy.parent_interval
    assert old_ksk.ds_gone is not None
    for old in (old_ksk, old_zsk):
        assert old.removed == old_ksk.ds_gone + policy.parent_interval
        assert old.retire_active == old.removed + policy.publish_interval, "signatures last"
    assert zone.parent.ds == {new_ksk.id}
    assert zone.last is not None
    assert set(zone.last.dnskey_set) == {new_ksk.id, new_zsk.id}
    assert rollover_under_way(zone.keys) is None
    assert_resolution_safe(zone)


def test_algorithm_rollover_of_a_csk_zone() -> None:
    zone = new_zone(Policy(scheme="csk"))
    zone.policy = replace(zone.policy, algorithm=ED25519)
    zone.run_for(20 * DAY)
    old, new = zone.role("csk")
    assert new.algorithm == ED25519 and old.retired is not None and old.removed is not None
    assert zone.parent.ds == {new.id}
    assert_resolution_safe(zone)


def test_a_change_of_scheme_on_a_signed_zone_is_refused() -> None:
    zone = new_zone()
    zone.policy = replace(zone.policy, scheme="csk")
    with pytest.raises(ValidationFailed) as refused:
        zone.step()
    assert [(e.field, e.code) for e in refused.value.errors] == [("scheme", "unsupported_change")]


def test_without_lifetimes_nothing_is_planned_once_the_ds_is_seen() -> None:
    zone = new_zone(Policy(zsk_lifetime=timedelta(0)))
    assert zone.last is not None and zone.last.next_event_at is None
    assert [t.field for t in zone.last.transitions] == ["ds_seen"]
    zone.now += 400 * DAY
    later = zone.step()
    assert (later.transitions, later.generate, later.next_event_at) == ((), (), None)


# Emergency rollovers


def test_compromised_zsk_is_replaced_at_once_and_removed_after_ipub() -> None:
    zone = new_zone()
    policy = zone.policy
    zone.run_until(T0 + 10 * DAY)
    bad = zone.role("zsk")[0]
    zone.keys = [replace(key, compromised=True) if key.id == bad.id else key
                 for key in zone.keys]
    struck = zone.now
    zone.run_for(5 * DAY)
    bad, new = zone.role("zsk")
    assert new.created == new.published == new.active == struck
    assert bad.removed == struck + policy.publish_interval
    assert bad.removed < struck + policy.retire_interval, "faster than a planned rollover"
    assert_resolution_safe(zone, tolerate=frozenset({bad.id}))
    with pytest.raises(AssertionError, match="meets the DNSKEY"):
        assert_resolution_safe(zone)  # the documented trade-off, visible to the checker


def test_compromised_ksk_ds_is_withdrawn_as_soon_as_the_new_ds_is_seen() -> None:
    zone = new_zone()
    policy = zone.policy
    zone.run_until(T0 + 10 * DAY)
    bad = zone.role("ksk")[0]
    zone.keys = [replace(key, compromised=True) if key.id == bad.id else key
                 for key in zone.keys]
    struck = zone.now
    zone.run_for(10 * DAY)
    bad, new = zone.role("ksk")
    assert new.published == new.active == new.ds_submitted == struck
    assert new.ds_seen is not None and bad.ds_removed_submitted == new.ds_seen
    assert new.ds_seen < struck + policy.parent_interval
    assert bad.ds_gone is not None and bad.removed == bad.ds_gone + policy.parent_interval
    assert zone.parent.ds == {new.id}
    assert_resolution_safe(zone, tolerate=frozenset({bad.id}))


def test_an_emergency_may_interrupt_a_rollover_under_way() -> None:
    zone = new_zone()
    zone.run_until(T0 + 30 * DAY - HOUR)  # the second ZSK is published, not yet active
    old, successor = zone.role("zsk")
    assert successor.published is not None and successor.active is None
    zone.keys = [replace(key, compromised=True) if key.id == old.id else key
                 for key in zone.keys]
    result = zone.step()
    assert result.generate == ()
    assert zone.key(successor.id).active == zone.now
    zone.run_for(5 * DAY)
    assert zone.key(old.id).removed is not None
    assert_resolution_safe(zone, tolerate=frozenset({old.id}))


# Manual rollovers and policies


def test_a_second_manual_rollover_is_refused_while_one_is_under_way() -> None:
    zone = new_zone()
    refuse_second_rollover(zone.keys)
    wanted = request_rollover(zone.policy, zone.keys, "zsk")
    assert (wanted.role, wanted.algorithm) == ("zsk", ECDSAP256SHA256)
    zone.add_key(wanted.role, wanted.algorithm)
    zone.step()
    with pytest.raises(Conflict, match="ZSK rollover is under way"):
        request_rollover(zone.policy, zone.keys, "ksk")
    with pytest.raises(ValidationFailed) as refused:
        request_rollover(zone.policy, zone.keys, "csk")
    assert [e.field for e in refused.value.errors] == ["role"]


def test_manual_zsk_rollover_runs_to_the_end() -> None:
    zone = new_zone()
    wanted = request_rollover(zone.policy, zone.keys, "zsk")
    zone.add_key(wanted.role, wanted.algorithm)
    zone.run_for(3 * DAY)
    old, new = zone.role("zsk")
    assert new.active is not None and old.removed is not None
    assert rollover_under_way(zone.keys) is None
    assert_resolution_safe(zone)


def test_policy_reports_every_problem_at_once() -> None:
    with pytest.raises(ValidationFailed) as refused:
        Policy(name="", algorithm=5, scheme="zsk-only",  # type: ignore[arg-type]
               cds_publish="sometimes", dnskey_ttl=timedelta(seconds=5),  # type: ignore[arg-type]
               ds_ttl=timedelta(0), propagation_delay=-HOUR)
    fields = {e.field for e in refused.value.errors}
    assert fields == {"name", "algorithm", "scheme", "cds_publish", "dnskey_ttl", "ds_ttl",
                      "propagation_delay"}


def test_policy_refuses_lifetimes_shorter_than_their_rollover_and_short_refresh() -> None:
    with pytest.raises(ValidationFailed) as refused:
        Policy(zsk_lifetime=DAY, ksk_lifetime=2 * DAY, rrsig_refresh=HOUR)
    assert {(e.field, e.code) for e in refused.value.errors} == {
        ("zsk_lifetime", "too_short"), ("ksk_lifetime", "too_short"),
        ("rrsig_refresh", "too_small")}
    with pytest.raises(ValidationFailed) as refused:
        Policy(dnskey_ttl=2 * DAY, zone_max_ttl=DAY)
    assert [(e.field, e.code) for e in refused.value.errors] == [("zone_max_ttl", "too_small")]


def test_default_policy_follows_knot_dns_defaults() -> None:
    policy = Policy()
    assert (policy.algorithm, policy.scheme, policy.zsk_lifetime, policy.ksk_lifetime) == (
        ECDSAP256SHA256, "ksk-zsk", 30 * DAY, timedelta(0))
    assert policy.propagation_delay == HOUR and policy.rrsig_lifetime == 14 * DAY
    assert policy.signature_refresh == timedelta(days=1.4) + HOUR + policy.zone_max_ttl


def test_plan_refuses_naive_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        plan(Policy(), [], datetime(2026, 1, 1), parent_ds_seen=None)


# The checker itself


def test_the_checker_catches_a_zsk_removed_before_its_signatures_expired() -> None:
    zone = new_zone()
    zone.run_until(T0 + 40 * DAY)
    old, new = zone.role("zsk")[:2]
    assert new.active is not None
    cut = new.active + HOUR  # pretend the old key left the DNSKEY RRset an hour after the swap
    zone.history = [dataclasses.replace(s, dnskey_set=s.dnskey_set - {old.id})
                    if s.at >= cut else s for s in zone.history]
    index = next(i for i, s in enumerate(zone.history) if s.at > new.active)
    broken = zone.history[index - 1]
    zone.history.insert(index, dataclasses.replace(broken, at=cut,
                                                   dnskey_set=broken.dnskey_set - {old.id}))
    with pytest.raises(AssertionError, match="meets the DNSKEY"):
        assert_resolution_safe(zone)


def test_the_checker_catches_a_ds_withdrawn_too_early() -> None:
    zone = new_zone(ksk_policy())
    zone.run_until(T0 + 100 * DAY)
    _, new = zone.role("ksk")
    assert new.ds_seen is not None
    early = new.ds_seen + HOUR
    zone.parent.history = [(at, ds) for at, ds in zone.parent.history if at < early]
    zone.parent.history.append((early, frozenset({new.id})))
    with pytest.raises(AssertionError, match="DS"):
        assert_resolution_safe(zone)


# RFC 9615 bootstrapping


def test_bootstrap_signal_names_skip_nameservers_inside_the_zone() -> None:
    names = bootstrap_signal_names("Example.co.uk", ["ns1.example.net.", "NS2.Example.Net",
                                                     "ns.example.co.uk", "ns1.example.net"])
    assert names == ("_dsboot.example.co.uk._signal.ns1.example.net.",
                     "_dsboot.example.co.uk._signal.ns2.example.net.")
    long_host = ".".join(["a" * 60] * 3) + ".net"
    assert bootstrap_signal_names("x" * 60 + ".com", [long_host]) == ()
