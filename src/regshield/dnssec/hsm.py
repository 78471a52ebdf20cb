"""DNSSEC private keys held in a PKCS#11 token (an HSM; SoftHSM in tests).

A key pair is generated inside the token with its private half marked sensitive and not
extractable (PKCS#11 v2.40 sections 4.9 and 10.7), so no regshield process ever holds it:
regshield keeps the DNSKEY and the key's CKA_ID and asks the token for each signature.
`HsmSigningKey` has the attributes the zone signer reads from a `SigningKey` (`dnskey`,
`algorithm`, `key_tag`, `flags`, `is_ksk`) and signs with `sign(data)`.

ECDSAP256SHA256 (13) and ED25519 (15) are offered; SoftHSM 2.6 supports both. The SHA-256
digest for ECDSA is computed here and the token signs it with CKM_ECDSA, since many tokens
(SoftHSM among them) lack CKM_ECDSA_SHA256; CKM_ECDSA returns r || s, which is already the
DNSSEC form (RFC 6605 section 4). Ed25519 uses CKM_EDDSA, whose output is the raw signature
RFC 8080 section 4 asks for.

A PKCS#11 login belongs to the process, not the session, and closing a logged-in session logs
every session out (PKCS#11 v2.40 section 5.6): keep one `HsmSession` per process, used by one
thread at a time.
python-pkcs11 is an optional dependency (the `hsm` extra).
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Self, TypeVar

import dns.rdataclass
import dns.rdatatype
from dns.rdtypes.ANY.DNSKEY import DNSKEY

from regshield.dnssec.keys import (
    DNSKEY_PROTOCOL,
    ECDSAP256SHA256,
    ED25519,
    KSK_FLAGS,
    ZSK_FLAGS,
    key_tag,
)
from regshield.errors import ConfigurationError

if TYPE_CHECKING:
    import pkcs11

HSM_ALGORITHMS = (ECDSAP256SHA256, ED25519)
SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"

# Named curves by OID: P-256 (RFC 5480) and Ed25519 (RFC 8410).
_CURVES = {ECDSAP256SHA256: "1.2.840.10045.3.1.7", ED25519: "1.3.101.112"}
_PUBLIC_KEY_SIZE = {ECDSAP256SHA256: 64, ED25519: 32}


class HsmUnavailable(ConfigurationError):
    """The PKCS#11 module, token or PIN does not work as configured."""

    type_slug = "hsm-unavailable"
    title = "The key store (PKCS#11) is not usable"


@dataclass(frozen=True)
class HsmSigningKey:
    """A DNSSEC key whose private half stays in the token; `key_id` is its CKA_ID."""

    session: HsmSession = field(repr=False, compare=False)
    key_id: bytes
    label: str
    flags: int
    algorithm: int
    key_tag: int
    dnskey: DNSKEY = field(repr=False)

    @property
    def is_ksk(self) -> bool:
        """True when the Secure Entry Point bit is set: the key signs the DNSKEY RRset."""
        return bool(self.flags & 0x0001)

    def sign(self, data: bytes) -> bytes:
        """The RRSIG signature field over `data` (RFC 4034 section 3.1.8.1), made in the token."""
        return self.session.sign(self, data)


P = ParamSpec("P")
R = TypeVar("R")


def _one_at_a_time(method: Callable[Concatenate[HsmSession, P], R]
                   ) -> Callable[Concatenate[HsmSession, P], R]:
    """A PKCS#11 session is used by one thread at a time: the publisher signs in worker
    threads while flows make keys."""
    def serialized(self: HsmSession, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with self._lock:
            return method(self, *args, **kwargs)
    functools.update_wrapper(serialized, method)
    return serialized


class HsmSession:
    """An open, logged-in session on one token; a context manager that logs out on exit."""

    def __init__(self, session: pkcs11.Session) -> None:
        self._lock = threading.RLock()
        self._session = session
        self._private: dict[bytes, Any] = {}  # handles by CKA_ID: one search per key, not per RRSIG

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    @_one_at_a_time
    def generate_key(self, key_id: bytes, algorithm: int = ECDSAP256SHA256,
                     flags: int = ZSK_FLAGS, label: str | None = None) -> HsmSigningKey:
        """Generate a key pair in the token, stored under `key_id` (CKA_ID) and `label`.

        The private key is sensitive, not extractable and usable only to sign.
        """
        import pkcs11
        from pkcs11 import Attribute, KeyType, Mechanism
        from pkcs11.util.ec import encode_named_curve_parameters

        _check(algorithm, flags)
        if not key_id:
            raise ValueError("a key needs a non-empty CKA_ID")
        if self._find(pkcs11.ObjectClass.PRIVATE_KEY, key_id) is not None:
            raise ValueError(f"the token already holds a key with id {key_id.hex()}")
        label = label or key_id.hex()
        ed25519 = algorithm == ED25519
        parameters = self._session.create_domain_parameters(
            KeyType.EC_EDWARDS if ed25519 else KeyType.EC,
            {Attribute.EC_PARAMS: encode_named_curve_parameters(_CURVES[algorithm])},
            local=True,
        )
        public_template: dict[Attribute, Any] = {Attribute.VERIFY: True}
        private_template: dict[Attribute, Any] = {
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.SIGN: True,
            Attribute.DECRYPT: False,
            Attribute.UNWRAP: False,
            Attribute.DERIVE: False,
        }
        try:
            public, _ = parameters.generate_keypair(
                store=True, label=label, id=key_id,
                mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN if ed25519 else None,
                public_template=public_template, private_template=private_template,
            )
        except pkcs11.PKCS11Error as error:
            raise HsmUnavailable(
                f"the token refused to generate an algorithm {algorithm} key: "
                f"{type(error).__name__}") from error
        return self._signing_key(public, key_id, label, flags, algorithm)

    @_one_at_a_time
    def load_key(self, key_id: bytes, flags: int = ZSK_FLAGS) -> HsmSigningKey:
        """The key stored under `key_id`, as `generate_key` made it."""
        import pkcs11
        from pkcs11 import Attribute, KeyType

        public = self._find(pkcs11.ObjectClass.PUBLIC_KEY, key_id)
        if public is None or self._find(pkcs11.ObjectClass.PRIVATE_KEY, key_id) is None:
            raise LookupError(f"the token holds no key pair with id {key_id.hex()}")
        algorithm = ED25519 if public[Attribute.KEY_TYPE] == KeyType.EC_EDWARDS else \
            ECDSAP256SHA256
        _check(algorithm, flags)
        return self._signing_key(public, key_id, str(public[Attribute.LABEL]), flags, algorithm)

    @_one_at_a_time
    def load_key_by_label(self, label: str, flags: int = ZSK_FLAGS) -> HsmSigningKey:
        """The key pair labelled `label` (CKA_LABEL), which must name exactly one."""
        from pkcs11 import Attribute, ObjectClass

        found = list(self._session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY,
                                                Attribute.LABEL: label}))
        if len(found) != 1:
            raise LookupError(f"the token holds {len(found)} public keys labelled {label!r}")
        return self.load_key(bytes(found[0][Attribute.ID]), flags)

    @_one_at_a_time
    def sign(self, key: HsmSigningKey, data: bytes) -> bytes:
        import pkcs11
        from pkcs11 import Mechanism

        private = self._private.get(key.key_id)
        if private is None:
            private = self._find(pkcs11.ObjectClass.PRIVATE_KEY, key.key_id)
            if private is None:
                raise LookupError(f"the token holds no private key with id {key.key_id.hex()}")
            self._private[key.key_id] = private
        if key.algorithm == ED25519:
            signature = private.sign(data, mechanism=Mechanism.EDDSA)
        else:
            signature = private.sign(hashlib.sha256(data).digest(), mechanism=Mechanism.ECDSA)
        if len(signature) != 64:
            raise HsmUnavailable(f"the token returned a {len(signature)}-byte signature")
        return bytes(signature)

    def _find(self, object_class: pkcs11.ObjectClass, key_id: bytes) -> Any:
        from pkcs11 import Attribute

        found = list(self._session.get_objects({Attribute.CLASS: object_class,
                                                Attribute.ID: key_id}))
        return found[0] if found else None

    def _signing_key(self, public: Any, key_id: bytes, label: str, flags: int,
                     algorithm: int) -> HsmSigningKey:
        from pkcs11 import Attribute

        point = _unwrap_point(bytes(public[Attribute.EC_POINT]), algorithm)
        dnskey = DNSKEY(  # type: ignore[no-untyped-call]
            dns.rdataclass.IN, dns.rdatatype.DNSKEY, flags, DNSKEY_PROTOCOL, algorithm, point,
        )
        return HsmSigningKey(session=self, key_id=key_id, label=label, flags=flags,
                             algorithm=algorithm, key_tag=key_tag(dnskey), dnskey=dnskey)


def open_token(label: str, pin: str, module_path: str = SOFTHSM_MODULE) -> HsmSession:
    """Log in to the token labelled `label` of the PKCS#11 module at `module_path`."""
    try:
        import pkcs11
    except ImportError as error:
        raise HsmUnavailable("PKCS#11 keys need python-pkcs11: install regshield[hsm]") \
            from error
    try:
        library = pkcs11.lib(module_path)
    except (OSError, pkcs11.PKCS11Error) as error:
        raise HsmUnavailable(f"cannot load the PKCS#11 module {module_path}") from error
    try:
        token = library.get_token(token_label=label)
    except pkcs11.NoSuchToken:
        # A token initialised after the module was loaded is seen only after a re-initialise.
        library.reinitialize()
        try:
            token = library.get_token(token_label=label)
        except pkcs11.NoSuchToken as error:
            raise HsmUnavailable(f"no PKCS#11 token is labelled {label!r}") from error
    try:
        return HsmSession(token.open(user_pin=pin, rw=True))
    except pkcs11.PKCS11Error as error:
        raise HsmUnavailable(f"cannot log in to the token {label!r}: "
                             f"{type(error).__name__}") from error


def _unwrap_point(point: bytes, algorithm: int) -> bytes:
    """The DNSKEY public key field from CKA_EC_POINT.

    PKCS#11 stores the point DER-wrapped in an OCTET STRING; some tokens give it bare. P-256 is
    the uncompressed point without its 0x04 prefix (RFC 6605 section 4), Ed25519 the 32 bytes
    (RFC 8080 section 3).
    """
    size = _PUBLIC_KEY_SIZE[algorithm]
    bare_size = size + 1 if algorithm == ECDSAP256SHA256 else size
    if len(point) != bare_size:
        point = _octet_string(point)
    if algorithm == ECDSAP256SHA256:
        if point[:1] != b"\x04":
            raise HsmUnavailable("the token returned a compressed or malformed EC point")
        point = point[1:]
    if len(point) != size:
        raise HsmUnavailable(f"the token returned a {len(point)}-byte public key")
    return point


def _octet_string(der: bytes) -> bytes:
    """The content of a DER OCTET STRING short enough for a public key (X.690 section 8.7)."""
    if len(der) >= 2 and der[0] == 0x04:
        if der[1] < 0x80 and len(der) == 2 + der[1]:
            return der[2:]
        if der[1] == 0x81 and len(der) >= 3 and len(der) == 3 + der[2]:
            return der[3:]
    raise HsmUnavailable("the token returned a malformed CKA_EC_POINT")


def _check(algorithm: int, flags: int) -> None:
    if algorithm not in HSM_ALGORITHMS:
        raise ValueError(f"a token key is 13 (ECDSAP256SHA256) or 15 (ED25519), not {algorithm}")
    if flags not in (ZSK_FLAGS, KSK_FLAGS):
        raise ValueError(f"flags must be 256 (ZSK) or 257 (KSK), not {flags}")
