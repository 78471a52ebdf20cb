"""Zone snapshots: lookups by name and type, the closest enclosing zone, the IXFR journal."""

import dns.name
import dns.rdatatype
import dns.rrset
import dns.zone

from regshield.dns.zonedata import ServedZone, ZoneDiff, ZoneTable

TEXT = (
    "@ 300 SOA ns1 hostmaster {serial} 7200 3600 1209600 300\n"
    "@ 300 NS ns1\nns1 300 A 192.0.2.1\n"
)


def served(origin: str, serial: int, journal: tuple[ZoneDiff, ...] = ()) -> ServedZone:
    zone = dns.zone.from_text(TEXT.format(serial=serial), origin=origin, relativize=False)
    rrsets = tuple(
        dns.rrset.from_rdata_list(name, rdataset.ttl, list(rdataset))
        for name, node in zone.nodes.items() for rdataset in node.rdatasets
    )
    return ServedZone(dns.name.from_text(origin), serial, rrsets, journal)


def test_a_name_is_served_by_its_longest_enclosing_zone() -> None:
    table = ZoneTable([served("example.", 1), served("sub.example.", 1)])
    name = dns.name.from_text
    assert table.closest(name("www.sub.example.")).origin == name("sub.example.")
    assert table.closest(name("www.example.")).origin == name("example.")
    assert table.closest(name("example.org.")) is None


def test_a_zone_served_unread_is_read_at_its_first_lookup_and_a_newer_one_wins() -> None:
    name = dns.name.from_text
    reads: list[str] = []

    def read(origin: str) -> ServedZone:
        reads.append(origin)
        return served(origin, 1)

    table = ZoneTable([served("example.", 1)])
    table.defer(name("sub.example."), lambda: read("sub.example."))
    table.defer(name("other.example."), lambda: read("other.example."))
    generation = table.generation
    assert len(table) == 3 and [zone.origin for zone in table] == [name("example.")]
    zone = table.closest(name("www.sub.example."))  # the unread child, not its parent
    assert zone is not None and zone.origin == name("sub.example.") and reads == ["sub.example."]
    assert table.closest(name("www.sub.example.")) is zone and len(reads) == 1
    assert table.generation == generation  # what is served did not change
    # A newer snapshot put before the reading is what is served; the reading never happens.
    table.put(served("other.example.", 2))
    kept = table.settle(name("other.example."), served("other.example.", 1))
    assert kept is not None and kept.serial == 2
    assert reads == ["sub.example."] and not table.deferred
    table.defer(name("gone.example."), lambda: read("gone.example."))
    table.remove(name("gone.example."))
    assert table.get(name("gone.example.")) is None and len(table) == 3


def test_a_new_serial_replaces_the_whole_zone() -> None:
    table = ZoneTable([served("example.", 1)])
    table.put(served("example.", 2))
    zone = table.get(dns.name.from_text("example."))
    assert zone is not None and zone.serial == 2 and zone.soa[0].serial == 2
    assert zone.find(dns.name.from_text("ns1.example."), dns.rdatatype.A) is not None
    assert len(table) == 1


def test_the_journal_answers_from_a_serial_it_reaches_back_to() -> None:
    first = ZoneDiff(1, 2, (), ())
    second = ZoneDiff(2, 3, (), ())
    zone = served("example.", 3, (first, second))
    assert zone.diffs_since(2) == [second]
    assert zone.diffs_since(1) == [first, second]
    assert zone.diffs_since(0) is None
