"""Hosted zones (rules/zones.py): one RRset, the whole zone, the SOA serial."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from regshield.errors import ValidationFailed
from regshield.rules.zones import (
    MAX_RECORDS,
    MAX_TTL,
    MIN_TTL,
    SERIAL_MODULUS,
    RRset,
    RRsetInput,
    apex_types_changed,
    next_serial,
    replaced_fraction,
    reserved_for_registrar,
    serial_add,
    serial_gt,
    validate_rrset,
    validate_rrsets,
    zone_problems,
)

ZONE = "example.com"
DIGEST = "e06d44b80b8f1d39a95c0b0d7c65d08458e880409bbc683457104237c7f8ec8d"
NOW = datetime(2026, 11, 27, 23, 30, tzinfo=UTC)


def rrset(owner: Any = "www", rtype: Any = "A", ttl: Any = 300, records: Any = None,
          zone: str = ZONE) -> RRset:
    return validate_rrset(zone, owner, rtype, ttl, ["192.0.2.1"] if records is None else records)


def failures(owner: Any = "www", rtype: Any = "A", ttl: Any = 300, records: Any = None,
             field_prefix: str = "") -> list[tuple[str, str]]:
    """(field, code) of every reason the RRset is refused; every reason has a message."""
    with pytest.raises(ValidationFailed) as refused:
        validate_rrset(ZONE, owner, rtype, ttl,
                       ["192.0.2.1"] if records is None else records, field_prefix)
    assert all(error.message for error in refused.value.errors)
    return [(error.field, error.code) for error in refused.value.errors]


def codes(problems: list[Any]) -> list[tuple[str, str]]:
    assert all(problem.message for problem in problems)
    return [(problem.field, problem.code) for problem in problems]


def zone(*rrsets: tuple[str, str, list[str]], apex_ns: bool = True) -> list[RRset]:
    """RRsets of example.com, each given as (owner, type, records), TTL 300."""
    sets = [validate_rrset(ZONE, owner, rtype, 300, records) for owner, rtype, records in rrsets]
    if apex_ns:
        sets.insert(0, validate_rrset(ZONE, "@", "NS", 300, ["ns1.example.net."]))
    return sets


# --- one RRset: what is accepted --------------------------------------------------------------

def test_relative_owner_is_made_absolute_in_the_zone() -> None:
    assert rrset("www").owner == "www.example.com."


def test_apex_is_written_as_at_sign() -> None:
    assert rrset("@").owner == "example.com."


def test_absolute_owner_with_trailing_dot_is_kept() -> None:
    assert rrset("Mail.Example.COM.").owner == "mail.example.com."


def test_zone_and_owner_are_lower_case_a_labels() -> None:
    result = validate_rrset("Bücher.Example", "Straße", "A", 300, ["192.0.2.1"])
    assert result.owner == "xn--strae-oqa.xn--bcher-kva.example."


def test_wildcard_leftmost_label_is_accepted() -> None:
    assert rrset("*.Dev").owner == "*.dev.example.com."
    assert rrset("*").owner == "*.example.com."


def test_underscore_labels_for_service_records_are_accepted() -> None:
    tlsa = rrset("_443._tcp.www", "TLSA", records=["3 1 1 " + "ab" * 32])
    assert tlsa.owner == "_443._tcp.www.example.com."
    assert rrset("_DMARC", "TXT", records=['"v=DMARC1; p=none"']).owner == "_dmarc.example.com."
    assert rrset("selector._domainkey", "TXT", records=['"v=DKIM1"']).owner == (
        "selector._domainkey.example.com.")
    srv = rrset("_sip._tcp", "SRV", records=["10 60 5060 sip"])
    assert srv.records == ("10 60 5060 sip.example.com.",)


def test_type_mnemonic_is_case_insensitive_and_generic_form_is_understood() -> None:
    assert rrset(rtype="aaaa", records=["2001:DB8::1"]).type == "AAAA"
    assert rrset(rtype="TYPE1").type == "A"  # RFC 3597 section 5


def test_ttl_limits_are_inclusive() -> None:
    assert rrset(ttl=MIN_TTL).ttl == MIN_TTL
    assert rrset(ttl=MAX_TTL).ttl == MAX_TTL


def test_records_are_canonical_with_absolute_lower_case_names() -> None:
    mx = rrset("@", "MX", records=["10 Mail", "20 MX.Example.NET."])
    assert mx.records == ("10 mail.example.com.", "20 mx.example.net.")
    assert rrset(rtype="AAAA", records=["2001:DB8:0::1"]).records == ("2001:db8::1",)


def test_text_keeps_its_case_and_quoted_semicolons() -> None:
    txt = rrset("_dmarc", "TXT", records=['"v=DMARC1; p=none"', '"Hello" "World"'])
    assert txt.records == ('"v=DMARC1; p=none"', '"Hello" "World"')


def test_each_editable_type_parses() -> None:
    samples = {
        "CAA": '0 issue "letsencrypt.org"',
        "CNAME": "target.example.net.",
        "DS": f"20326 13 2 {DIGEST}",
        "HTTPS": "1 . alpn=h2,h3",
        "NAPTR": '100 10 "S" "SIP+D2U" "" _sip._udp',
        "NS": "ns1.example.net.",
        "PTR": "host.example.net.",
        "SSHFP": "4 2 " + "ab" * 32,
        "SVCB": "1 svc.example.net. port=8443",
    }
    for rtype, text in samples.items():
        assert rrset("sub", rtype, records=[text]).type == rtype


def test_ds_record_is_accepted_with_a_current_algorithm_and_digest() -> None:
    result = rrset("sub", "DS", records=[f"20326 ECDSAP256SHA256 2 {DIGEST.upper()}"])
    assert result.records == (f"20326 13 2 {DIGEST}",)


def test_hundred_records_are_accepted() -> None:
    records = [f"192.0.2.{n}" for n in range(MAX_RECORDS)]
    assert len(rrset(records=records).records) == MAX_RECORDS


# --- one RRset: what is refused ---------------------------------------------------------------

def test_every_reason_is_reported_at_once_under_the_prefix() -> None:
    assert failures("a.*", "RRSIG", 0, [], field_prefix="rrsets.4") == [
        ("rrsets.4.owner", "wildcard_position"),
        ("rrsets.4.type", "signer_owned"),
        ("rrsets.4.ttl", "ttl_out_of_range"),
        ("rrsets.4.records", "required"),
    ]


@pytest.mark.parametrize("owner", ["a.*", "*x", "x.*.y", "**"])
def test_wildcard_anywhere_but_the_whole_leftmost_label_is_refused(owner: str) -> None:
    assert ("owner", "wildcard_position") in failures(owner)


@pytest.mark.parametrize("owner", ["_b@d", "_", "_a.b_c", "_x y"])
def test_malformed_labels_are_refused(owner: str) -> None:
    found = failures(owner)
    assert found and all(field == "owner" for field, _ in found)


def test_underscore_label_longer_than_63_is_refused() -> None:
    assert failures("_" + "a" * 63) == [("owner", "label_too_long")]


def test_owner_name_rules_of_names_py_apply() -> None:
    assert failures("-www") == [("owner", "hyphen_position")]
    assert failures("a" * 64) == [("owner", "label_too_long")]
    assert failures("a..b") == [("owner", "empty_label")]
    assert ("owner", "too_long") in failures(".".join(["a" * 60] * 5))


@pytest.mark.parametrize("owner", [None, "", "   ", 7])
def test_owner_is_required_text(owner: Any) -> None:
    assert failures(owner)[0][0] == "owner"


@pytest.mark.parametrize("owner", ["www.example.org.", "example.com.evil.", "com."])
def test_out_of_zone_owner_is_refused(owner: str) -> None:
    assert failures(owner) == [("owner", "out_of_zone")]


@pytest.mark.parametrize("rtype", ["RRSIG", "NSEC", "NSEC3", "NSEC3PARAM", "DNSKEY", "CDS",
                                   "CDNSKEY", "dnskey"])
def test_types_the_signer_owns_are_refused(rtype: str) -> None:
    assert failures(rtype=rtype) == [("type", "signer_owned")]


def test_soa_is_refused_because_the_serial_logic_owns_it() -> None:
    assert failures("@", "SOA") == [("type", "soa_managed")]


@pytest.mark.parametrize("rtype", ["DNAME", "ANY", "AXFR", "TYPE65280", "HINFO"])
def test_types_not_offered_for_editing_are_refused(rtype: str) -> None:
    assert failures(rtype=rtype) == [("type", "type_not_allowed")]


@pytest.mark.parametrize("rtype", ["BOGUS", "A A", "TYPE99999"])
def test_unknown_types_are_refused(rtype: str) -> None:
    assert failures(rtype=rtype) == [("type", "unknown_type")]


@pytest.mark.parametrize("rtype", [None, "", 1])
def test_type_is_required_text(rtype: Any) -> None:
    assert failures(rtype=rtype)[0][0] == "type"


@pytest.mark.parametrize("ttl", [0, MIN_TTL - 1, MAX_TTL + 1, -1, 2**31])
def test_ttl_outside_the_limits_is_refused(ttl: int) -> None:
    assert failures(ttl=ttl) == [("ttl", "ttl_out_of_range")]


@pytest.mark.parametrize("ttl", ["300", 300.0, True])
def test_ttl_must_be_an_integer(ttl: Any) -> None:
    assert failures(ttl=ttl) == [("ttl", "not_integer")]


def test_ttl_is_required() -> None:
    assert failures(ttl=None) == [("ttl", "required")]


def test_records_must_be_a_non_empty_list() -> None:
    assert failures(records=[]) == [("records", "required")]
    assert failures(records="192.0.2.1") == [("records", "not_list")]
    assert failures(records=[None, 5]) == [("records.0", "required"), ("records.1", "not_text")]


def test_more_than_the_maximum_of_records_is_refused() -> None:
    records = [f"10.0.{n // 250}.{n % 250}" for n in range(MAX_RECORDS + 1)]
    assert failures(records=records) == [("records", "too_many")]


def test_records_are_parsed_by_type_and_report_the_parser_message() -> None:
    with pytest.raises(ValidationFailed) as refused:
        validate_rrset(ZONE, "www", "A", 300, ["192.0.2.1", "192.0.2.300", "2001:db8::1"])
    errors = refused.value.errors
    assert [(e.field, e.code) for e in errors] == [("records.1", "invalid_record"),
                                                   ("records.2", "invalid_record")]
    assert all(e.message.startswith("is not a valid A record: ") for e in errors)
    assert "Traceback" not in errors[0].message


@pytest.mark.parametrize(("rtype", "text"), [
    ("MX", "10"),
    ("MX", "mail 10"),
    ("A", "192.0.2.1 192.0.2.2"),
    ("TXT", '"unterminated'),
    ("CAA", "0 issue"),
    ("HTTPS", "1 . port=x"),
    ("TLSA", "3 1 1 zz"),
    ("SRV", "10 60 99999 sip"),
    ("AAAA", "192.0.2.1"),
])
def test_malformed_records_are_refused(rtype: str, text: str) -> None:
    assert failures(rtype=rtype, records=[text]) == [("records.0", "invalid_record")]


def test_unquoted_semicolon_is_refused_rather_than_cut_off_as_a_comment() -> None:
    assert failures("_dmarc", "TXT", records=["v=DMARC1; p=none"]) == [
        ("records.0", "unquoted_semicolon")]
    assert rrset("x", "TXT", records=['"a\\";b"']).records == ('"a\\";b"',)


def test_line_breaks_and_control_characters_are_refused() -> None:
    assert failures(records=["192.0.2.1\n192.0.2.2"]) == [("records.0", "control_characters")]
    assert failures(rtype="TXT", records=['"a\x00b"']) == [("records.0", "control_characters")]


def test_over_long_record_text_is_refused() -> None:
    assert failures(rtype="TXT", records=['"' + "a" * 9000 + '"']) == [("records.0", "too_long")]


def test_duplicate_records_are_refused_whatever_their_spelling() -> None:
    assert failures("@", "NS", records=["ns1.example.net.", "NS1.Example.NET."]) == [
        ("records.1", "duplicate")]
    assert failures(rtype="AAAA", records=["2001:db8::1", "2001:DB8:0:0::1"]) == [
        ("records.1", "duplicate")]


def test_cname_has_exactly_one_record() -> None:
    assert failures(rtype="CNAME", records=["a.example.net.", "b.example.net."]) == [
        ("records", "cname_single")]


def test_ds_policy_of_rules_ds_applies() -> None:
    assert failures("sub", "DS", records=["20326 8 1 " + "ab" * 20]) == [
        ("records.0.digest_type", "deprecated_digest")]
    assert failures("sub", "DS", records=[f"20326 5 2 {DIGEST}"]) == [
        ("records.0.algorithm", "deprecated_algorithm")]
    assert failures("sub", "DS", records=[f"20326 13 9 {DIGEST}"]) == [
        ("records.0.digest_type", "unknown_digest_type")]
    assert failures("sub", "DS", records=[f"20326 13 2 {DIGEST[:-2]}"]) == [
        ("records.0", "invalid_record")]  # dnspython knows the SHA-256 length


def test_ds_at_the_apex_is_refused() -> None:
    assert failures("@", "DS", records=[f"20326 13 2 {DIGEST}"]) == [("owner", "ds_at_apex")]


@pytest.mark.parametrize("rtype", ["NS", "DS"])
def test_wildcard_delegation_is_refused(rtype: str) -> None:
    text = "ns1.example.net." if rtype == "NS" else f"20326 13 2 {DIGEST}"
    assert failures("*.dev", rtype, records=[text]) == [("owner", "wildcard_delegation")]


def test_invalid_zone_is_refused() -> None:
    with pytest.raises(ValidationFailed) as refused:
        validate_rrset("bad_zone..com", "www", "A", 300, ["192.0.2.1"])
    assert {e.field for e in refused.value.errors} == {"zone"}


# --- the whole zone ---------------------------------------------------------------------------

def test_a_sound_zone_has_no_problems() -> None:
    sets = zone(
        ("@", "A", ["192.0.2.1"]),
        ("@", "MX", ["10 mail"]),
        ("www", "CNAME", ["@"]),
        ("sub", "NS", ["ns1.sub", "ns2.example.net."]),
        ("sub", "DS", [f"20326 13 2 {DIGEST}"]),
        ("ns1.sub", "A", ["192.0.2.53"]),
        ("ns1.sub", "AAAA", ["2001:db8::53"]),
        ("*.dev", "TXT", ['"hello"']),
    )
    assert zone_problems(ZONE, sets) == []


def test_apex_needs_an_ns_rrset() -> None:
    assert codes(zone_problems(ZONE, zone(("@", "A", ["192.0.2.1"]), apex_ns=False))) == [
        ("rrsets", "apex_ns_missing")]


def test_cname_with_other_data_is_refused() -> None:
    sets = zone(("www", "CNAME", ["host.example.net."]), ("www", "TXT", ['"x"']),
                ("www", "MX", ["10 mail"]))
    problems = zone_problems(ZONE, sets)
    assert codes(problems) == [("rrsets.1.type", "cname_and_other_data")]
    assert "MX, TXT" in problems[0].message


def test_cname_may_sit_beside_the_dnssec_records_of_the_signer() -> None:
    signed = RRset("www.example.com.", "NSEC", 300, ("z.example.com. CNAME RRSIG NSEC",))
    sets = [*zone(("www", "CNAME", ["host.example.net."])), signed]
    assert zone_problems(ZONE, sets) == []


def test_cname_at_the_apex_is_refused() -> None:
    sets = zone(("@", "CNAME", ["host.example.net."]))
    assert codes(zone_problems(ZONE, sets)) == [
        ("rrsets.1.owner", "cname_at_apex"), ("rrsets.1.type", "cname_and_other_data")]


def test_one_rrset_has_one_ttl() -> None:
    sets = [*zone(("www", "A", ["192.0.2.1"])),
            validate_rrset(ZONE, "www", "A", 600, ["192.0.2.2"])]
    assert codes(zone_problems(ZONE, sets)) == [("rrsets.2.ttl", "ttl_mismatch")]


def test_the_same_rrset_twice_is_refused() -> None:
    sets = zone(("www", "A", ["192.0.2.1"]), ("www", "A", ["192.0.2.2"]))
    assert codes(zone_problems(ZONE, sets)) == [("rrsets.2", "duplicate_rrset")]


def test_data_below_a_delegation_is_refused_unless_it_is_glue() -> None:
    sets = zone(
        ("sub", "NS", ["ns1.sub"]),
        ("www.sub", "A", ["192.0.2.1"]),  # not a nameserver: occluded
        ("ns1.sub", "TXT", ['"x"']),  # a nameserver, but glue is only A and AAAA
        ("deeper", "NS", ["ns.example.net."]),
        ("x.deeper", "NS", ["ns.example.net."]),  # a delegation inside a delegation
    )
    assert codes(zone_problems(ZONE, sets)) == [
        ("rrsets.2.owner", "below_delegation"),
        ("rrsets.3.owner", "below_delegation"),
        ("rrsets.5.owner", "below_delegation"),
    ]


def test_glue_named_by_another_delegation_or_the_apex_is_accepted() -> None:
    sets = zone(
        ("a", "NS", ["ns.b"]),  # sibling glue (RFC 9471)
        ("b", "NS", ["ns.example.net."]),
        ("ns.b", "A", ["192.0.2.53"]),
    )
    assert zone_problems(ZONE, sets) == []


def test_only_ns_ds_and_glue_belong_at_a_delegation_point() -> None:
    sets = zone(
        ("sub", "NS", ["sub"]),
        ("sub", "A", ["192.0.2.53"]),  # glue: the nameserver is the cut's own name
        ("sub", "MX", ["10 mail"]),
    )
    assert codes(zone_problems(ZONE, sets)) == [("rrsets.3.type", "at_delegation")]


def test_ds_only_at_a_delegation_point() -> None:
    sets = zone(("sub", "DS", [f"20326 13 2 {DIGEST}"]))
    assert codes(zone_problems(ZONE, sets)) == [("rrsets.1.type", "ds_not_at_delegation")]


def test_rrsets_of_another_zone_are_refused() -> None:
    other = validate_rrset("example.org", "www", "A", 300, ["192.0.2.1"])
    assert codes(zone_problems(ZONE, [*zone(), other])) == [("rrsets.1.owner", "out_of_zone")]


def test_validate_rrsets_checks_each_rrset_then_the_zone() -> None:
    inputs = [RRsetInput("@", "NS", 300, ["ns1.example.net."]),
              RRsetInput("www", "CNAME", 300, ["@"]),
              RRsetInput("www", "A", 300, ["192.0.2.1"])]
    with pytest.raises(ValidationFailed) as refused:
        validate_rrsets(ZONE, inputs)
    assert [(e.field, e.code) for e in refused.value.errors] == [
        ("rrsets.1.type", "cname_and_other_data")]
    with pytest.raises(ValidationFailed) as refused:
        validate_rrsets(ZONE, [*inputs[:2], RRsetInput("www", "A", 5, [])])
    assert [(e.field, e.code) for e in refused.value.errors] == [
        ("rrsets.2.ttl", "ttl_out_of_range"), ("rrsets.2.records", "required")]
    assert len(validate_rrsets(ZONE, inputs[:2])) == 2


# --- the SOA serial ---------------------------------------------------------------------------

def test_serial_comparison_follows_rfc_1982() -> None:
    assert serial_gt(2, 1)
    assert not serial_gt(1, 2)
    assert not serial_gt(5, 5)
    assert serial_gt(0, SERIAL_MODULUS - 1)  # 0 comes after 2^32 - 1
    assert not serial_gt(SERIAL_MODULUS - 1, 0)
    assert serial_gt(2**31 - 1, 0)
    # Exactly 2^31 apart: undefined, so neither is greater (RFC 1982 section 3.2).
    assert not serial_gt(2**31, 0)
    assert not serial_gt(0, 2**31)


def test_serial_addition_wraps_and_is_limited_to_half_the_space() -> None:
    assert serial_add(SERIAL_MODULUS - 1, 1) == 0
    assert serial_add(SERIAL_MODULUS - 10, 2**31 - 1) == 2**31 - 11
    with pytest.raises(ValueError, match="serial step"):
        serial_add(0, 2**31)


@pytest.mark.parametrize("bad", [-1, SERIAL_MODULUS, True, "1"])
def test_serials_outside_32_bits_are_a_programming_error(bad: Any) -> None:
    with pytest.raises(ValueError, match="serial"):
        serial_gt(bad, 0)
    with pytest.raises(ValueError, match="serial"):
        next_serial(bad, "increment", NOW)


def test_increment_scheme_adds_one_and_wraps_at_2_32() -> None:
    assert next_serial(41, "increment", NOW) == 42
    assert next_serial(SERIAL_MODULUS - 1, "increment", NOW) == 0
    assert serial_gt(0, SERIAL_MODULUS - 1)


def test_unixtime_scheme_uses_the_clock_when_it_is_ahead() -> None:
    assert next_serial(1, "unixtime", NOW) == int(NOW.timestamp())


def test_unixtime_scheme_adds_one_when_the_clock_is_not_ahead() -> None:
    stamp = int(NOW.timestamp())
    assert next_serial(stamp, "unixtime", NOW) == stamp + 1  # two changes in one second
    assert next_serial(stamp + 500, "unixtime", NOW) == stamp + 501  # clock behind


def test_unixtime_scheme_never_jumps_more_than_half_the_space() -> None:
    # From 0 the clock (about 1.8e9) is less than 2^31 ahead; from a serial 2^31 + 5 behind
    # it, the clock counts as behind, so the serial steps by one.
    stamp = int(NOW.timestamp())
    behind = (stamp - 2**31 - 5) % SERIAL_MODULUS
    assert next_serial(behind, "unixtime", NOW) == behind + 1


def test_date_scheme_starts_each_day_at_00_in_utc() -> None:
    assert next_serial(2026112612, "date", NOW) == 2026112700
    tokyo = datetime(2026, 11, 28, 8, 0, tzinfo=timezone(timedelta(hours=9)))
    assert next_serial(2026112612, "date", tokyo) == 2026112700  # still the 27th in UTC


def test_date_scheme_counts_changes_within_a_day() -> None:
    assert next_serial(2026112700, "date", NOW) == 2026112701
    assert next_serial(2026112742, "date", NOW) == 2026112743


def test_date_scheme_rolls_over_after_99_changes_in_a_day() -> None:
    serial = 2026112700
    for _ in range(99):
        serial = next_serial(serial, "date", NOW)
    assert serial == 2026112799
    hundredth = next_serial(serial, "date", NOW)
    assert hundredth == 2026112800  # borrows the next day's first number
    assert serial_gt(hundredth, serial)
    tomorrow = NOW + timedelta(days=1)
    assert next_serial(hundredth, "date", tomorrow) == 2026112801  # never goes backwards
    assert next_serial(2026112799, "date", tomorrow) == 2026112800


def test_date_scheme_from_a_unixtime_serial_moves_forward() -> None:
    stamp = int(NOW.timestamp())
    assert next_serial(stamp, "date", NOW) == 2026112700
    assert serial_gt(2026112700, stamp)


def test_naive_time_and_unknown_schemes_are_programming_errors() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_serial(1, "date", datetime(2026, 11, 27, 12, 0))
    with pytest.raises(ValueError, match="unknown serial scheme"):
        next_serial(1, "weekly", NOW)  # type: ignore[arg-type]


def test_the_registrars_nameserver_domain_is_reserved_at_above_and_below() -> None:
    nameservers = ("ns1.regshield.test.", "ns2.regshield.test.")
    for zone in ("regshield.test.", "ns1.regshield.test.", "a.b.regshield.test."):
        assert reserved_for_registrar(zone, nameservers), zone
    for zone in ("regshield.example.", "notregshield.test.", "shield.test."):
        assert not reserved_for_registrar(zone, nameservers), zone


def test_replacing_more_than_30_percent_of_ten_or_more_rrsets_counts() -> None:
    def rrsets(count: int, address: str) -> dict[tuple[str, str], RRset]:
        return {(f"h{i}.z.", "A"): RRset(f"h{i}.z.", "A", 300, (address,))
                for i in range(count)}
    before = rrsets(10, "192.0.2.1")
    changed = dict(before)
    for i in range(4):
        changed[(f"h{i}.z.", "A")] = RRset(f"h{i}.z.", "A", 300, ("192.0.2.2",))
    assert replaced_fraction(before, changed) == 0.4
    assert replaced_fraction(before, {}) == 1.0
    assert replaced_fraction(rrsets(9, "192.0.2.1"), {}) == 0.0  # small zones: no rule
    assert apex_types_changed("z.", {}, {("z.", "MX"): RRset("z.", "MX", 300, ("10 m.z.",))}) \
        == ["MX"]
