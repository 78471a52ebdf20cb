"""The sandbox's TLS material: its server certificate, made on first start, and the
fingerprints by which it recognizes registrars' client certificates."""

from __future__ import annotations

import hashlib
import ipaddress
import os
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from regshield.errors import RegshieldError

CERTIFICATE_FILE = "server-certificate.pem"
KEY_FILE = "server-key.pem"
VALIDITY = timedelta(days=825)  # the longest a TLS server certificate was ever allowed


class CertificateRefused(RegshieldError):
    """A client certificate that cannot be read as one PEM X.509 certificate."""

    http_status = 422
    epp_code = 2306
    type_slug = "sandbox-certificate-refused"
    title = "Not a PEM certificate"


def ensure_server_certificate(directory: Path, now: datetime) -> tuple[Path, Path]:
    """(certificate, key) files of the sandbox's server certificate, made on first use: an
    ECDSA P-256 key (file mode 0600) and a self-signed certificate for localhost and the
    loopback addresses. A pair already there is kept, so clients can pin it."""
    certificate_file, key_file = directory / CERTIFICATE_FILE, directory / KEY_FILE
    if certificate_file.exists() and key_file.exists():
        return certificate_file, key_file
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "regshield sandbox registry")])
    alternative_names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_bytes = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key_bytes)
    os.chmod(key_file, 0o600)  # O_CREAT's mode does not apply to a file left by a crash
    certificate_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return certificate_file, key_file


def fingerprint(der: bytes) -> str:
    """SHA-256 of a certificate's DER encoding, lower-case hex."""
    return hashlib.sha256(der).hexdigest()


def certificate_subject(pem: str | bytes) -> str:
    """The subject of a PEM certificate, as RFC 4514 text."""
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    return x509.load_pem_x509_certificate(data).subject.rfc4514_string()


def read_client_certificate(pem: bytes) -> tuple[str, str]:
    """(PEM text, SHA-256 fingerprint) of a registrar's client certificate."""
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise CertificateRefused("the client certificate is not one PEM X.509 certificate") \
            from None
    der = certificate.public_bytes(serialization.Encoding.DER)
    text = certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
    return text, fingerprint(der)
