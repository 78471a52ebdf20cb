"""A new snapshot's index made from the one before it (`ZoneIndex.following`).

An edit of a large zone must not rebuild the server's index of every name: the index of the
new snapshot is made from the previous one's and the RRsets that differ. It must be the
index a whole build makes, field for field, and the server must answer every question from
it as it answers from a whole build, through a chain of edits of every kind (names that
appear deep below new empty non-terminals and vanish again, delegations, wildcards, data
replaced), on both denial chains, on the signer's snapshots and on those a DNS worker makes
from the journal (`apply_diffs`).
"""

from __future__ import annotations

import gc
import random
import weakref
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import dns.message
import dns.name
import dns.rdatatype
import dns.rrset
import dns.zone
import pytest
from dns_peers import TEST_ZONE_TEXT, zone_rrsets

from regshield.dns import answers
from regshield.dns.answers import ZoneIndex
from regshield.dns.server import DnsServer, prepare_index
from regshield.dns.zonedata import ServedZone, ZoneTable, apply_diffs
from regshield.dnssec import KSK_FLAGS, ZSK_FLAGS, generate_key
from regshield.dnssec.incremental import SignedZone

ORIGIN = dns.name.from_text("following.test.")
NOW = datetime(2026, 12, 1, tzinfo=UTC)
QTYPES = ("A", "AAAA", "TXT", "NS", "DS", "SOA", "NSEC", "NSEC3", "RRSIG", "CNAME", "MX")


def signer(nsec: str) -> SignedZone:
    big = "\n".join(f'big 3600 TXT "{"x" * 60} {index}"' for index in range(12))
    text = TEST_ZONE_TEXT.format(serial=1, digest="ab" * 32, big=big)
    rrsets = zone_rrsets(dns.zone.from_text(text, origin=ORIGIN, relativize=False))
    keys = [generate_key(flags=KSK_FLAGS), generate_key(flags=ZSK_FLAGS)]
    return SignedZone(rrsets, keys, NOW, nsec=nsec)  # type: ignore[arg-type]


def name(text: str) -> dns.name.Name:
    return dns.name.from_text(text, ORIGIN)


def rrset(owner: str, rdtype: str, *records: str, ttl: int = 300) -> dns.rrset.RRset:
    return dns.rrset.from_text_list(name(owner), ttl, "IN", rdtype, list(records))


class Edits:
    """Random edits of every kind, remembering what they made so that later ones undo it."""

    def __init__(self, seed: int) -> None:
        self.chooser = random.Random(seed)
        self.leaves: list[str] = []  # names holding one A RRset, made here
        self.delegations: list[str] = []
        self.count = 0

    def next(self) -> tuple[list[dns.rrset.RRset], list[tuple[dns.name.Name, int]]]:
        chooser = self.chooser
        self.count += 1
        number = self.count
        kind = chooser.choice(("deep", "deep", "leaf", "vanish", "vanish", "delegate",
                               "undelegate", "wildcard", "replace", "below-ent"))
        if kind == "deep":  # new empty non-terminals above it
            labels = [f"l{chooser.randrange(4)}" for _ in range(chooser.randint(1, 3))]
            owner = ".".join([f"n{number}", *labels, f"t{chooser.randrange(3)}"])
            self.leaves.append(owner)
            return [rrset(owner, "A", f"192.0.2.{number % 250 + 1}")], []
        if kind == "leaf":
            owner = f"leaf{number}"
            self.leaves.append(owner)
            return [rrset(owner, "A", "198.51.100.1"), rrset(owner, "TXT", '"t"')], []
        if kind == "below-ent":  # a name below the zone's own empty non-terminal
            owner = f"x{number}.ent.a"
            self.leaves.append(owner)
            return [rrset(owner, "AAAA", "2001:db8::1")], []
        if kind == "vanish" and self.leaves:
            owner = self.leaves.pop(chooser.randrange(len(self.leaves)))
            return [], [(name(owner), dns.rdatatype.A), (name(owner), dns.rdatatype.TXT),
                        (name(owner), dns.rdatatype.AAAA)]
        if kind == "delegate":
            owner = f"d{number}.t{chooser.randrange(3)}"
            self.delegations.append(owner)
            return [rrset(owner, "NS", f"ns.{owner}.{ORIGIN}", ttl=3600),
                    rrset(f"ns.{owner}", "A", "192.0.2.99", ttl=3600),
                    *([rrset(owner, "DS", f"{number} 13 2 {'cd' * 32}", ttl=3600)]
                      if chooser.random() < 0.5 else [])], []
        if kind == "undelegate" and self.delegations:
            owner = self.delegations.pop(chooser.randrange(len(self.delegations)))
            return [], [(name(owner), dns.rdatatype.NS), (name(owner), dns.rdatatype.DS),
                        (name(f"ns.{owner}"), dns.rdatatype.A)]
        if kind == "wildcard":
            owner = f"*.w{chooser.randrange(3)}"
            if chooser.random() < 0.5:
                return [rrset(owner, "TXT", f'"{number}"')], []
            return [], [(name(owner), dns.rdatatype.TXT)]
        return [rrset("www", "A", f"192.0.2.{number % 250 + 1}")], []


def same_index(ours: ZoneIndex, whole: ZoneIndex) -> None:
    """Field for field; the RRSIG RRsets at a name as a set (their order is not served)."""
    assert ours.zone.rrsets is whole.zone.rrsets
    assert ours._types == whole._types
    assert ({owner: {id(rrsig) for rrsig in sets} for owner, sets in ours._rrsigs.items()}
            == {owner: {id(rrsig) for rrsig in sets} for owner, sets in whole._rrsigs.items()})
    assert ours._existing == whole._existing
    assert ours._cuts == whole._cuts
    assert ours._nsec_owners == whole._nsec_owners
    assert ours._nsec3 == whole._nsec3
    assert ours._nsec3_digests == whole._nsec3_digests
    assert (ours._nsec3_salt, ours._nsec3_iterations) == (
        whole._nsec3_salt, whole._nsec3_iterations)
    assert ours._negative_soa == whole._negative_soa
    assert ours._negative_soa_rrsig == whole._negative_soa_rrsig
    mine, theirs = ours.denial, whole.denial
    for field in ("origin", "_types", "_signed", "_existing", "_cuts", "_nsec_keys",
                  "_nsec_owners", "_nsec3_digests", "_nsec3_owners", "nsec3_owner_names",
                  "nsec3", "_negative_soa", "_negative_soa_signed"):
        assert getattr(mine, field) == getattr(theirs, field), field
    assert ({owner: {key: id(found) for key, found in records.items()}
             for owner, records in mine._records.items()}
            == {owner: {key: id(found) for key, found in records.items()}
                for owner, records in theirs._records.items()})
    # Rendered ahead: every denial record the whole build cut or rendered, alike.
    for key, entry in theirs.rendered.items():
        if key == "native":  # what the C loop denies with: made afresh for each snapshot
            assert type(mine.rendered[key]) is type(entry)
            continue
        assert mine.rendered.get(key) == entry, key


def same_answers(ours: ServedZone, whole: ServedZone, seed: int, names: list[str]) -> None:
    """Every question asked of both snapshots gets the same response."""
    chooser = random.Random(seed)
    first, second = DnsServer(ZoneTable([ours])), DnsServer(ZoneTable([whole]))
    for number in range(300):
        parent = chooser.choice(names)
        label = chooser.choice(("", "", f"q{chooser.randrange(10**6)}."))
        query = dns.message.make_query(f"{label}{parent}", chooser.choice(QTYPES),
                                       want_dnssec=chooser.random() < 0.8)
        query.id = number
        wire = query.to_wire()
        udp = chooser.random() < 0.7
        one, other = first._respond(wire, udp=udp), second._respond(wire, udp=udp)
        assert one is not None and other is not None
        assert len(one) == len(other) and one[:12] == other[:12], (parent, label)
        assert dns.message.from_wire(one) == dns.message.from_wire(other), (parent, label)


def whole_copy(zone: ServedZone) -> ServedZone:
    copy = ServedZone(zone.origin, zone.serial, zone.rrsets, zone.journal)
    prepare_index(copy)
    return copy


def served_names(zone: ServedZone) -> list[str]:
    return sorted({rrset.name.to_text() for rrset in zone.rrsets
                   if rrset.rdtype != dns.rdatatype.NSEC3})


@pytest.mark.parametrize("nsec", ["nsec", "nsec3"])
def test_an_index_made_from_the_last_one_equals_a_whole_build_through_many_edits(
        nsec: str) -> None:
    zone = signer(nsec)
    edits = Edits(seed=len(nsec))
    served = zone.served()
    prepare_index(served)
    followed = 0
    for step in range(80):
        replace, delete = edits.next()
        zone.apply(NOW, replace=replace, delete=delete)
        following = zone.served()
        prepare_index(following, served)  # each from the last: no drift may build up
        index = following.prepared["index"]
        assert index.denial.renew is not None  # made from the last one's, not whole
        followed += 1
        whole = whole_copy(following)
        same_index(index, whole.prepared["index"])
        if step % 10 == 9:
            same_answers(following, whole, step, served_names(following))
        served = following
    assert followed == 80
    assert edits.leaves or edits.delegations  # the edits left names behind to vanish later


@pytest.mark.parametrize("nsec", ["nsec", "nsec3"])
def test_a_dns_workers_snapshot_from_the_journal_is_indexed_from_its_last_one(
        nsec: str) -> None:
    """A worker applies each difference to its own copy (`apply_diffs`): the RRsets that did
    not change stay the same objects there too."""
    zone = signer(nsec)
    edits = Edits(seed=7)
    copy = whole_copy(zone.served())
    for step in range(40):
        replace, delete = edits.next()
        diff = zone.apply(NOW, replace=replace, delete=delete)
        following = apply_diffs(copy, [diff], 10)
        prepare_index(following, copy)
        assert following.prepared["index"].denial.renew is not None
        whole = whole_copy(following)
        same_index(following.prepared["index"], whole.prepared["index"])
        if step % 10 == 9:
            same_answers(following, whole, step, served_names(following))
        copy = following


def test_an_edit_of_a_large_zone_is_indexed_without_a_pass_over_every_name(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole build is not called, and the index holds what the edit made."""
    zone = signer("nsec3")
    for number in range(300):
        zone.apply(NOW, replace=[rrset(f"h{number}", "A", "192.0.2.1")])
    served = zone.served()
    prepare_index(served)
    zone.apply(NOW, replace=[rrset("fresh.l1.l2", "A", "192.0.2.7")])
    following = zone.served()

    def whole_build(*_: object) -> None:
        raise AssertionError("the index was built whole")

    monkeypatch.setattr(ZoneIndex, "__init__", whole_build)
    prepare_index(following, served)
    index = following.prepared["index"]
    assert {name("fresh.l1.l2"), name("l1.l2"), name("l2")} <= index._existing
    answer = index.lookup(name("fresh.l1.l2"), dns.rdatatype.A, True)
    assert [rrset.rdtype for rrset in answer.answer] == [dns.rdatatype.A, dns.rdatatype.RRSIG]


def test_a_large_change_or_new_nsec3_parameters_are_indexed_whole() -> None:
    zone = signer("nsec")
    served = zone.served()
    prepare_index(served)
    many = [rrset(f"m{number}", "A", "192.0.2.1")
            for number in range(answers.FOLLOW_AT_MOST + 1)]
    zone.apply(NOW, replace=many)
    following = zone.served()
    assert ZoneIndex.following(served.prepared["index"], following) is None
    prepare_index(following, served)
    assert following.prepared["index"].denial.renew is None  # built whole
    whole = whole_copy(following)
    same_index(following.prepared["index"], whole.prepared["index"])

    nsec3 = signer("nsec3")
    before = nsec3.served()
    prepare_index(before)
    parameters = before.find(ORIGIN, dns.rdatatype.NSEC3PARAM)
    assert parameters is not None
    changed = ServedZone(ORIGIN, before.serial + 1, tuple(
        rrset if rrset is not parameters else dns.rrset.from_text(
            ORIGIN, parameters.ttl, "IN", "NSEC3PARAM", "1 0 0 ab")
        for rrset in before.rrsets))
    assert ZoneIndex.following(before.prepared["index"], changed) is None


def test_names_that_vanish_take_their_empty_non_terminals_with_them() -> None:
    zone = signer("nsec")
    served = zone.served()
    prepare_index(served)
    steps: list[Callable[[], object]] = [
        lambda: zone.apply(NOW, replace=[rrset("a.b.c.gone", "A", "192.0.2.1"),
                                         rrset("d.b.c.gone", "A", "192.0.2.2")]),
        lambda: zone.apply(NOW, delete=[(name("a.b.c.gone"), dns.rdatatype.A)]),
        lambda: zone.apply(NOW, delete=[(name("d.b.c.gone"), dns.rdatatype.A)]),
    ]
    seen = []
    for step in steps:
        step()
        following = zone.served()
        prepare_index(following, served)
        index = following.prepared["index"]
        whole = whole_copy(following)
        same_index(index, whole.prepared["index"])
        seen.append({name(text) in index._existing for text in ("b.c.gone", "c.gone", "gone")})
        served = following
    assert seen == [{True}, {True}, {False}]  # kept while d.b.c.gone exists, then gone


def test_denial_records_re_signed_in_place_are_rendered_again() -> None:
    """A signature refresh re-signs an NSEC3 record that stays the same object: what was
    rendered of it with its old signature must not be served with the new snapshot."""
    zone = signer("nsec3")
    served = zone.served()
    prepare_index(served)
    moment = NOW + zone.lifetime - zone.refresh_window
    while zone.refresh(moment) is None:
        moment += timedelta(hours=6)
    following = zone.served()
    re_signed = [rrset for rrset in following.rrsets if rrset.rdtype == dns.rdatatype.NSEC3
                 and served.find(rrset.name, dns.rdatatype.NSEC3) is rrset
                 and served.find(rrset.name, dns.rdatatype.RRSIG, dns.rdatatype.NSEC3)
                 is not following.find(rrset.name, dns.rdatatype.RRSIG, dns.rdatatype.NSEC3)]
    assert re_signed
    prepare_index(following, served)
    assert following.prepared["index"].denial.renew is not None
    whole = whole_copy(following)
    same_index(following.prepared["index"], whole.prepared["index"])
    same_answers(following, whole, 1, served_names(following))


def test_a_replaced_snapshot_is_freed_without_a_collection() -> None:
    """The snapshot holds its index and the index holds its snapshot only weakly: a large
    zone's replaced snapshot goes as soon as nothing serves it, not at the next full
    collection (which walks every object of the process, the event loop stopped)."""
    zone = signer("nsec3")
    served = zone.served()
    prepare_index(served)
    zone.apply(NOW, replace=[rrset("fresh", "A", "192.0.2.8")])
    following = zone.served()
    prepare_index(following, served)
    gone = weakref.ref(served)
    index = following.prepared["index"]
    answer = index.lookup(name("fresh"), dns.rdatatype.A, True)
    gc.disable()
    try:
        del served
        assert gone() is None
    finally:
        gc.enable()
    assert index.zone is following
    assert [rrset.rdtype for rrset in answer.answer] == [dns.rdatatype.A, dns.rdatatype.RRSIG]
