"""The EPP codec's foundation: namespaces, result codes, the codec error, and the value types
and XML helpers that commands (`registry/commands.py`) and responses (`registry/responses.py`)
share.

The codec is pure: bytes in, typed values out, and back; no sockets, no clock. The client and
the sandbox registry use the same code, so what one side builds the other side parses. Element
names and order follow the schemas of RFC 5730 (EPP), 5731 (domain), 5732 (host), 5733
(contact), 5910 (secDNS-1.1) and 3915 (rgp-1.0): an XSD `sequence` is order-sensitive, so every
writer emits children in schema order and every reader refuses them in any other order.

Every document from a peer goes through `registry/xml.py`'s safe parser. Schema validation is
not done here; builders and parsers take an optional `validate` hook (the schema validator of
`registry/schemas.py`, when it is plugged in) that is called with the document's root element.
Anything malformed or unexpected raises `CodecError`, whose message names the element.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import re
import secrets
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import IntEnum
from typing import Literal, TypeVar

from lxml import etree

from regshield.errors import RegshieldError
from regshield.registry.xml import EPP_NS, UnsafeOrInvalidXml, parse_document
from regshield.rules.ds import DsRecord

DOMAIN_NS = "urn:ietf:params:xml:ns:domain-1.0"
HOST_NS = "urn:ietf:params:xml:ns:host-1.0"
CONTACT_NS = "urn:ietf:params:xml:ns:contact-1.0"
SECDNS_NS = "urn:ietf:params:xml:ns:secDNS-1.1"
RGP_NS = "urn:ietf:params:xml:ns:rgp-1.0"

# The prefixes the RFC examples use; a peer may choose others, which is equally valid XML.
PREFIXES: dict[str, str] = {
    EPP_NS: "epp", DOMAIN_NS: "domain", HOST_NS: "host", CONTACT_NS: "contact",
    SECDNS_NS: "secDNS", RGP_NS: "rgp",
}
OBJECT_URIS: tuple[str, ...] = (DOMAIN_NS, HOST_NS, CONTACT_NS)
EXTENSION_URIS: tuple[str, ...] = (SECDNS_NS, RGP_NS)
EPP_VERSION = "1.0"

# Called with a document's root element; raises to refuse it (the XSD validator plugs in here).
Validator = Callable[[etree._Element], None]


class CodecError(RegshieldError):
    """A document (or a value to be encoded) that the EPP schemas do not allow.

    A server answers it with `epp_code`; a client that receives such a document from a
    registry reports a bad gateway.
    """

    http_status = 502
    epp_code = 2001
    type_slug = "epp-codec-error"
    title = "Malformed EPP document"


class UnknownCommand(CodecError):
    """An element in the command's place that EPP does not define."""

    epp_code = 2000
    type_slug = "epp-unknown-command"
    title = "Unknown EPP command"


class UnimplementedCommand(CodecError):
    """A well-formed command that this codec does not carry (a host or contact transfer...)."""

    epp_code = 2101
    type_slug = "epp-unimplemented-command"
    title = "Unimplemented EPP command"


class UnimplementedOption(CodecError):
    """A well-formed option of a known command that this codec does not carry (markup inside an
    RGP restore report's texts, key data inside DS data, a contact's `ext` authInfo)."""

    epp_code = 2102
    type_slug = "epp-unimplemented-option"
    title = "Unimplemented EPP option"


class UnsupportedInterface(UnimplementedOption):
    """secDNS key data sent where only the DS data interface is served: RFC 5910 section 4 has
    the server answer 2306, not 2102."""

    epp_code = 2306
    type_slug = "epp-unsupported-interface"
    title = "Unsupported secDNS interface"


class UnimplementedObjectService(CodecError):
    """A command on an object namespace other than domain, host and contact."""

    epp_code = 2307
    type_slug = "epp-unimplemented-object-service"
    title = "Unimplemented EPP object service"


class ResultCode(IntEnum):
    """EPP result codes (RFC 5730 section 3). Members compare equal to their numbers."""

    COMPLETED = 1000
    COMPLETED_ACTION_PENDING = 1001
    COMPLETED_NO_MESSAGES = 1300
    COMPLETED_ACK_TO_DEQUEUE = 1301
    COMPLETED_ENDING_SESSION = 1500
    UNKNOWN_COMMAND = 2000
    COMMAND_SYNTAX_ERROR = 2001
    COMMAND_USE_ERROR = 2002
    REQUIRED_PARAMETER_MISSING = 2003
    PARAMETER_VALUE_RANGE_ERROR = 2004
    PARAMETER_VALUE_SYNTAX_ERROR = 2005
    UNIMPLEMENTED_PROTOCOL_VERSION = 2100
    UNIMPLEMENTED_COMMAND = 2101
    UNIMPLEMENTED_OPTION = 2102
    UNIMPLEMENTED_EXTENSION = 2103
    BILLING_FAILURE = 2104
    NOT_ELIGIBLE_FOR_RENEWAL = 2105
    NOT_ELIGIBLE_FOR_TRANSFER = 2106
    AUTHENTICATION_ERROR = 2200
    AUTHORIZATION_ERROR = 2201
    INVALID_AUTHORIZATION_INFORMATION = 2202
    OBJECT_PENDING_TRANSFER = 2300
    OBJECT_NOT_PENDING_TRANSFER = 2301
    OBJECT_EXISTS = 2302
    OBJECT_DOES_NOT_EXIST = 2303
    OBJECT_STATUS_PROHIBITS_OPERATION = 2304
    OBJECT_ASSOCIATION_PROHIBITS_OPERATION = 2305
    PARAMETER_VALUE_POLICY_ERROR = 2306
    UNIMPLEMENTED_OBJECT_SERVICE = 2307
    DATA_MANAGEMENT_POLICY_VIOLATION = 2308
    COMMAND_FAILED = 2400
    COMMAND_FAILED_CLOSING = 2500
    AUTHENTICATION_ERROR_CLOSING = 2501
    SESSION_LIMIT_EXCEEDED_CLOSING = 2502

    @property
    def message(self) -> str:
        """The standard text of RFC 5730 section 3."""
        return RESULT_MESSAGES[self]

    @property
    def succeeded(self) -> bool:
        return self < 2000

    @property
    def closes_session(self) -> bool:
        """The server ends the session after answering with this code."""
        return self in _CLOSING


RESULT_MESSAGES: dict[ResultCode, str] = {
    ResultCode.COMPLETED: "Command completed successfully",
    ResultCode.COMPLETED_ACTION_PENDING: "Command completed successfully; action pending",
    ResultCode.COMPLETED_NO_MESSAGES: "Command completed successfully; no messages",
    ResultCode.COMPLETED_ACK_TO_DEQUEUE: "Command completed successfully; ack to dequeue",
    ResultCode.COMPLETED_ENDING_SESSION: "Command completed successfully; ending session",
    ResultCode.UNKNOWN_COMMAND: "Unknown command",
    ResultCode.COMMAND_SYNTAX_ERROR: "Command syntax error",
    ResultCode.COMMAND_USE_ERROR: "Command use error",
    ResultCode.REQUIRED_PARAMETER_MISSING: "Required parameter missing",
    ResultCode.PARAMETER_VALUE_RANGE_ERROR: "Parameter value range error",
    ResultCode.PARAMETER_VALUE_SYNTAX_ERROR: "Parameter value syntax error",
    ResultCode.UNIMPLEMENTED_PROTOCOL_VERSION: "Unimplemented protocol version",
    ResultCode.UNIMPLEMENTED_COMMAND: "Unimplemented command",
    ResultCode.UNIMPLEMENTED_OPTION: "Unimplemented option",
    ResultCode.UNIMPLEMENTED_EXTENSION: "Unimplemented extension",
    ResultCode.BILLING_FAILURE: "Billing failure",
    ResultCode.NOT_ELIGIBLE_FOR_RENEWAL: "Object is not eligible for renewal",
    ResultCode.NOT_ELIGIBLE_FOR_TRANSFER: "Object is not eligible for transfer",
    ResultCode.AUTHENTICATION_ERROR: "Authentication error",
    ResultCode.AUTHORIZATION_ERROR: "Authorization error",
    ResultCode.INVALID_AUTHORIZATION_INFORMATION: "Invalid authorization information",
    ResultCode.OBJECT_PENDING_TRANSFER: "Object pending transfer",
    ResultCode.OBJECT_NOT_PENDING_TRANSFER: "Object not pending transfer",
    ResultCode.OBJECT_EXISTS: "Object exists",
    ResultCode.OBJECT_DOES_NOT_EXIST: "Object does not exist",
    ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION: "Object status prohibits operation",
    ResultCode.OBJECT_ASSOCIATION_PROHIBITS_OPERATION: "Object association prohibits operation",
    ResultCode.PARAMETER_VALUE_POLICY_ERROR: "Parameter value policy error",
    ResultCode.UNIMPLEMENTED_OBJECT_SERVICE: "Unimplemented object service",
    ResultCode.DATA_MANAGEMENT_POLICY_VIOLATION: "Data management policy violation",
    ResultCode.COMMAND_FAILED: "Command failed",
    ResultCode.COMMAND_FAILED_CLOSING: "Command failed; server closing connection",
    ResultCode.AUTHENTICATION_ERROR_CLOSING: "Authentication error; server closing connection",
    ResultCode.SESSION_LIMIT_EXCEEDED_CLOSING:
        "Session limit exceeded; server closing connection",
}
_CLOSING = frozenset({ResultCode.COMPLETED_ENDING_SESSION, ResultCode.COMMAND_FAILED_CLOSING,
                      ResultCode.AUTHENTICATION_ERROR_CLOSING,
                      ResultCode.SESSION_LIMIT_EXCEEDED_CLOSING})


def result_code(value: int | str, element: str = "epp:result") -> ResultCode:
    """`value` as a ResultCode; CodecError for a number RFC 5730 does not define."""
    try:
        return ResultCode(int(value))
    except ValueError:
        raise CodecError(f"{element}: {str(value)[:16]!r} is not an EPP result code "
                         "(RFC 5730 section 3)") from None


def result_for_error(error: BaseException) -> ResultCode:
    """The result code a server answers `error` with: regshield's errors carry their own
    (errors.py), unsafe or malformed XML is a syntax error, anything else "Command failed"."""
    if isinstance(error, RegshieldError):
        try:
            return ResultCode(error.epp_code)
        except ValueError:
            return ResultCode.COMMAND_FAILED
    if isinstance(error, UnsafeOrInvalidXml):
        return ResultCode.COMMAND_SYNTAX_ERROR
    return ResultCode.COMMAND_FAILED


class Secret:
    """A password or authorization code. `repr` and `str` never show it; `reveal()` does."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("a Secret holds a string")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))


@dataclass(frozen=True)
class RawElement:
    """An element the codec has no type for (an unknown extension, a result's value), kept
    whole as exclusive canonical XML so that nothing a peer sent is dropped silently.

    `repr` shows the element's name only: an extension unknown to us may carry secrets.
    """

    tag: str  # Clark notation, {namespace}local
    xml: bytes = field(repr=False)

    @classmethod
    def of(cls, element: etree._Element) -> RawElement:
        return cls(tag=element.tag, xml=etree.tostring(element, method="c14n", exclusive=True))

    @classmethod
    def from_xml(cls, data: bytes) -> RawElement:
        """An element to send (an extension the codec has no type for), parsed safely."""
        try:
            return cls.of(parse_document(data))
        except UnsafeOrInvalidXml as exc:
            raise CodecError(f"raw element: {exc}") from None

    @property
    def namespace(self) -> str | None:
        return etree.QName(self.tag).namespace

    def to_element(self) -> etree._Element:
        return parse_document(self.xml)


# --- values shared by commands and responses -------------------------------------------------

PeriodUnit = Literal["y", "m"]
ContactType = Literal["admin", "billing", "tech"]
PostalType = Literal["int", "loc"]
CONTACT_TYPES: tuple[ContactType, ...] = ("admin", "billing", "tech")
POSTAL_TYPES: tuple[PostalType, ...] = ("int", "loc")
PERIOD_UNITS: tuple[PeriodUnit, ...] = ("y", "m")
HostAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_DOMAIN_STATUSES = 11  # RFC 5731 statusType maxOccurs
MAX_OBJECT_STATUSES = 7  # RFC 5732 and 5733 statusType maxOccurs
MAX_STREET_LINES = 3
MAX_POSTAL_INFO = 2
HOST_STATUSES: frozenset[str] = frozenset({
    "clientDeleteProhibited", "clientUpdateProhibited", "linked", "ok", "pendingCreate",
    "pendingDelete", "pendingTransfer", "pendingUpdate", "serverDeleteProhibited",
    "serverUpdateProhibited",
})
CONTACT_STATUSES: frozenset[str] = frozenset({
    "clientDeleteProhibited", "clientTransferProhibited", "clientUpdateProhibited", "linked",
    "ok", "pendingCreate", "pendingDelete", "pendingTransfer", "pendingUpdate",
    "serverDeleteProhibited", "serverTransferProhibited", "serverUpdateProhibited",
})
TRANSFER_STATUSES: frozenset[str] = frozenset({
    "clientApproved", "clientCancelled", "clientRejected", "pending", "serverApproved",
    "serverCancelled",
})
DISCLOSE_FIELDS: tuple[str, ...] = (
    "name:int", "name:loc", "org:int", "org:loc", "addr:int", "addr:loc", "voice", "fax",
    "email",
)

_ROID = re.compile(r"[\w_]{1,80}-\w{1,8}", re.ASCII)
_E164 = re.compile(r"\+[0-9]{1,3}\.[0-9]{1,14}")
_MAX_SHOWN = 80


@dataclass(frozen=True)
class Status:
    """An object status (`s` attribute) with the optional reason text a client or server gave."""

    value: str
    reason: str = ""
    lang: str = "en"


@dataclass(frozen=True)
class Period:
    """A registration period (RFC 5731 periodType): 1 to 99 years or months."""

    value: int
    unit: PeriodUnit = "y"

    def __post_init__(self) -> None:
        choose(self.unit, PERIOD_UNITS, "domain:period unit")
        if isinstance(self.value, bool) or not isinstance(self.value, int) \
                or not 1 <= self.value <= 99:
            raise CodecError(f"domain:period: must be 1 to 99, not {self.value!r}")


@dataclass(frozen=True)
class DomainContact:
    """A contact object linked to a domain in one role."""

    type: ContactType
    id: str

    def __post_init__(self) -> None:
        choose(self.type, CONTACT_TYPES, "domain:contact type")
        check_client_id(self.id, "domain:contact")


@dataclass(frozen=True)
class Phone:
    """A telephone number in EPP's `+CC.NUMBER` form (RFC 5733 e164Type), with an extension."""

    number: str
    extension: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.number, str) or len(self.number) > 17 \
                or not _E164.fullmatch(self.number):
            raise CodecError(f"contact:voice: {_shown(self.number)} is not in the form "
                             "+CC.NUMBER (RFC 5733 section 2.5)")
        if self.extension is not None:
            check_token(self.extension, "contact:voice x", minimum=1, maximum=None)


@dataclass(frozen=True)
class PostalInfo:
    """One postal address form (RFC 5733 section 2.4). The `int` form is 7-bit ASCII only."""

    type: PostalType
    name: str
    city: str
    cc: str
    org: str | None = None
    street: tuple[str, ...] = ()
    sp: str | None = None
    pc: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "street", tuple(self.street))
        choose(self.type, POSTAL_TYPES, "contact:postalInfo type")
        if len(self.street) > MAX_STREET_LINES:
            raise CodecError(f"contact:street: at most {MAX_STREET_LINES} lines, "
                             f"not {len(self.street)}")
        _check_line(self.name, "contact:name", required=True)
        _check_line(self.city, "contact:city", required=True)
        for line, element in [(self.org, "contact:org"), (self.sp, "contact:sp"),
                              *((s, "contact:street") for s in self.street)]:
            if line is not None:
                _check_line(line, element, required=False)
        if self.pc is not None:
            check_token(self.pc, "contact:pc", minimum=0, maximum=16)
        if not isinstance(self.cc, str) or len(self.cc) != 2 or not self.cc.isascii() \
                or not self.cc.isalpha():
            raise CodecError(f"contact:cc: must be a two-letter country code, "
                             f"not {_shown(self.cc)}")
        if self.type == "int":
            texts = [self.name, self.city, self.org, self.sp, self.pc, *self.street]
            if not all(text is None or text.isascii() for text in texts):
                raise CodecError('contact:postalInfo type="int" must be 7-bit ASCII; '
                                 'put other scripts in the "loc" form (RFC 5733 section 2.4)')


@dataclass(frozen=True)
class Disclose:
    """Which contact fields the server may or may not disclose (RFC 5733 section 2.9).

    `fields` are among DISCLOSE_FIELDS (`name:int`, `voice`, ...), kept in schema order.
    """

    flag: bool
    fields: tuple[str, ...]

    def __post_init__(self) -> None:
        unknown = sorted(set(self.fields) - set(DISCLOSE_FIELDS))
        if unknown:
            raise CodecError(f"contact:disclose: unknown fields {', '.join(unknown)}")
        if not self.fields:
            raise CodecError("contact:disclose: names no field")
        ordered = tuple(name for name in DISCLOSE_FIELDS if name in self.fields)
        if len(ordered) != len(self.fields):
            raise CodecError("contact:disclose: a field is named twice")
        object.__setattr__(self, "fields", ordered)


@dataclass(frozen=True)
class HostAttribute:
    """A nameserver given by its attributes inside `<domain:ns>` (RFC 5731 section 1.1): its name
    and, for a host inside the registry's own zones, its addresses (glue). The other form is
    the host object (`domain:hostObj`), named only; one document uses one form."""

    name: str
    addresses: tuple[HostAddress, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "addresses", tuple(self.addresses))
        check_domain_name(self.name, "domain:hostName")
        for address in self.addresses:
            if not isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
                raise CodecError(f"domain:hostAddr: {_shown(address)} is not an IP address")


@dataclass(frozen=True)
class KeyData:
    """A DNSKEY as the secDNS key data interface carries it (RFC 5910 section 4.2): the registry
    computes the DS record itself. `public_key` is the key in base64, as in the DNSKEY's
    presentation form."""

    flags: int
    protocol: int
    algorithm: int
    public_key: str

    def __post_init__(self) -> None:
        for name, value, maximum in (("flags", self.flags, 65535),
                                     ("protocol", self.protocol, 255),
                                     ("alg", self.algorithm, 255)):
            if isinstance(value, bool) or not isinstance(value, int) \
                    or not 0 <= value <= maximum:
                raise CodecError(f"secDNS:{name}: must be 0 to {maximum}, not {_shown(value)}")
        key = self.public_key
        if not isinstance(key, str) or not key or not key.isascii():
            raise CodecError("secDNS:pubKey: a base64 key is required")
        try:
            base64.b64decode(key, validate=True)
        except (binascii.Error, ValueError):
            raise CodecError(f"secDNS:pubKey: {_shown(key)} is not base64") from None


def check_domain_name(value: object, element: str = "domain:name") -> str:
    """An EPP domain or host name: ASCII only (IDNs travel as A-labels), 1 to 255 characters.

    The codec checks the wire form only; what makes a name acceptable is `rules/names.py`'s
    business, which is also the way to turn a U-label into an A-label before building.
    """
    if not isinstance(value, str) or not value:
        raise CodecError(f"{element}: a name is required")
    if not value.isascii():
        raise CodecError(f"{element}: {_shown(value)} is not in A-label form; EPP carries "
                         "internationalized names as A-labels (see regshield.rules.names)")
    if len(value) > 255 or any(ch.isspace() for ch in value):
        raise CodecError(f"{element}: {_shown(value)} is not a DNS name")
    return value


def check_client_id(value: object, element: str) -> str:
    """An EPP identifier (eppcom clIDType): a token of 3 to 16 characters."""
    return check_token(value, element, minimum=3, maximum=16)


def check_roid(value: object, element: str) -> str:
    check_token(value, element, minimum=1, maximum=None)
    assert isinstance(value, str)
    if not _ROID.fullmatch(value):
        raise CodecError(f"{element}: {_shown(value)} is not a repository object identifier")
    return value


def check_token(value: object, element: str, *, minimum: int, maximum: int | None) -> str:
    """An XML Schema token: no leading, trailing or repeated whitespace; bounded length."""
    if not isinstance(value, str):
        raise CodecError(f"{element}: must be text")
    if " ".join(value.split()) != value:
        raise CodecError(f"{element}: {_shown(value)} has stray whitespace")
    if len(value) < minimum or (maximum is not None and len(value) > maximum):
        bound = f"{minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
        raise CodecError(f"{element}: must be {bound} characters long, not {len(value)}")
    return value


def check_statuses(statuses: Iterable[Status], allowed: frozenset[str], element: str, *,
                   minimum: int, maximum: int) -> tuple[Status, ...]:
    values = tuple(statuses)
    if not minimum <= len(values) <= maximum:
        raise CodecError(f"{element}: {minimum} to {maximum} statuses, not {len(values)}")
    for status in values:
        if status.value not in allowed:
            raise CodecError(f"{element}: {_shown(status.value)} is not a status value here")
    return values


def check_secret(value: object, element: str, *, minimum: int = 0,
                 maximum: int | None = None) -> Secret:
    if not isinstance(value, Secret):
        raise CodecError(f"{element}: must be a Secret, so that it never shows in logs")
    length = len(value.reveal())
    if length < minimum or (maximum is not None and length > maximum):
        bound = f"{minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
        raise CodecError(f"{element}: must be {bound} characters long")  # never the value
    return value


def _check_line(value: object, element: str, *, required: bool) -> None:
    """A postal line (RFC 5733 postalLineType): up to 255 characters, no line breaks."""
    if not isinstance(value, str):
        raise CodecError(f"{element}: must be text")
    if (required and not value.strip()) or len(value) > 255 \
            or any(ch in value for ch in "\r\n\t"):
        raise CodecError(f"{element}: must be one line of 1 to 255 characters")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "…"


Choice = TypeVar("Choice", bound=str)


def choose(value: object, allowed: tuple[Choice, ...], element: str) -> Choice:
    """`value` if it is one of `allowed` (an XSD enumeration), else CodecError naming them."""
    for option in allowed:
        if value == option:
            return option
    raise CodecError(f"{element}: must be {', '.join(allowed)}, not {_shown(value)}")


# --- transaction identifiers -----------------------------------------------------------------

def new_cl_trid(prefix: str = "RS") -> str:
    """A fresh client transaction identifier: the prefix and 96 random bits in hex."""
    return check_transaction_id(f"{prefix}-{secrets.token_hex(12)}", "epp:clTRID")


def check_transaction_id(value: object, element: str) -> str:
    """A clTRID or svTRID (RFC 5730 trIDStringType): a token of 3 to 64 characters."""
    return check_token(value, element, minimum=3, maximum=64)


# --- dates and times -------------------------------------------------------------------------

_DATETIME = re.compile(
    r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})?", re.ASCII)
_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})(?:Z|[+-]\d{2}:\d{2})?", re.ASCII)


def format_datetime(value: datetime, element: str) -> str:
    """An aware datetime in UTC as XML Schema dateTime (`2025-04-03T22:00:00Z`)."""
    if not isinstance(value, datetime) or value.tzinfo is None \
            or value.utcoffset() is None:
        raise CodecError(f"{element}: needs a timezone-aware datetime")
    utc = value.astimezone(UTC)
    text = utc.isoformat(timespec="microseconds" if utc.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def parse_datetime(text: str, element: str) -> datetime:
    """XML Schema dateTime as an aware datetime in UTC. A time without a zone is refused:
    guessing one would shift expiry dates by hours without anyone noticing."""
    match = _DATETIME.fullmatch(text)
    if not match:
        raise CodecError(f"{element}: {_shown(text)} is not an XML Schema dateTime")
    stamp, fraction, zone = match.groups()
    if zone is None:
        raise CodecError(f"{element}: {_shown(text)} has no time zone")
    iso = stamp + (f".{(fraction + '000000')[:6]}" if fraction else "") \
        + ("+00:00" if zone == "Z" else zone)
    try:
        return datetime.fromisoformat(iso).astimezone(UTC)
    except ValueError:
        raise CodecError(f"{element}: {_shown(text)} is not a valid date and time") from None


def format_date(value: date, element: str) -> str:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise CodecError(f"{element}: needs a date, not {type(value).__name__}")
    return value.isoformat()


def parse_date(text: str, element: str) -> date:
    match = _DATE.fullmatch(text)
    if not match:
        raise CodecError(f"{element}: {_shown(text)} is not an XML Schema date")
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        raise CodecError(f"{element}: {_shown(text)} is not a valid date") from None


# --- reading and writing elements ------------------------------------------------------------

def qualified(namespace: str, local: str) -> str:
    return f"{{{namespace}}}{local}"


def show(tag: str) -> str:
    """An element's name as the RFCs write it (`domain:name`), for error messages."""
    name = etree.QName(tag)
    if name.namespace is None:
        return name.localname
    prefix = PREFIXES.get(name.namespace)
    return f"{prefix}:{name.localname}" if prefix else f"{{{name.namespace}}}{name.localname}"


def new_document() -> etree._Element:
    nsmap: dict[str | None, str] = {None: EPP_NS}  # the default namespace, as RFC examples
    return etree.Element(qualified(EPP_NS, "epp"), nsmap=nsmap)  # type: ignore[arg-type]


def add(parent: etree._Element, namespace: str, local: str, text: str | None = None,
        attributes: dict[str, str] | None = None, *, declare: bool = False) -> etree._Element:
    """Append `<namespace:local>`; `declare` puts the namespace declaration on it, as the RFC
    examples do on each object element."""
    nsmap = {PREFIXES.get(namespace, "ns"): namespace} if declare else None
    element = etree.SubElement(parent, qualified(namespace, local), attrib=attributes,
                               nsmap=nsmap)
    if text is not None:
        element.text = text
    return element


def add_optional(parent: etree._Element, namespace: str, local: str,
                 text: str | None) -> None:
    if text is not None:
        add(parent, namespace, local, text)


def serialize(root: etree._Element, validate: Validator | None) -> bytes:
    """The document as UTF-8 bytes with an XML declaration, after the validation hook."""
    run_validator(root, validate)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def load(data: bytes, validate: Validator | None) -> etree._Element:
    """The `<epp>` root of a peer's document, parsed safely and passed to the hook."""
    try:
        root = parse_document(data)
    except UnsafeOrInvalidXml as exc:
        raise CodecError(f"epp: {exc}") from None
    if root.tag != qualified(EPP_NS, "epp"):
        raise CodecError(f"epp: the root element must be epp:epp, not {show(root.tag)}")
    run_validator(root, validate)
    return root


def run_validator(root: etree._Element, validate: Validator | None) -> None:
    if validate is None:
        return
    try:
        validate(root)
    except CodecError:
        raise
    except Exception as exc:  # the hook's own error type, whatever it is, becomes ours
        raise CodecError(f"epp: refused by schema validation: {exc}") from exc


def token(element: etree._Element) -> str:
    """The element's text as an XML Schema token (whitespace collapsed); no child elements."""
    return " ".join(raw_text(element).split())


def raw_text(element: etree._Element) -> str:
    if len(element):
        raise CodecError(f"{show(element.tag)}: must hold text, not {show(element[0].tag)}")
    return element.text or ""


def attribute(element: etree._Element, name: str, default: str | None = None) -> str:
    value = element.get(name)
    if value is None:
        if default is None:
            raise CodecError(f"{show(element.tag)}: the {name} attribute is required")
        return default
    return " ".join(value.split())


def boolean(text: str, element: str) -> bool:
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise CodecError(f"{element}: {_shown(text)} is not a boolean")


def integer(text: str, element: str, *, minimum: int, maximum: int | None) -> int:
    if not text.isascii() or not text.isdigit():
        raise CodecError(f"{element}: {_shown(text)} is not a whole number")
    value = int(text)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"{minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
        raise CodecError(f"{element}: must be {bound}, not {value}")
    return value


def only_child(parent: etree._Element) -> etree._Element:
    children = list(parent)
    if len(children) != 1:
        found = ", ".join(show(child.tag) for child in children) or "nothing"
        raise CodecError(f"{show(parent.tag)}: must hold exactly one element, found {found}")
    return children[0]


class Children:
    """An element's children, read in schema order; anything out of place is refused, naming
    the element, as an XSD `sequence` would refuse it."""

    def __init__(self, parent: etree._Element) -> None:
        self._parent = parent
        self._items = list(parent)
        self._position = 0

    def _next_is(self, tag: str) -> bool:
        return self._position < len(self._items) and self._items[self._position].tag == tag

    def optional(self, tag: str) -> etree._Element | None:
        if not self._next_is(tag):
            return None
        self._position += 1
        return self._items[self._position - 1]

    def one(self, tag: str) -> etree._Element:
        element = self.optional(tag)
        if element is None:
            found = (f", found {show(self._items[self._position].tag)}"
                     if self._position < len(self._items) else "")
            raise CodecError(f"{show(self._parent.tag)}: {show(tag)} is missing{found}")
        return element

    def many(self, tag: str, *, minimum: int = 0,
             maximum: int | None = None) -> list[etree._Element]:
        found: list[etree._Element] = []
        while (element := self.optional(tag)) is not None:
            found.append(element)
        if len(found) < minimum:
            if not found:
                self.one(tag)  # raises, naming what stands in its place
            raise CodecError(f"{show(self._parent.tag)}: at least {minimum} {show(tag)}, "
                             f"not {len(found)}")
        if maximum is not None and len(found) > maximum:
            raise CodecError(f"{show(self._parent.tag)}: at most {maximum} {show(tag)}, "
                             f"not {len(found)}")
        return found

    def rest(self) -> list[etree._Element]:
        found = self._items[self._position:]
        self._position = len(self._items)
        return found

    def end(self) -> None:
        if self._position < len(self._items):
            raise CodecError(f"{show(self._parent.tag)}: unexpected element "
                             f"{show(self._items[self._position].tag)}")


# --- shared element shapes -------------------------------------------------------------------

def write_statuses(parent: etree._Element, namespace: str, statuses: Iterable[Status]) -> None:
    for status in statuses:
        attributes = {"s": status.value}
        if status.lang != "en":
            attributes["lang"] = status.lang
        add(parent, namespace, "status", status.reason or None, attributes)


def read_status(element: etree._Element) -> Status:
    return Status(value=attribute(element, "s"), reason=" ".join(raw_text(element).split()),
                  lang=attribute(element, "lang", "en"))


def write_auth_info(parent: etree._Element, namespace: str, secret: Secret) -> None:
    info = add(parent, namespace, "authInfo")
    add(info, namespace, "pw", secret.reveal())


def read_auth_info(element: etree._Element, namespace: str) -> Secret:
    """A `<pw>` authInfo; the `ext` form is refused (2102) where only passwords are carried."""
    found = read_any_auth_info(element, namespace)
    if isinstance(found, RawElement):
        raise UnimplementedOption(f"{show(element.tag)}: only {show(qualified(namespace, 'pw'))}"
                                  f" is supported, not {show(qualified(namespace, 'ext'))}")
    return found


def read_any_auth_info(element: etree._Element, namespace: str) -> Secret | RawElement:
    """An authInfo of either form (RFC 5730 eppcom): a password, or the one element of
    another namespace that an `<ext>` holds, kept whole (and masked in `repr`)."""
    child = only_child(element)
    if child.tag == qualified(namespace, "pw"):
        return Secret(raw_text(child))
    if child.tag == qualified(namespace, "ext"):
        return check_ext_auth_info(RawElement.of(only_child(child)), namespace)
    raise CodecError(f"{show(element.tag)}: expected {show(qualified(namespace, 'pw'))} or "
                     f"{show(qualified(namespace, 'ext'))}, found {show(child.tag)}")


def write_any_auth_info(parent: etree._Element, namespace: str,
                        value: Secret | RawElement) -> None:
    if isinstance(value, Secret):
        write_auth_info(parent, namespace, value)
        return
    info = add(parent, namespace, "authInfo")
    add(info, namespace, "ext").append(value.to_element())


def check_ext_auth_info(value: object, namespace: str) -> RawElement:
    """An `<ext>` authInfo's content: one element of a namespace other than the object's own
    (eppcom extAuthInfoType, `##other`)."""
    element = f"{PREFIXES.get(namespace, 'epp')}:ext"
    if not isinstance(value, RawElement):
        raise CodecError(f"{element}: must be a RawElement")
    if value.namespace is None or value.namespace == namespace:
        raise CodecError(f"{element}: needs an element of another namespace, not "
                         f"{show(value.tag)}")
    return value


def check_nameserver_forms(names: tuple[str, ...], attributes: tuple[HostAttribute, ...],
                           element: str = "domain:ns") -> None:
    """Names and attributes are the two forms of `<domain:ns>`; one document uses one."""
    for name in names:
        check_domain_name(name, "domain:hostObj")
    for attribute_set in attributes:
        if not isinstance(attribute_set, HostAttribute):
            raise CodecError("domain:hostAttr: must be a HostAttribute")
    if names and attributes:
        raise CodecError(f"{element}: domain:hostObj and domain:hostAttr exclude each other; "
                         "a document names host objects or gives host attributes")


def write_nameservers(parent: etree._Element, names: Iterable[str],
                      attributes: Iterable[HostAttribute] = ()) -> None:
    """`<domain:ns>` in the form that has values; nothing when neither has any."""
    names, attributes = tuple(names), tuple(attributes)
    if not (names or attributes):
        return
    ns = add(parent, DOMAIN_NS, "ns")
    for name in names:
        add(ns, DOMAIN_NS, "hostObj", name)
    for host in attributes:
        element = add(ns, DOMAIN_NS, "hostAttr")
        add(element, DOMAIN_NS, "hostName", host.name)
        for address in host.addresses:
            add(element, DOMAIN_NS, "hostAddr", str(address), {"ip": f"v{address.version}"})


def read_nameservers(element: etree._Element | None
                     ) -> tuple[tuple[str, ...], tuple[HostAttribute, ...]]:
    """(host object names, host attributes) from `<domain:ns>`: one of the two is empty."""
    if element is None:
        return (), ()
    children = Children(element)
    names = children.many(qualified(DOMAIN_NS, "hostObj"))
    if names:
        children.end()
        return tuple(token(name) for name in names), ()
    hosts = children.many(qualified(DOMAIN_NS, "hostAttr"))
    if not hosts:
        raise CodecError("domain:ns: at least one domain:hostObj or domain:hostAttr is "
                         "required")
    children.end()
    return (), tuple(_read_host_attribute(host) for host in hosts)


def _read_host_attribute(element: etree._Element) -> HostAttribute:
    children = Children(element)
    name = token(children.one(qualified(DOMAIN_NS, "hostName")))
    addresses = children.many(qualified(DOMAIN_NS, "hostAddr"))
    children.end()
    return HostAttribute(name, tuple(read_address(address, "domain:hostAddr")
                                     for address in addresses))


def write_contacts(parent: etree._Element, contacts: Iterable[DomainContact]) -> None:
    for contact in contacts:
        add(parent, DOMAIN_NS, "contact", contact.id, {"type": contact.type})


def read_contact(element: etree._Element) -> DomainContact:
    kind = choose(attribute(element, "type"), CONTACT_TYPES, "domain:contact type")
    return DomainContact(type=kind, id=token(element))


def write_address(parent: etree._Element, address: HostAddress) -> None:
    add(parent, HOST_NS, "addr", str(address), {"ip": f"v{address.version}"})


def read_address(element: etree._Element, name: str = "host:addr") -> HostAddress:
    version = attribute(element, "ip", "v4")
    text = token(element)
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise CodecError(f"{name}: {_shown(text)} is not an IP address") from None
    if version not in ("v4", "v6") or f"v{address.version}" != version:
        raise CodecError(f"{name}: {_shown(text)} does not match ip={_shown(version)}")
    return address


def write_postal_info(parent: etree._Element, info: PostalInfo) -> None:
    element = add(parent, CONTACT_NS, "postalInfo", attributes={"type": info.type})
    add(element, CONTACT_NS, "name", info.name)
    add_optional(element, CONTACT_NS, "org", info.org)
    address = add(element, CONTACT_NS, "addr")
    for line in info.street:
        add(address, CONTACT_NS, "street", line)
    add(address, CONTACT_NS, "city", info.city)
    add_optional(address, CONTACT_NS, "sp", info.sp)
    add_optional(address, CONTACT_NS, "pc", info.pc)
    add(address, CONTACT_NS, "cc", info.cc)


def read_postal_info(element: etree._Element) -> PostalInfo:
    kind = choose(attribute(element, "type"), POSTAL_TYPES, "contact:postalInfo type")
    children = Children(element)
    name = postal_line(children.one(qualified(CONTACT_NS, "name")))
    org = children.optional(qualified(CONTACT_NS, "org"))
    street, city, sp, pc, cc = read_postal_address(children.one(qualified(CONTACT_NS, "addr")))
    children.end()
    return PostalInfo(type=kind, name=name, org=None if org is None else postal_line(org),
                      street=street, city=city, sp=sp, pc=pc, cc=cc)


def read_postal_address(element: etree._Element
                        ) -> tuple[tuple[str, ...], str, str | None, str | None, str]:
    """(street lines, city, sp, pc, cc) of a `<contact:addr>`."""
    address = Children(element)
    street = tuple(postal_line(line) for line in address.many(
        qualified(CONTACT_NS, "street"), maximum=MAX_STREET_LINES))
    city = postal_line(address.one(qualified(CONTACT_NS, "city")))
    sp = address.optional(qualified(CONTACT_NS, "sp"))
    pc = address.optional(qualified(CONTACT_NS, "pc"))
    cc = token(address.one(qualified(CONTACT_NS, "cc")))
    address.end()
    return (street, city, None if sp is None else postal_line(sp),
            None if pc is None else token(pc), cc)


def postal_line(element: etree._Element) -> str:
    """A normalizedString: line breaks and tabs become spaces; leading and trailing spaces go."""
    return re.sub(r"[\r\n\t]", " ", raw_text(element)).strip()


def write_phone(parent: etree._Element, local: str, phone: Phone | None) -> None:
    if phone is not None:
        attributes = {"x": phone.extension} if phone.extension is not None else None
        add(parent, CONTACT_NS, local, phone.number, attributes)


def read_phone(element: etree._Element | None) -> Phone | None:
    if element is None:
        return None
    number = token(element)
    extension = element.get("x")
    return Phone(number, None if extension is None else " ".join(extension.split()))


def write_disclose(parent: etree._Element, disclose: Disclose | None) -> None:
    if disclose is None:
        return
    element = add(parent, CONTACT_NS, "disclose",
                  attributes={"flag": "1" if disclose.flag else "0"})
    for name in disclose.fields:
        local, _, kind = name.partition(":")
        add(element, CONTACT_NS, local, attributes={"type": kind} if kind else None)


def read_disclose(element: etree._Element | None) -> Disclose | None:
    if element is None:
        return None
    flag = boolean(attribute(element, "flag"), "contact:disclose flag")
    fields: list[str] = []
    for child in element:
        name = etree.QName(child.tag)
        if name.namespace != CONTACT_NS:
            raise CodecError(f"contact:disclose: unexpected element {show(child.tag)}")
        kind = child.get("type")
        fields.append(f"{name.localname}:{kind}" if kind else name.localname)
    groups = [name.partition(":")[0] for name in fields]
    if groups != sorted(groups, key=_DISCLOSE_GROUPS.index):
        raise CodecError("contact:disclose: fields out of schema order")
    return Disclose(flag=flag, fields=tuple(fields))


_DISCLOSE_GROUPS = ["name", "org", "addr", "voice", "fax", "email"]


def check_ds(record: object, element: str = "secDNS:dsData") -> DsRecord:
    """A DS record as RFC 5910 dsDataType carries it. The DS policy (algorithms, digest
    lengths) is `rules/ds.py`'s business; this checks the wire ranges only."""
    if not isinstance(record, DsRecord):
        raise CodecError(f"{element}: must be a DsRecord")
    for name, value, maximum in (("keyTag", record.key_tag, 65535),
                                 ("alg", record.algorithm, 255),
                                 ("digestType", record.digest_type, 255)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
            raise CodecError(f"secDNS:{name}: must be 0 to {maximum}, not {_shown(value)}")
    digest = record.digest
    if not isinstance(digest, str) or not digest or len(digest) % 2 \
            or not all(ch in string.hexdigits for ch in digest):
        raise CodecError(f"secDNS:digest: {_shown(digest)} is not hexadecimal")
    return record


def write_ds_or_key(parent: etree._Element, records: Iterable[DsRecord],
                    max_sig_life: int | None, keys: Iterable[KeyData] = ()) -> None:
    """RFC 5910 dsOrKeyType: DS data or key data, whichever has values."""
    if max_sig_life is not None:
        add(parent, SECDNS_NS, "maxSigLife", str(max_sig_life))
    write_ds_data(parent, records)
    write_key_data(parent, keys)


def write_key_data(parent: etree._Element, keys: Iterable[KeyData]) -> None:
    for key in keys:
        data = add(parent, SECDNS_NS, "keyData")
        add(data, SECDNS_NS, "flags", str(key.flags))
        add(data, SECDNS_NS, "protocol", str(key.protocol))
        add(data, SECDNS_NS, "alg", str(key.algorithm))
        add(data, SECDNS_NS, "pubKey", key.public_key)


def check_dnssec_interface(records: tuple[DsRecord, ...], keys: tuple[KeyData, ...],
                           element: str) -> None:
    """RFC 5910 section 4: a document uses the DS data interface or the key data interface."""
    for key in keys:
        if not isinstance(key, KeyData):
            raise CodecError("secDNS:keyData: must be a KeyData")
    if records and keys:
        raise CodecError(f"{element}: secDNS:dsData and secDNS:keyData exclude each other "
                         "(RFC 5910 section 4: one interface per document)")


def write_ds_data(parent: etree._Element, records: Iterable[DsRecord]) -> None:
    for record in records:
        data = add(parent, SECDNS_NS, "dsData")
        add(data, SECDNS_NS, "keyTag", str(record.key_tag))
        add(data, SECDNS_NS, "alg", str(record.algorithm))
        add(data, SECDNS_NS, "digestType", str(record.digest_type))
        add(data, SECDNS_NS, "digest", record.digest)


def read_ds_or_key(element: etree._Element
                   ) -> tuple[tuple[DsRecord, ...], tuple[KeyData, ...], int | None]:
    """(DS records, keys, maxSigLife) from RFC 5910 dsOrKeyType: one of the first two is
    empty."""
    children = Children(element)
    life = children.optional(qualified(SECDNS_NS, "maxSigLife"))
    records, keys = read_ds_or_key_data(children, element)
    children.end()
    return records, keys, None if life is None else check_max_sig_life(
        integer(token(life), "secDNS:maxSigLife", minimum=1, maximum=None))


def read_ds_or_key_data(children: Children, parent: etree._Element
                        ) -> tuple[tuple[DsRecord, ...], tuple[KeyData, ...]]:
    """DS data or key data, whichever comes, at least one element of it."""
    found = children.many(qualified(SECDNS_NS, "dsData"))
    if found:
        return tuple(_read_ds(data) for data in found), ()
    keys = children.many(qualified(SECDNS_NS, "keyData"))
    if not keys:
        raise CodecError(f"{show(parent.tag)}: at least one secDNS:dsData or secDNS:keyData "
                         "is required")
    return (), tuple(_read_key(key) for key in keys)


def _read_key(element: etree._Element) -> KeyData:
    children = Children(element)
    flags = integer(token(children.one(qualified(SECDNS_NS, "flags"))), "secDNS:flags",
                    minimum=0, maximum=65535)
    protocol = integer(token(children.one(qualified(SECDNS_NS, "protocol"))),
                       "secDNS:protocol", minimum=0, maximum=255)
    algorithm = integer(token(children.one(qualified(SECDNS_NS, "alg"))), "secDNS:alg",
                        minimum=0, maximum=255)
    public_key = "".join(raw_text(children.one(qualified(SECDNS_NS, "pubKey"))).split())
    children.end()
    return KeyData(flags, protocol, algorithm, public_key)


def _read_ds(element: etree._Element) -> DsRecord:
    children = Children(element)
    key_tag = integer(token(children.one(qualified(SECDNS_NS, "keyTag"))), "secDNS:keyTag",
                      minimum=0, maximum=65535)
    algorithm = integer(token(children.one(qualified(SECDNS_NS, "alg"))), "secDNS:alg",
                        minimum=0, maximum=255)
    digest_type = integer(token(children.one(qualified(SECDNS_NS, "digestType"))),
                          "secDNS:digestType", minimum=0, maximum=255)
    digest = token(children.one(qualified(SECDNS_NS, "digest"))).lower()
    if children.optional(qualified(SECDNS_NS, "keyData")) is not None:
        raise UnimplementedOption("secDNS:dsData: a secDNS:keyData inside DS data "
                                  "is not supported")
    children.end()
    return check_ds(DsRecord(key_tag=key_tag, algorithm=algorithm, digest_type=digest_type,
                             digest=digest))


def check_max_sig_life(value: int | None) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or value < 1 or value > 2**31 - 1):
        raise CodecError(f"secDNS:maxSigLife: must be a positive number of seconds, "
                         f"not {_shown(value)}")
    return value
