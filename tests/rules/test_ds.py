"""DS records (rules/ds.py): syntax, IANA registries, algorithm policy, DNSKEY digests."""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import Any

import pytest
from dns.dnssecalgs.ecdsa import PrivateECDSAP256SHA256

from regshield.errors import FieldError, ValidationFailed
from regshield.rules.ds import (
    ALGORITHMS,
    DIGEST_TYPES,
    DsRecord,
    Requirement,
    ds_from_dnskey,
    ds_matches_dnskey,
    ds_problems,
    parse_ds,
    parse_ds_set,
)

# The root zone KSK-2017 and its DS as IANA publishes them (data.iana.org/root-anchors).
ROOT_KSK_2017 = (
    "257 3 8 AwEAAaz/tAm8yTn4Mfeh5eyI96WSVexTBAvkMgJzkKTOiW1vkIbzxeF3+/4RgWOq7HrxRixHlFlExOLAJr5em"
    "LvN7SWXgnLh4+B5xQlNVz8Og8kvArMtNROxVQuCaSnIDdD5LKyWbRd2n9WGe2R8PzgCmr3EgVLrjyBxWezF0jLHwVN8"
    "efS3rCj/EWgvIWgb9tarpVUDK/b58Da+sqqls3eNbuv7pr+eoZG+SrDK6nWeL3c6H5Apxz7LjVc1uTIdsIXxuOLYA4/"
    "ilBmSVIzuDWfdRUfhHdY6+cn8HFRm+2hM8AnXGXws9555KrUB5qihylGa8subX2Nn6UwNR1AkUTV74bU="
)
ROOT_DS_2017 = "20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D"

SHA256_DIGEST = "e06d44b80b8f1d39a95c0b0d7c65d08458e880409bbc683457104237c7f8ec8d"
VALID: dict[str, Any] = {"key_tag": 20326, "algorithm": 8, "digest_type": 2,
                         "digest": SHA256_DIGEST.upper()}


def ds(**changes: Any) -> dict[str, Any]:
    values = {**VALID, **changes}
    return {k: v for k, v in values.items() if v is not ...}


def failures(raw: Any, field: str = "ds.0") -> list[tuple[str, str]]:
    """(field, code) of every reason `raw` is refused."""
    with pytest.raises(ValidationFailed) as refused:
        parse_ds(raw, field)
    assert all(error.message for error in refused.value.errors)
    return [(error.field, error.code) for error in refused.value.errors]


def wire_name(owner: str) -> bytes:
    """An owner name in canonical wire form (RFC 4034 section 6.2), written out by hand."""
    labels = [label.lower().encode("ascii") for label in owner.rstrip(".").split(".") if label]
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"


def dnskey_rdata(presentation: str) -> bytes:
    flags, protocol, algorithm, *key = presentation.split()
    return struct.pack("!HBB", int(flags), int(protocol), int(algorithm)) + base64.b64decode(
        "".join(key))


def key_tag(rdata: bytes) -> int:
    """RFC 4034 Appendix B, for algorithms other than 1."""
    total = sum(byte << 8 if index % 2 == 0 else byte for index, byte in enumerate(rdata))
    total += (total >> 16) & 0xFFFF
    return total & 0xFFFF


def digest_by_hand(owner: str, presentation: str, hash_name: str) -> str:
    """RFC 4034 section 5.1.4: digest = hash(owner name | DNSKEY RDATA)."""
    return hashlib.new(hash_name, wire_name(owner) + dnskey_rdata(presentation)).hexdigest()


@pytest.fixture(scope="module")
def ksk() -> str:
    """A freshly generated ECDSAP256SHA256 key signing key, as DNSKEY presentation text."""
    key = PrivateECDSAP256SHA256.generate()
    return str(key.public_key().to_dnskey(flags=257).to_text())


@pytest.fixture(scope="module")
def other_ksk() -> str:
    key = PrivateECDSAP256SHA256.generate()
    return str(key.public_key().to_dnskey(flags=257).to_text())


# Reading a DS


def test_a_ds_given_as_an_object_is_accepted_with_its_digest_in_lower_case() -> None:
    assert parse_ds(VALID) == DsRecord(key_tag=20326, algorithm=8, digest_type=2,
                                       digest=SHA256_DIGEST)


def test_a_ds_in_presentation_form_reads_the_same_as_the_object() -> None:
    assert parse_ds(ROOT_DS_2017) == parse_ds(VALID)


def test_a_presentation_digest_may_be_split_by_whitespace_as_dig_prints_it() -> None:
    split = "20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC6834 57104237C7F8EC8D"

    assert parse_ds(split) == parse_ds(VALID)


@pytest.mark.parametrize("algorithm", ["RSASHA256", "rsasha256", "8"])
def test_the_algorithm_may_be_written_as_its_number_or_mnemonic(algorithm: str) -> None:
    assert parse_ds(f"20326 {algorithm} 2 {SHA256_DIGEST}").algorithm == 8
    assert parse_ds(ds(algorithm=algorithm)).algorithm == 8


def test_numbers_given_as_decimal_text_are_accepted() -> None:
    record = parse_ds(ds(key_tag="20326", algorithm="8", digest_type="2"))

    assert (record.key_tag, record.algorithm, record.digest_type) == (20326, 8, 2)


def test_the_presentation_form_of_a_record_reads_back_as_the_same_record() -> None:
    record = parse_ds(VALID)

    assert record.to_text() == f"20326 8 2 {SHA256_DIGEST}"
    assert parse_ds(record.to_text()) == record
    assert parse_ds(record.as_dict()) == record


@pytest.mark.parametrize(("digest_type", "octets"), [
    (1, 20),  # SHA-1
    (2, 32),  # SHA-256
    (3, 32),  # GOST R 34.11-94
    (4, 48),  # SHA-384
    (5, 32),  # GOST R 34.11-2012
    (6, 32),  # SM3
])
def test_a_digest_of_exactly_the_length_of_its_type_is_accepted(digest_type: int,
                                                                 octets: int) -> None:
    record = parse_ds(ds(digest_type=digest_type, digest="ab" * octets))

    assert record.digest == "ab" * octets


@pytest.mark.parametrize(("digest_type", "octets"), [
    (1, 32),  # a SHA-256 digest labelled SHA-1
    (2, 20),  # a SHA-1 digest labelled SHA-256
    (2, 48),
    (4, 32),
    (3, 20),
    (2, 31),
])
def test_a_ds_whose_digest_length_does_not_match_its_type_is_refused(digest_type: int,
                                                                     octets: int) -> None:
    assert failures(ds(digest_type=digest_type, digest="ab" * octets)) == [
        ("ds.0.digest", "wrong_digest_length")]


def test_an_odd_number_of_hex_digits_is_a_wrong_length() -> None:
    assert failures(ds(digest=SHA256_DIGEST[:-1])) == [("ds.0.digest", "wrong_digest_length")]


@pytest.mark.parametrize("digest", ["zz" * 32, "0x" + "ab" * 31, "ab" * 31 + "é1", 1234])
def test_a_digest_that_is_not_hexadecimal_is_refused(digest: Any) -> None:
    assert failures(ds(digest=digest)) == [("ds.0.digest", "invalid_digest")]


@pytest.mark.parametrize("key_tag", [0, 65535])
def test_key_tags_from_0_to_65535_are_accepted(key_tag: int) -> None:
    assert parse_ds(ds(key_tag=key_tag)).key_tag == key_tag


@pytest.mark.parametrize("key_tag", [-1, 65536, 10**20, "abc", "-5", True, 1.5, "٣"])
def test_a_key_tag_outside_0_to_65535_is_refused(key_tag: Any) -> None:
    assert failures(ds(key_tag=key_tag)) == [("ds.0.key_tag", "invalid_key_tag")]


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_every_registered_signing_algorithm_is_read(algorithm: int) -> None:
    assert parse_ds(ds(algorithm=algorithm)).algorithm == algorithm


@pytest.mark.parametrize("algorithm", [0, 2, 4, 9, 11, 18, 99, 252, 253, 254, 255, 256,
                                       "FOO", True])
def test_an_algorithm_outside_the_registry_or_not_for_signing_is_refused(algorithm: Any) -> None:
    assert failures(ds(algorithm=algorithm)) == [("ds.0.algorithm", "unknown_algorithm")]


@pytest.mark.parametrize("digest_type", [0, 7, 128, 255, "SHA256"])
def test_a_digest_type_outside_the_registry_is_refused(digest_type: Any) -> None:
    assert failures(ds(digest_type=digest_type)) == [
        ("ds.0.digest_type", "unknown_digest_type")]


@pytest.mark.parametrize("missing", ["key_tag", "algorithm", "digest_type", "digest"])
@pytest.mark.parametrize("empty", [..., None, ""])
def test_every_field_of_a_ds_is_required(missing: str, empty: Any) -> None:
    assert failures(ds(**{missing: empty})) == [(f"ds.0.{missing}", "required")]


def test_every_reason_is_reported_at_once() -> None:
    raw = {"key_tag": 70000, "algorithm": 99, "digest_type": 9, "digest": "xyz", "flags": 257}

    assert sorted(failures(raw)) == [
        ("ds.0.algorithm", "unknown_algorithm"), ("ds.0.digest", "invalid_digest"),
        ("ds.0.digest_type", "unknown_digest_type"), ("ds.0.flags", "unknown_field"),
        ("ds.0.key_tag", "invalid_key_tag")]


def test_errors_in_presentation_form_name_the_part_that_is_wrong() -> None:
    assert failures("70000 13 2 " + "ab" * 20) == [
        ("ds.0.key_tag", "invalid_key_tag"), ("ds.0.digest", "wrong_digest_length")]


@pytest.mark.parametrize(("raw", "code"), [
    ("20326 8 2", "invalid_ds"),
    ("example.com. 3600 IN", "invalid_ds"),
    ("   ", "required"),
    (None, "required"),
    (42, "not_ds"),
    (["20326", "8", "2", SHA256_DIGEST], "not_ds"),
    ("20326 8 2 " + "ab" * 600, "too_long"),
])
def test_something_that_is_not_a_ds_is_refused_as_a_whole(raw: Any, code: str) -> None:
    assert failures(raw) == [("ds.0", code)]


# DS sets


def test_a_ds_set_mixes_objects_and_presentation_text() -> None:
    sha384 = {"key_tag": 20326, "algorithm": 8, "digest_type": 4, "digest": "cd" * 48}

    assert parse_ds_set([ROOT_DS_2017, sha384]) == (parse_ds(VALID), parse_ds(sha384))


def test_each_refused_ds_is_reported_with_its_index() -> None:
    with pytest.raises(ValidationFailed) as refused:
        parse_ds_set([VALID, ds(digest="ab" * 20), "1 13 2", ds(algorithm=99)])

    assert [(e.field, e.code) for e in refused.value.errors] == [
        ("ds.1.digest", "wrong_digest_length"), ("ds.2", "invalid_ds"),
        ("ds.3.algorithm", "unknown_algorithm")]


def test_the_same_ds_written_twice_is_refused_as_a_duplicate() -> None:
    with pytest.raises(ValidationFailed) as refused:
        parse_ds_set([VALID, ROOT_DS_2017.lower()])

    [error] = refused.value.errors
    assert (error.field, error.code) == ("ds.1", "duplicate")
    assert "ds.0" in error.message


@pytest.mark.parametrize("empty", [None, [], ()])
def test_no_ds_records_is_an_empty_set(empty: Any) -> None:
    assert parse_ds_set(empty) == ()


@pytest.mark.parametrize("value", [ROOT_DS_2017, VALID])
def test_a_ds_set_must_be_a_list(value: Any) -> None:
    with pytest.raises(ValidationFailed) as refused:
        parse_ds_set(value)

    assert [(e.field, e.code) for e in refused.value.errors] == [("ds", "not_list")]


# The algorithm policy (RFC 8624 as moved to the IANA registries by RFC 9904, RFC 9905, RFC 9906)


def test_the_policy_refuses_exactly_the_algorithms_that_must_not_sign() -> None:
    refused = {number for number, policy in ALGORITHMS.items()
               if policy.signing is Requirement.MUST_NOT}

    # RSAMD5, DSA, DSA-NSEC3-SHA1, ECC-GOST (RFC 8624); RSASHA1, RSASHA1-NSEC3-SHA1 (RFC 9905)
    assert refused == {1, 3, 5, 6, 7, 12}
    assert ALGORITHMS[8].signing is Requirement.MUST
    assert ALGORITHMS[13].signing is Requirement.MUST
    assert ALGORITHMS[15].signing is Requirement.RECOMMENDED
    assert ALGORITHMS[10].signing is Requirement.NOT_RECOMMENDED


def test_the_policy_refuses_sha1_and_gost_digests_for_new_ds_records() -> None:
    refused = {number for number, policy in DIGEST_TYPES.items()
               if policy.delegation is Requirement.MUST_NOT}

    assert refused == {1, 3}
    assert DIGEST_TYPES[2].delegation is Requirement.MUST


@pytest.mark.parametrize(("digest_type", "hash_name"), [(1, "sha1"), (2, "sha256"),
                                                        (4, "sha384")])
def test_registered_digest_lengths_are_those_of_the_hash_functions(digest_type: int,
                                                                   hash_name: str) -> None:
    assert DIGEST_TYPES[digest_type].octets == hashlib.new(hash_name).digest_size


@pytest.mark.parametrize("algorithm", [1, 3, 5, 6, 7, 12])
def test_a_ds_for_an_algorithm_that_must_not_sign_is_refused_by_the_policy(
        algorithm: int) -> None:
    problems = ds_problems(parse_ds(ds(algorithm=algorithm)))

    assert [(p.field, p.code) for p in problems] == [("ds.0.algorithm", "deprecated_algorithm")]
    assert ALGORITHMS[algorithm].mnemonic in problems[0].message


@pytest.mark.parametrize("algorithm", [8, 10, 13, 14, 15, 16])
def test_a_ds_for_a_current_algorithm_passes_the_policy(algorithm: int) -> None:
    assert ds_problems(parse_ds(ds(algorithm=algorithm))) == []


@pytest.mark.parametrize(("digest_type", "octets"), [(1, 20), (3, 32)])
def test_a_sha1_or_gost_digest_is_read_but_refused_by_the_policy(digest_type: int,
                                                                  octets: int) -> None:
    # Read, so that a DS published under an older policy can still be shown and compared.
    record = parse_ds(ds(digest_type=digest_type, digest="ab" * octets))

    assert [(p.field, p.code) for p in ds_problems(record, "ds.3")] == [
        ("ds.3.digest_type", "deprecated_digest")]


def test_the_policy_reports_a_deprecated_algorithm_and_digest_together() -> None:
    record = DsRecord(key_tag=1, algorithm=5, digest_type=1, digest="ab" * 20)

    assert [p.code for p in ds_problems(record)] == ["deprecated_algorithm", "deprecated_digest"]


def test_the_policy_refuses_a_record_built_by_hand_with_unknown_numbers() -> None:
    record = DsRecord(key_tag=1, algorithm=200, digest_type=200, digest="ab")

    assert [p.code for p in ds_problems(record)] == ["unknown_algorithm", "unknown_digest_type"]


# DS and DNSKEY


def test_the_root_ksk_2017_gives_its_published_ds() -> None:
    assert ds_from_dnskey(".", ROOT_KSK_2017) == parse_ds(ROOT_DS_2017)


def test_the_published_root_ds_matches_the_root_ksk_2017() -> None:
    assert ds_matches_dnskey(parse_ds(ROOT_DS_2017), ROOT_KSK_2017, ".")


def test_the_root_ds_does_not_match_the_root_key_under_another_owner() -> None:
    assert not ds_matches_dnskey(parse_ds(ROOT_DS_2017), ROOT_KSK_2017, "com")


def test_the_ds_of_a_generated_key_is_the_digest_rfc_4034_defines(ksk: str) -> None:
    record = ds_from_dnskey("example.com", ksk)

    assert record == DsRecord(key_tag=key_tag(dnskey_rdata(ksk)), algorithm=13, digest_type=2,
                              digest=digest_by_hand("example.com", ksk, "sha256"))
    assert ds_problems(record) == []


def test_a_sha384_ds_can_be_made(ksk: str) -> None:
    record = ds_from_dnskey("example.com", ksk, digest_type=4)

    assert record.digest == digest_by_hand("example.com", ksk, "sha384")
    assert len(record.digest) == 96


def test_a_ds_matches_the_key_it_was_made_from_and_no_other(ksk: str, other_ksk: str) -> None:
    record = ds_from_dnskey("example.com", ksk)

    assert ds_matches_dnskey(record, ksk, "example.com")
    assert not ds_matches_dnskey(record, other_ksk, "example.com")
    assert not ds_matches_dnskey(record, ksk, "example.net")


@pytest.mark.parametrize("change", [
    {"digest": "00" * 32},
    {"key_tag": 1},
    {"algorithm": 14},
])
def test_a_ds_altered_in_any_part_no_longer_matches(ksk: str, change: dict[str, Any]) -> None:
    record = ds_from_dnskey("example.com", ksk)
    altered = DsRecord(**{**record.as_dict(), **change})

    assert not ds_matches_dnskey(altered, ksk, "example.com")


def test_the_owner_may_be_given_as_an_idn_in_either_form_and_any_case(ksk: str) -> None:
    record = ds_from_dnskey("bücher.example", ksk)

    assert record == ds_from_dnskey("XN--BCHER-KVA.Example.", ksk)
    assert record.digest == digest_by_hand("xn--bcher-kva.example", ksk, "sha256")
    assert ds_matches_dnskey(record, ksk, "xn--bcher-kva.example")


def test_an_existing_sha1_ds_can_still_be_matched(ksk: str) -> None:
    record = parse_ds(ds(key_tag=key_tag(dnskey_rdata(ksk)), algorithm=13, digest_type=1,
                         digest=digest_by_hand("example.com", ksk, "sha1")))

    assert ds_matches_dnskey(record, ksk, "example.com")


def test_a_ds_whose_digest_type_cannot_be_computed_never_matches(ksk: str) -> None:
    record = parse_ds(ds(key_tag=key_tag(dnskey_rdata(ksk)), algorithm=13, digest_type=6,
                         digest=digest_by_hand("example.com", ksk, "sha256")))

    assert not ds_matches_dnskey(record, ksk, "example.com")


def test_a_key_that_is_not_a_zone_key_is_never_matched(ksk: str) -> None:
    # RFC 4034 section 5.2: a DS names only a key with the Zone Key flag.
    not_zone_key = "0" + ksk[len("257"):]
    record = DsRecord(key_tag=key_tag(dnskey_rdata(not_zone_key)), algorithm=13, digest_type=2,
                      digest=digest_by_hand("example.com", not_zone_key, "sha256"))

    assert not ds_matches_dnskey(record, not_zone_key, "example.com")


def ds_refusals(owner: str, dnskey: str, **options: Any) -> list[tuple[str, str]]:
    with pytest.raises(ValidationFailed) as refused:
        ds_from_dnskey(owner, dnskey, **options)
    assert all(error.message for error in refused.value.errors)
    return [(error.field, error.code) for error in refused.value.errors]


@pytest.mark.parametrize(("digest_type", "code"), [
    (1, "deprecated_digest"),
    (3, "deprecated_digest"),
    (5, "unsupported_digest_type"),
    (6, "unsupported_digest_type"),
    (9, "unknown_digest_type"),
])
def test_no_ds_is_made_with_a_digest_type_that_must_not_or_cannot_be_used(
        ksk: str, digest_type: int, code: str) -> None:
    assert ds_refusals("example.com", ksk, digest_type=digest_type) == [("digest_type", code)]


def test_no_ds_is_made_for_a_key_of_an_algorithm_that_must_not_sign() -> None:
    rsasha1_key = ROOT_KSK_2017.replace("257 3 8 ", "257 3 5 ")

    assert ds_refusals(".", rsasha1_key) == [("dnskey.algorithm", "deprecated_algorithm")]


@pytest.mark.parametrize(("dnskey", "code"), [
    ("256 3 13", "invalid_dnskey"),  # no key
    ("257 3 13 !!!!", "invalid_dnskey"),  # not base64
    ("zone 3 13 AAAA", "invalid_dnskey"),
    ("257 3 13 " + base64.b64encode(b"\x01" * 64).decode(), "invalid_dnskey"),  # not on P-256
    ("257 3 15 " + base64.b64encode(b"\x01" * 5).decode(), "invalid_dnskey"),  # short Ed25519
    ("257 3 99 AAAA", "unknown_algorithm"),
    ("", "required"),
    ("257 3 13 " + "A" * 5000, "too_long"),
])
def test_no_ds_is_made_from_a_dnskey_that_cannot_be_read(dnskey: str, code: str) -> None:
    assert ds_refusals("example.com", dnskey) == [("dnskey", code)]


def test_no_ds_is_made_for_a_key_of_a_protocol_other_than_3(ksk: str) -> None:
    [error] = ds_refusals("example.com", ksk.replace("257 3 ", "257 4 ", 1))

    assert error == ("dnskey", "invalid_dnskey")


def test_no_ds_is_made_for_a_key_without_the_zone_key_flag(ksk: str) -> None:
    assert ds_refusals("example.com", "0" + ksk[len("257"):]) == [("dnskey", "not_zone_key")]


def test_a_zone_signing_key_also_gets_a_ds(ksk: str) -> None:
    zsk = "256" + ksk[len("257"):]

    assert ds_from_dnskey("example.com", zsk).key_tag == key_tag(dnskey_rdata(zsk))


def test_an_owner_and_a_dnskey_that_cannot_be_read_are_reported_together() -> None:
    assert ds_refusals("bad_owner.example", "257 3 13 !!!!") == [
        ("owner", "invalid_characters"), ("dnskey", "invalid_dnskey")]


def test_matching_against_a_dnskey_that_cannot_be_read_is_an_error_not_a_mismatch() -> None:
    with pytest.raises(ValidationFailed) as refused:
        ds_matches_dnskey(parse_ds(ROOT_DS_2017), "257 3 8 !!!!", ".")

    assert [(e.field, e.code) for e in refused.value.errors] == [("dnskey", "invalid_dnskey")]


def test_policy_errors_read_like_the_other_field_errors() -> None:
    [problem] = ds_problems(parse_ds(ds(digest_type=1, digest="ab" * 20)))

    assert isinstance(problem, FieldError)
    assert "SHA-1" in problem.message and "SHA-256" in problem.message
