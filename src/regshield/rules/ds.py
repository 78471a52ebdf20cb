"""DS records a registrar sends to a registry: their syntax, the IANA registries, the policy.

A DS record (RFC 4034 section 5) names a key of the child zone by key tag, algorithm and a
digest of the DNSKEY. It arrives as an object (`{"key_tag": 12345, "algorithm": 13,
"digest_type": 2, "digest": "ab..."}`, as EPP's secDNS extension carries it, RFC 5910) or as
presentation text (`12345 13 2 AB...`). `parse_ds` and `parse_ds_set` check the syntax and the
IANA registries, collecting every reason; `ds_problems` applies the algorithm policy (what must
no longer be used), kept apart so that a flow can still read and display a DS that an older
policy accepted. `ds_from_dnskey` and `ds_matches_dnskey` compute digests with dnspython;
`ds_breakage` says whether a DS set would break a zone, given the DNSKEY RRset it serves.

dnspython objects stay inside this module (STYLE.md, convention 7): every function here takes
and returns presentation text and `DsRecord`.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
from dns.rdtypes.ANY.DNSKEY import DNSKEY

from regshield.dns.dnspython_dnssec import dnssec, dnssecalgs
from regshield.errors import FieldError, ValidationFailed
from regshield.rules.names import validate_domain_name
from regshield.rules.text import is_blank, text_value

DS_FIELDS = ("key_tag", "algorithm", "digest_type", "digest")
MAX_KEY_TAG = 65535
MAX_DS_TEXT = 512  # a SHA-384 DS is about 110 characters
MAX_DNSKEY_TEXT = 4096  # an RSA-4096 DNSKEY is about 700 characters
DNSKEY_PROTOCOL = 3  # RFC 4034 section 2.1.2
ZONE_KEY_FLAG = 0x0100  # RFC 4034 section 2.1.1: only a zone key may be named by a DS


class Requirement(StrEnum):
    """Requirement levels of RFC 2119 as the algorithm RFCs and IANA registries use them."""

    MUST = "MUST"
    RECOMMENDED = "RECOMMENDED"
    MAY = "MAY"
    NOT_RECOMMENDED = "NOT RECOMMENDED"
    MUST_NOT = "MUST NOT"


@dataclass(frozen=True)
class AlgorithmPolicy:
    """One row of the DNS Security Algorithm Numbers registry, signing column."""

    number: int
    mnemonic: str
    signing: Requirement  # "use for DNSSEC signing": may a zone be signed with it today?
    reference: str


@dataclass(frozen=True)
class DigestPolicy:
    """One row of the DS RR Type Digest Algorithms registry, delegation column."""

    number: int
    mnemonic: str
    octets: int  # length of the digest
    delegation: Requirement  # "use for DNSSEC delegation": may a new DS use it?
    reference: str


# The signing column of RFC 8624 section 3.1, which RFC 9904 moved unchanged into the IANA
# registry, with the later changes of RFC 9905 (RSASHA1 and RSASHA1-NSEC3-SHA1 from NOT
# RECOMMENDED to MUST NOT) and RFC 9906 (ECC-GOST retired). SM2SM3 and ECC-GOST12 were
# registered after RFC 8624 and carry no recommendation beyond MAY.
# Not listed, so refused as unknown: 0 (DELETE, only in CDS, RFC 8078), 2 (DH, not a signing
# algorithm), 18 (MLDSA44, an early allocation for an Internet-Draft), 252 (INDIRECT),
# 253 and 254 (private algorithms), and every reserved or unassigned number.
ALGORITHMS: dict[int, AlgorithmPolicy] = {policy.number: policy for policy in (
    AlgorithmPolicy(1, "RSAMD5", Requirement.MUST_NOT, "RFC 8624 section 3.1"),
    AlgorithmPolicy(3, "DSA", Requirement.MUST_NOT, "RFC 8624 section 3.1"),
    AlgorithmPolicy(5, "RSASHA1", Requirement.MUST_NOT, "RFC 9905"),
    AlgorithmPolicy(6, "DSA-NSEC3-SHA1", Requirement.MUST_NOT, "RFC 8624 section 3.1"),
    AlgorithmPolicy(7, "RSASHA1-NSEC3-SHA1", Requirement.MUST_NOT, "RFC 9905"),
    AlgorithmPolicy(8, "RSASHA256", Requirement.MUST, "RFC 8624 section 3.1"),
    AlgorithmPolicy(10, "RSASHA512", Requirement.NOT_RECOMMENDED, "RFC 8624 section 3.1"),
    AlgorithmPolicy(12, "ECC-GOST", Requirement.MUST_NOT, "RFC 8624 section 3.1, RFC 9906"),
    AlgorithmPolicy(13, "ECDSAP256SHA256", Requirement.MUST, "RFC 8624 section 3.1"),
    AlgorithmPolicy(14, "ECDSAP384SHA384", Requirement.MAY, "RFC 8624 section 3.1"),
    AlgorithmPolicy(15, "ED25519", Requirement.RECOMMENDED, "RFC 8624 section 3.1"),
    AlgorithmPolicy(16, "ED448", Requirement.MAY, "RFC 8624 section 3.1"),
    AlgorithmPolicy(17, "SM2SM3", Requirement.MAY, "RFC 9563"),
    AlgorithmPolicy(23, "ECC-GOST12", Requirement.MAY, "RFC 9558"),
)}

# The "DNSSEC delegation" column of RFC 8624 section 3.3 (unchanged by RFC 9904), with RFC 9906
# retiring GOST R 34.11-94. SHA-1 stays MUST NOT for new DS records and must still be
# understood by validators, which is why a SHA-1 DS can be parsed and matched but is refused by
# `ds_problems`. Types 5 and 6 were registered after RFC 8624. Type 0 is reserved (CDS delete).
DIGEST_TYPES: dict[int, DigestPolicy] = {policy.number: policy for policy in (
    DigestPolicy(1, "SHA-1", 20, Requirement.MUST_NOT, "RFC 8624 section 3.3"),
    DigestPolicy(2, "SHA-256", 32, Requirement.MUST, "RFC 8624 section 3.3, RFC 4509"),
    DigestPolicy(3, "GOST R 34.11-94", 32, Requirement.MUST_NOT,
                 "RFC 8624 section 3.3, RFC 9906"),
    DigestPolicy(4, "SHA-384", 48, Requirement.MAY, "RFC 8624 section 3.3, RFC 6605"),
    DigestPolicy(5, "GOST R 34.11-2012", 32, Requirement.MAY, "RFC 9558"),
    DigestPolicy(6, "SM3", 32, Requirement.MAY, "RFC 9563"),
)}

RECOMMENDED_ALGORITHM = 13  # ECDSAP256SHA256: MUST in RFC 8624, the default of Knot DNS
RECOMMENDED_DIGEST_TYPE = 2  # SHA-256: MUST in RFC 8624
# Digest types dnspython can compute (dns.dnssec.make_ds).
_COMPUTABLE_DIGESTS = {1: "SHA1", 2: "SHA256", 4: "SHA384"}
_HEX = frozenset(string.hexdigits)


@dataclass(frozen=True)
class DsRecord:
    key_tag: int
    algorithm: int
    digest_type: int
    digest: str  # lower-case hex

    def to_text(self) -> str:
        """Presentation form (RFC 4034 section 5.3), as zone files and registries show it."""
        return f"{self.key_tag} {self.algorithm} {self.digest_type} {self.digest}"

    def as_dict(self) -> dict[str, Any]:
        return {"key_tag": self.key_tag, "algorithm": self.algorithm,
                "digest_type": self.digest_type, "digest": self.digest}


def parse_ds(raw: Mapping[str, Any] | str, field: str = "ds.0") -> DsRecord:
    """Check one DS (an object or presentation text) and raise one ValidationFailed if refused.

    Checks syntax and the IANA registries only; `ds_problems` applies the policy.
    """
    errors: list[FieldError] = []
    record = validate_ds(raw, field, errors)
    if record is None:
        raise ValidationFailed(errors)
    return record


def parse_ds_set(values: Any, field: str = "ds") -> tuple[DsRecord, ...]:
    """A list of DS records, each error naming its index (`ds.1.digest`); duplicates refused."""
    errors: list[FieldError] = []
    records = validate_ds_set(values, field, errors)
    if errors:
        raise ValidationFailed(errors)
    return records


def validate_ds(raw: Any, field: str, errors: list[FieldError]) -> DsRecord | None:
    """Like `parse_ds`, for flows that collect the errors of several fields."""
    found: list[FieldError] = []
    values = _ds_values(raw, field, found)
    if values is None:
        errors.extend(found)
        return None
    key_tag = _key_tag(values.get("key_tag"), f"{field}.key_tag", found)
    algorithm = _algorithm(values.get("algorithm"), f"{field}.algorithm", found)
    digest_type = _digest_type(values.get("digest_type"), f"{field}.digest_type", found)
    digest = _digest(values.get("digest"), digest_type, f"{field}.digest", found)
    errors.extend(found)
    if found:
        return None
    assert key_tag is not None and algorithm is not None and digest_type is not None
    assert digest is not None
    return DsRecord(key_tag=key_tag, algorithm=algorithm, digest_type=digest_type,
                    digest=digest)


def validate_ds_set(values: Any, field: str, errors: list[FieldError]) -> tuple[DsRecord, ...]:
    """Like `parse_ds_set`, appending to `errors`; returns the records that were accepted."""
    if values is None:
        return ()
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        errors.append(FieldError(field, "not_list", "must be a list of DS records"))
        return ()
    accepted: list[DsRecord] = []
    first_index: dict[DsRecord, int] = {}
    for index, raw in enumerate(values):
        item = f"{field}.{index}"
        record = validate_ds(raw, item, errors)
        if record is None:
            continue
        if record in first_index:
            errors.append(FieldError(item, "duplicate",
                                     f"repeats {field}.{first_index[record]}"))
            continue
        first_index[record] = index
        accepted.append(record)
    return tuple(accepted)


def ds_problems(record: DsRecord, field: str = "ds.0") -> list[FieldError]:
    """What the policy refuses in `record`: algorithms and digests that must not be used."""
    problems: list[FieldError] = []
    algorithm = ALGORITHMS.get(record.algorithm)
    if algorithm is None:
        problems.append(FieldError(f"{field}.algorithm", "unknown_algorithm",
                                   _unknown_algorithm_message(record.algorithm)))
    elif algorithm.signing is Requirement.MUST_NOT:
        recommended = ALGORITHMS[RECOMMENDED_ALGORITHM]
        problems.append(FieldError(
            f"{field}.algorithm", "deprecated_algorithm",
            f"algorithm {algorithm.number} ({algorithm.mnemonic}) must not be used for signing "
            f"({algorithm.reference}); sign the zone with {recommended.mnemonic} "
            f"({recommended.number}) or ED25519 (15) and send the DS of that key"))
    digest = DIGEST_TYPES.get(record.digest_type)
    if digest is None:
        problems.append(FieldError(f"{field}.digest_type", "unknown_digest_type",
                                   _unknown_digest_message(record.digest_type)))
    elif digest.delegation is Requirement.MUST_NOT:
        recommended_digest = DIGEST_TYPES[RECOMMENDED_DIGEST_TYPE]
        problems.append(FieldError(
            f"{field}.digest_type", "deprecated_digest",
            f"digest type {digest.number} ({digest.mnemonic}) must not be used in a new DS "
            f"({digest.reference}); use {recommended_digest.mnemonic} "
            f"({recommended_digest.number})"))
    return problems


def ds_from_dnskey(owner: str, dnskey_presentation: str, digest_type: int = 2, *,
                   field: str = "dnskey") -> DsRecord:
    """The DS of a zone's DNSKEY (given as `257 3 13 <key>`), refusing what the policy refuses.

    `owner` is the zone apex (`example.com`, an IDN, or `.` for the root).
    """
    errors: list[FieldError] = []
    name = _owner_name(owner, "owner", errors)
    key = _dnskey(dnskey_presentation, field, errors)
    if key is not None:
        _check_key_usable(key, field, errors)
    digest = DIGEST_TYPES.get(digest_type)
    if digest is None:
        errors.append(FieldError("digest_type", "unknown_digest_type",
                                 _unknown_digest_message(digest_type)))
    elif digest.delegation is Requirement.MUST_NOT:
        errors.append(FieldError("digest_type", "deprecated_digest",
                                 f"digest type {digest.number} ({digest.mnemonic}) must not be "
                                 f"used in a new DS ({digest.reference})"))
    elif digest_type not in _COMPUTABLE_DIGESTS:
        errors.append(FieldError("digest_type", "unsupported_digest_type",
                                 f"digest type {digest.number} ({digest.mnemonic}) cannot be "
                                 f"computed here; use SHA-256 (2) or SHA-384 (4)"))
    if errors:
        raise ValidationFailed(errors)
    assert name is not None and key is not None
    ds = dnssec.make_ds(name, key, _COMPUTABLE_DIGESTS[digest_type])
    record = DsRecord(key_tag=ds.key_tag, algorithm=int(ds.algorithm),
                      digest_type=int(ds.digest_type), digest=ds.digest.hex())
    problems = ds_problems(record, field)
    if problems:
        raise ValidationFailed(problems)
    return record


def ds_text(owner: str, dnskey_presentation: str) -> str:
    """The SHA-256 DS of a zone's DNSKEY, in presentation form (what a parent publishes)."""
    return ds_from_dnskey(owner, dnskey_presentation).to_text()


def ds_matches_dnskey(record: DsRecord, dnskey_presentation: str, owner: str, *,
                      field: str = "dnskey") -> bool:
    """Whether `record` is the DS of this DNSKEY at `owner` (key tag, algorithm and digest).

    False as well when the DNSKEY is not a zone key of protocol 3 (RFC 4034 section 5.2: such
    a key is never named by a DS) or when the digest type is one this module cannot compute
    (GOST, SM3). Raises ValidationFailed when the DNSKEY or the owner cannot be read at all.
    """
    errors: list[FieldError] = []
    name = _owner_name(owner, "owner", errors)
    key = _dnskey(dnskey_presentation, field, errors)
    if errors:
        raise ValidationFailed(errors)
    assert name is not None and key is not None
    if not key.flags & ZONE_KEY_FLAG or key.protocol != DNSKEY_PROTOCOL:
        return False
    hash_name = _COMPUTABLE_DIGESTS.get(record.digest_type)
    if hash_name is None:
        return False
    # validating=True: a SHA-1 DS may no longer be created, but an existing one may be checked.
    ds = dnssec.make_ds(name, key, hash_name, validating=True)
    return (ds.key_tag, int(ds.algorithm), int(ds.digest_type), ds.digest.hex()) == (
        record.key_tag, record.algorithm, record.digest_type, record.digest)


def ds_breakage(records: Sequence[DsRecord], dnskeys: Sequence[str], owner: str, *,
                field: str = "ds") -> list[FieldError]:
    """Why these DS records would make validating resolvers fail `owner`, given the DNSKEY
    RRset it serves now (presentation texts); empty when at least one DS names a zone key.

    RFC 4035 section 5.2 needs one DS that authenticates a zone key of the child; DS records
    that match nothing beside it are allowed (a new key's DS published ahead of a rollover).
    An empty `records` never breaks anything: without DS the zone is simply insecure.
    """
    if not records:
        return []
    if not dnskeys:
        return [FieldError(field, "breaks_resolution", (
            f"{owner} is not signed: it publishes no DNSKEY RRset; a DS would make validating "
            "resolvers reject it"))]
    if any(_matches(record, key, owner) for record in records for key in dnskeys):
        return []
    return [_mismatch(record, dnskeys, owner, f"{field}.{index}")
            for index, record in enumerate(records)]


def _matches(record: DsRecord, dnskey_presentation: str, owner: str) -> bool:
    try:
        return ds_matches_dnskey(record, dnskey_presentation, owner)
    except ValidationFailed:
        return False  # a key the DNS served that cannot be read names no DS


def _mismatch(record: DsRecord, dnskeys: Sequence[str], owner: str, field: str) -> FieldError:
    named = [key for key in dnskeys if _key_tag_and_algorithm(key) ==
             (record.key_tag, record.algorithm)]
    if not named:
        return FieldError(field, "breaks_resolution", (
            f"no DNSKEY at {owner} has key tag {record.key_tag} and algorithm "
            f"{record.algorithm}"))
    if record.digest_type not in _COMPUTABLE_DIGESTS:
        return FieldError(field, "unverifiable", (
            f"a digest of type {record.digest_type} cannot be checked here; send a SHA-256 "
            f"(2) DS of the key with tag {record.key_tag} as well"))
    if not any(_is_zone_key(key) for key in named):
        return FieldError(field, "breaks_resolution", (
            f"the DNSKEY at {owner} with key tag {record.key_tag} is not a zone key "
            "(flags 256 or 257); a DS cannot name it"))
    return FieldError(field, "breaks_resolution", (
        f"the digest does not match the DNSKEY at {owner} with key tag {record.key_tag} "
        f"and algorithm {record.algorithm}"))


def _key_tag_and_algorithm(dnskey_presentation: str) -> tuple[int, int] | None:
    key = _dnskey(dnskey_presentation, "dnskey", [])
    return None if key is None else (dnssec.key_id(key), int(key.algorithm))


def _is_zone_key(dnskey_presentation: str) -> bool:
    key = _dnskey(dnskey_presentation, "dnskey", [])
    return key is not None and bool(key.flags & ZONE_KEY_FLAG) and \
        key.protocol == DNSKEY_PROTOCOL


def _ds_values(raw: Any, field: str, errors: list[FieldError]) -> dict[str, Any] | None:
    if isinstance(raw, str):
        text = raw.strip()
        if not text:
            errors.append(FieldError(field, "required", "is required"))
            return None
        if len(text) > MAX_DS_TEXT:
            errors.append(FieldError(field, "too_long",
                                     f"must be at most {MAX_DS_TEXT} characters"))
            return None
        tokens = text.split()
        if len(tokens) < len(DS_FIELDS):
            errors.append(FieldError(field, "invalid_ds",
                                     "must read '<key tag> <algorithm> <digest type> <digest>' "
                                     "(RFC 4034 section 5.3)"))
            return None
        # Whitespace is allowed inside the digest (RFC 4034 section 5.3); dig splits long ones.
        return {"key_tag": tokens[0], "algorithm": tokens[1], "digest_type": tokens[2],
                "digest": "".join(tokens[3:])}
    if isinstance(raw, Mapping):
        unknown = sorted(str(key) for key in raw if key not in DS_FIELDS)
        for key in unknown:
            errors.append(FieldError(f"{field}.{key}", "unknown_field", "is not a DS field"))
        return dict(raw)  # unknown fields reported, the known ones still checked
    if raw is None:
        errors.append(FieldError(field, "required", "is required"))
        return None
    errors.append(FieldError(field, "not_ds",
                             "must be a DS record: an object with key_tag, algorithm, "
                             "digest_type and digest, or its presentation text"))
    return None


def _unsigned(value: Any) -> int | None:
    """A non-negative integer given as int or decimal text, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit() and len(text) <= 5:
            return int(text)
    return None


def _key_tag(value: Any, field: str, errors: list[FieldError]) -> int | None:
    if is_blank(value):
        errors.append(FieldError(field, "required", "is required"))
        return None
    number = _unsigned(value)
    if number is None or number > MAX_KEY_TAG:
        errors.append(FieldError(field, "invalid_key_tag",
                                 f"must be a number from 0 to {MAX_KEY_TAG}"))
        return None
    return number


def _algorithm(value: Any, field: str, errors: list[FieldError]) -> int | None:
    if is_blank(value):
        errors.append(FieldError(field, "required", "is required"))
        return None
    number = _unsigned(value)
    if number is None and isinstance(value, str):
        # RFC 4034 section 5.3: the algorithm may be written as its mnemonic.
        wanted = _mnemonic_key(value)
        number = next((policy.number for policy in ALGORITHMS.values()
                       if _mnemonic_key(policy.mnemonic) == wanted), None)
    if number is None or number not in ALGORITHMS:
        errors.append(FieldError(field, "unknown_algorithm", _unknown_algorithm_message(
            number if number is not None else str(value)[:40])))
        return None
    return number


def _digest_type(value: Any, field: str, errors: list[FieldError]) -> int | None:
    if is_blank(value):
        errors.append(FieldError(field, "required", "is required"))
        return None
    number = _unsigned(value)
    if number is None or number not in DIGEST_TYPES:
        errors.append(FieldError(field, "unknown_digest_type", _unknown_digest_message(
            number if number is not None else str(value)[:40])))
        return None
    return number


def _digest(value: Any, digest_type: int | None, field: str,
            errors: list[FieldError]) -> str | None:
    if is_blank(value):
        errors.append(FieldError(field, "required", "is required"))
        return None
    if not isinstance(value, str) or len(value) > MAX_DS_TEXT:
        errors.append(FieldError(field, "invalid_digest",
                                 "must be hexadecimal text of at most "
                                 f"{MAX_DS_TEXT} characters"))
        return None
    digest = "".join(value.split()).lower()
    if not set(digest) <= _HEX:
        errors.append(FieldError(field, "invalid_digest",
                                 "must be hexadecimal (digits 0-9 and letters a-f)"))
        return None
    if digest_type is None:
        return digest  # its length cannot be judged without a known type
    policy = DIGEST_TYPES[digest_type]
    if len(digest) != policy.octets * 2:
        errors.append(FieldError(field, "wrong_digest_length",
                                 f"a {policy.mnemonic} digest is {policy.octets} octets "
                                 f"({policy.octets * 2} hex digits), not {len(digest)} "
                                 "hex digits"))
        return None
    return digest


def _owner_name(owner: Any, field: str, errors: list[FieldError]) -> dns.name.Name | None:
    if owner == ".":
        return dns.name.root
    name = validate_domain_name(owner, field, errors, min_labels=1)
    return None if name is None else dns.name.from_text(name.ascii + ".")


def _dnskey(text: Any, field: str, errors: list[FieldError]) -> DNSKEY | None:
    text = text_value(text, field, errors)
    if text is None:
        return None
    if len(text) > MAX_DNSKEY_TEXT:
        errors.append(FieldError(field, "too_long",
                                 f"must be at most {MAX_DNSKEY_TEXT} characters"))
        return None
    try:
        key = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.DNSKEY, text.strip())
    except (dns.exception.DNSException, ValueError) as exc:
        errors.append(FieldError(field, "invalid_dnskey",
                                 "must read '<flags> <protocol> <algorithm> <public key>' "
                                 f"(RFC 4034 section 2.2): {exc}"))
        return None
    assert isinstance(key, DNSKEY)
    return key


def _check_key_usable(key: DNSKEY, field: str, errors: list[FieldError]) -> None:
    """A DS is only ever made for a zone key of protocol 3 whose public key is well formed."""
    if not key.flags & ZONE_KEY_FLAG:
        errors.append(FieldError(field, "not_zone_key",
                                 "is not a zone key (flags 256 or 257); a DS cannot name it "
                                 "(RFC 4034 section 5.2)"))
    if key.protocol != DNSKEY_PROTOCOL:
        errors.append(FieldError(field, "invalid_dnskey",
                                 f"has protocol {key.protocol}; it must be 3 "
                                 "(RFC 4034 section 2.1.2)"))
    policy = ALGORITHMS.get(int(key.algorithm))
    if policy is None:
        errors.append(FieldError(field, "unknown_algorithm",
                                 _unknown_algorithm_message(int(key.algorithm))))
        return
    try:
        public_class = dnssecalgs.get_algorithm_cls_from_dnskey(key).public_cls
    except dns.exception.UnsupportedAlgorithm:
        return  # registered, but not one dnspython implements: the key cannot be checked
    try:
        public_class.from_dnskey(key)
    except (dns.exception.DNSException, ValueError) as exc:
        errors.append(FieldError(field, "invalid_dnskey",
                                 f"does not hold a valid {policy.mnemonic} public key: {exc}"))


def _mnemonic_key(text: str) -> str:
    return text.strip().upper().replace("-", "")


def _unknown_algorithm_message(value: int | str) -> str:
    if value == 0:
        return ("algorithm 0 (DELETE) only appears in a CDS asking for DNSSEC to be turned off "
                "(RFC 8078); it is never a DS")
    if value in (253, 254):
        return f"private algorithm {value} is not accepted in a DS sent to a registry"
    return (f"{value!r} is not a DNSSEC signing algorithm of the IANA registry accepted here "
            f"(such as {RECOMMENDED_ALGORITHM} for ECDSAP256SHA256)")


def _unknown_digest_message(value: int | str) -> str:
    if value == 0:
        return "digest type 0 is reserved (it only appears in a CDS delete request, RFC 8078)"
    return (f"{value!r} is not a DS digest type of the IANA registry "
            f"(such as {RECOMMENDED_DIGEST_TYPE} for SHA-256)")
