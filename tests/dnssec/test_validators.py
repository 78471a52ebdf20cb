"""Zones signed by regshield pass ldns-verify-zone, BIND's dnssec-verify and Knot's kzonecheck.

Every algorithm regshield signs with, NSEC and NSEC3, through both signing paths (the RRset
signer and the zone-file signer), on a zone with delegations (secure and insecure), glue, a
wildcard and empty non-terminals; and a damaged signature is caught by each validator.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dns.dnssec
import dns.rdatatype
import dns.zone
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448

from regshield.dnssec.keys import (
    ECDSAP256SHA256,
    ED25519,
    KSK_FLAGS,
    RSASHA256,
    ZSK_FLAGS,
    SigningKey,
    generate_key,
    load_private_key_der,
)
from regshield.dnssec.offline import sign_zone_text
from regshield.dnssec.signer import sign_zone

from .validators import assert_valid, verify, write_zone

ORIGIN = "example."
ZONE = """$ORIGIN example.
$TTL 3600
@           IN SOA  ns1 hostmaster (
                    2026010101 ; serial
                    7200 900 1209600 300 )
@           IN NS   ns1
@           IN NS   ns2.example.
@           IN MX   10 mail
@           IN TXT  "v=spf1 -all" "a; b"
ns1         IN A    192.0.2.1
ns2         IN A    192.0.2.2
mail        IN A    192.0.2.3
            IN AAAA 2001:db8::3
www    300  IN CNAME mail
*.wild      IN TXT  "wildcard"
a.b.c       IN A    192.0.2.20
_sip._tcp   IN SRV  0 5 5060 mail.example.
secure      IN NS   ns.secure
secure      IN DS   12345 13 2 49FD46E6C4B45C55D4AC49FD46E6C4B45C55D4AC49FD46E6C4B45C55D4AC49FD
ns.secure   IN A    192.0.2.40
insecure    IN NS   ns.insecure
insecure    IN NS   ns.elsewhere.net.
ns.insecure IN A    192.0.2.50
ns.insecure IN AAAA 2001:db8::50
"""
NOW = datetime.now(UTC)
INCEPTION = NOW - timedelta(hours=1)
EXPIRATION = NOW + timedelta(days=14)


def _keys(algorithm: int) -> list[SigningKey]:
    return [generate_key(algorithm, KSK_FLAGS), generate_key(algorithm, ZSK_FLAGS)]


def _loaded_keys(private_key: ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey,
                 zsk: ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey) -> list[SigningKey]:
    def der(key: ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey) -> bytes:
        return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    return [load_private_key_der(der(private_key), KSK_FLAGS), load_private_key_der(der(zsk))]


@pytest.mark.parametrize("nsec", ["nsec", "nsec3"])
@pytest.mark.parametrize("algorithm", [ECDSAP256SHA256, ED25519, RSASHA256])
def test_zone_file_signer_output_passes_all_three_validators(
    tmp_path: Path, algorithm: int, nsec: str
) -> None:
    signed, summary = sign_zone_text(ZONE, _keys(algorithm), INCEPTION, EXPIRATION,
                                     nsec=nsec)  # type: ignore[arg-type]
    assert summary.signatures > 20
    path = tmp_path / "signed.zone"
    path.write_text(signed)
    assert_valid(path, ORIGIN)


@pytest.mark.parametrize("nsec", ["nsec", "nsec3"])
def test_loaded_p384_and_ed448_keys_sign_zones_the_validators_accept(
    tmp_path: Path, nsec: str
) -> None:
    for keys in (
        _loaded_keys(ec.generate_private_key(ec.SECP384R1()),
                     ec.generate_private_key(ec.SECP384R1())),
        _loaded_keys(ed448.Ed448PrivateKey.generate(), ed448.Ed448PrivateKey.generate()),
    ):
        signed, _ = sign_zone_text(ZONE, keys, INCEPTION, EXPIRATION,
                                   nsec=nsec)  # type: ignore[arg-type]
        path = tmp_path / f"signed-{keys[0].algorithm}.zone"
        path.write_text(signed)
        assert_valid(path, ORIGIN)


@pytest.mark.parametrize("nsec", ["nsec", "nsec3"])
def test_rrset_signer_output_passes_all_three_validators(tmp_path: Path, nsec: str) -> None:
    zone = dns.zone.from_text(ZONE, relativize=False)
    rrsets = sign_zone(zone, _keys(ECDSAP256SHA256), INCEPTION, EXPIRATION,
                       nsec=nsec)  # type: ignore[arg-type]
    assert_valid(write_zone(tmp_path / "signed.zone", rrsets), ORIGIN)


@pytest.mark.parametrize("nsec", ["nsec", "nsec3"])
def test_a_damaged_signature_is_caught_by_every_validator(tmp_path: Path, nsec: str) -> None:
    signed, _ = sign_zone_text(ZONE, _keys(ECDSAP256SHA256), INCEPTION, EXPIRATION,
                               nsec=nsec)  # type: ignore[arg-type]
    lines = signed.splitlines()
    target = next(i for i, line in enumerate(lines)
                  if line.startswith("mail.example.") and "\tRRSIG\tA " in line)
    head, signature = lines[target].rsplit(" ", 1)
    flipped = "B" if signature[10] != "B" else "C"
    lines[target] = f"{head} {signature[:10]}{flipped}{signature[11:]}"
    path = tmp_path / "damaged.zone"
    path.write_text("\n".join(lines) + "\n")
    verdicts = verify(path, ORIGIN)
    assert [v.tool for v in verdicts if v.ok] == []


def test_a_broken_chain_is_caught_by_every_validator(tmp_path: Path) -> None:
    signed, _ = sign_zone_text(ZONE, _keys(ED25519), INCEPTION, EXPIRATION)
    # Dropping one NSEC (and its signature) leaves a name without denial and a gap.
    kept = [line for line in signed.splitlines()
            if not (line.startswith("mail.example.") and "NSEC" in line)]
    path = tmp_path / "gap.zone"
    path.write_text("\n".join(kept) + "\n")
    assert [v.tool for v in verify(path, ORIGIN) if v.ok] == []


def test_nsec3_opt_out_leaves_insecure_delegations_out_and_passes_the_validators(
    tmp_path: Path,
) -> None:
    text = ZONE + "".join(f"customer{i} IN NS ns.customer{i}.net.\n" for i in range(20))
    signed, _ = sign_zone_text(text, _keys(ECDSAP256SHA256), INCEPTION, EXPIRATION,
                               nsec="nsec3", opt_out=True)
    path = tmp_path / "opt-out.zone"
    path.write_text(signed)
    assert_valid(path, ORIGIN)
    zone = dns.zone.from_text(signed, relativize=False, origin=ORIGIN)
    nsec3s = [rdataset[0] for _, rdataset in zone.iterate_rdatasets()
              if rdataset.rdtype == dns.rdatatype.NSEC3]
    assert nsec3s and all(nsec3.flags == 1 for nsec3 in nsec3s)
    owners = {name.labels[0].decode() for name, rdataset in zone.iterate_rdatasets()
              if rdataset.rdtype == dns.rdatatype.NSEC3}
    for name, present in (("insecure", False), ("customer7", False), ("secure", True),
                          ("www", True)):
        label = dns.dnssec.nsec3_hash(f"{name}.{ORIGIN}", None, 0, 1).lower()
        assert (label in owners) is present, name
    param = zone.get_rdataset(ORIGIN, "NSEC3PARAM")
    assert param is not None and param[0].flags == 0  # RFC 5155 §4.1.2: never set here
