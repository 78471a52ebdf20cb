"""EPP commands: one immutable class per command, each writing and reading its own XML, so the
client (`build_command`) and the sandbox registry (`parse_command`) share one definition.

A command is checked when it is built (lengths, enumerations, counts of the RFC schemas), on
both sides: a client never sends what the schema refuses, and a server gets the same checks
on what it parses. Names travel as A-labels; turning what a person typed into one is
`rules/names.py`'s job. Passwords and authorization codes are `Secret`s, masked in `repr`.

Supported: hello; login, logout, poll; domain check, info, create, update, delete, renew,
transfer (nameservers as host objects or host attributes, authInfo as a password or an `ext`
element); host check, create, info, update, delete; contact check, create, info, update,
delete, transfer. Extensions: secDNS-1.1 create and update (DS data or key data interface),
rgp-1.0 restore request and restore report. Any other extension element is kept as a
`RawElement`; a command this module does not carry (host transfer) is refused with
`UnimplementedCommand`.
"""

from __future__ import annotations

import ipaddress
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import ClassVar, Literal, Self, TypeVar

from lxml import etree

from regshield.registry.codec import (
    CONTACT_NS,
    CONTACT_STATUSES,
    DOMAIN_NS,
    EPP_VERSION,
    EXTENSION_URIS,
    HOST_NS,
    HOST_STATUSES,
    MAX_DOMAIN_STATUSES,
    MAX_OBJECT_STATUSES,
    MAX_POSTAL_INFO,
    OBJECT_URIS,
    PERIOD_UNITS,
    POSTAL_TYPES,
    PREFIXES,
    RGP_NS,
    SECDNS_NS,
    Children,
    CodecError,
    Disclose,
    DomainContact,
    HostAddress,
    HostAttribute,
    KeyData,
    Period,
    Phone,
    PostalInfo,
    PostalType,
    RawElement,
    Secret,
    Status,
    UnimplementedCommand,
    UnimplementedObjectService,
    UnimplementedOption,
    UnknownCommand,
    Validator,
    add,
    attribute,
    boolean,
    check_client_id,
    check_dnssec_interface,
    check_domain_name,
    check_ds,
    check_ext_auth_info,
    check_max_sig_life,
    check_nameserver_forms,
    check_secret,
    check_statuses,
    check_token,
    check_transaction_id,
    choose,
    format_date,
    format_datetime,
    integer,
    load,
    new_cl_trid,
    new_document,
    only_child,
    parse_date,
    parse_datetime,
    postal_line,
    qualified,
    raw_text,
    read_address,
    read_any_auth_info,
    read_auth_info,
    read_contact,
    read_disclose,
    read_ds_or_key,
    read_ds_or_key_data,
    read_nameservers,
    read_phone,
    read_postal_address,
    read_postal_info,
    read_status,
    serialize,
    show,
    token,
    write_address,
    write_any_auth_info,
    write_auth_info,
    write_contacts,
    write_disclose,
    write_ds_data,
    write_ds_or_key,
    write_key_data,
    write_nameservers,
    write_phone,
    write_postal_info,
    write_statuses,
)
from regshield.registry.xml import EPP_NS
from regshield.rules.ds import DsRecord
from regshield.rules.statuses import ALL_STATUSES

TransferOp = Literal["request", "approve", "reject", "cancel", "query"]
HostsFilter = Literal["all", "del", "none", "sub"]
PollOp = Literal["req", "ack"]
TRANSFER_OPS: tuple[TransferOp, ...] = ("request", "approve", "reject", "cancel", "query")
HOSTS_FILTERS: tuple[HostsFilter, ...] = ("all", "del", "none", "sub")
POLL_OPS: tuple[PollOp, ...] = ("req", "ack")
LOGIN_PASSWORD_LENGTH = (6, 16)  # RFC 5730 pwType
_VERBS = ("check", "create", "delete", "info", "login", "logout", "poll", "renew", "transfer",
          "update")


class Command(ABC):
    """The body of one `<command>`: the verb element and what it holds."""

    verb: ClassVar[str]
    namespace: ClassVar[str | None] = None  # the object mapping, None for session commands

    @property
    def object_type(self) -> str | None:
        """`domain`, `host`, `contact`, or None for login, logout and poll."""
        return None if self.namespace is None else PREFIXES[self.namespace]

    @abstractmethod
    def write(self, verb: etree._Element) -> None:
        """Fill the `<verb>` element (attributes and children)."""

    @classmethod
    @abstractmethod
    def read(cls, verb: etree._Element) -> Self:
        """The command from its `<verb>` element."""

    def _object(self, verb: etree._Element) -> etree._Element:
        assert self.namespace is not None
        return add(verb, self.namespace, self.verb, declare=True)

    @classmethod
    def _object_children(cls, verb: etree._Element) -> Children:
        assert cls.namespace is not None
        element = only_child(verb)
        if element.tag != qualified(cls.namespace, cls.verb):
            raise CodecError(f"{show(verb.tag)}: expected "
                             f"{show(qualified(cls.namespace, cls.verb))}, "
                             f"found {show(element.tag)}")
        return Children(element)


@dataclass(frozen=True)
class Hello:
    """`<hello/>`: asks the server for a greeting; not a command, carries no clTRID."""

    verb: ClassVar[str] = "hello"
    namespace: ClassVar[str | None] = None
    object_type: ClassVar[str | None] = None


# --- session commands ------------------------------------------------------------------------

@dataclass(frozen=True)
class Login(Command):
    verb = "login"

    client_id: str
    password: Secret
    object_uris: tuple[str, ...] = OBJECT_URIS
    extension_uris: tuple[str, ...] = EXTENSION_URIS
    new_password: Secret | None = None
    version: str = EPP_VERSION
    lang: str = "en"

    def __post_init__(self) -> None:
        object.__setattr__(self, "object_uris", tuple(self.object_uris))
        object.__setattr__(self, "extension_uris", tuple(self.extension_uris))
        low, high = LOGIN_PASSWORD_LENGTH
        check_client_id(self.client_id, "epp:clID")
        check_secret(self.password, "epp:pw", minimum=low, maximum=high)
        if self.new_password is not None:
            check_secret(self.new_password, "epp:newPW", minimum=low, maximum=high)
        choose(self.version, (EPP_VERSION,), "epp:version")
        check_token(self.lang, "epp:lang", minimum=1, maximum=35)
        if not self.object_uris:
            raise CodecError("epp:svcs: at least one epp:objURI is required")
        for uri in (*self.object_uris, *self.extension_uris):
            check_token(uri, "epp:objURI", minimum=1, maximum=None)

    def write(self, verb: etree._Element) -> None:
        add(verb, EPP_NS, "clID", self.client_id)
        add(verb, EPP_NS, "pw", self.password.reveal())
        if self.new_password is not None:
            add(verb, EPP_NS, "newPW", self.new_password.reveal())
        options = add(verb, EPP_NS, "options")
        add(options, EPP_NS, "version", self.version)
        add(options, EPP_NS, "lang", self.lang)
        services = add(verb, EPP_NS, "svcs")
        for uri in self.object_uris:
            add(services, EPP_NS, "objURI", uri)
        if self.extension_uris:
            extensions = add(services, EPP_NS, "svcExtension")
            for uri in self.extension_uris:
                add(extensions, EPP_NS, "extURI", uri)

    @classmethod
    def read(cls, verb: etree._Element) -> Self:
        children = Children(verb)
        client_id = token(children.one(qualified(EPP_NS, "clID")))
        password = Secret(token(children.one(qualified(EPP_NS, "pw"))))
        new = children.optional(qualified(EPP_NS, "newPW"))
        options = Children(children.one(qualified(EPP_NS, "options")))
        version = token(options.one(qualified(EPP_NS, "version")))
        lang = token(options.one(qualified(EPP_NS, "lang")))
        options.end()
        services = Children(children.one(qualified(EPP_NS, "svcs")))
        children.end()
        object_uris = [token(uri) for uri in
                       services.many(qualified(EPP_NS, "objURI"), minimum=1)]
        extension_uris: list[str] = []
        extensions = services.optional(qualified(EPP_NS, "svcExtension"))
        services.end()
        if extensions is not None:
            listed = Children(extensions)
            extension_uris = [token(uri) for uri in
                              listed.many(qualified(EPP_NS, "extURI"), minimum=1)]
            listed.end()
        return cls(client_id=client_id, password=password,
                   new_password=None if new is None else Secret(token(new)),
                   version=version, lang=lang, object_uris=tuple(object_uris),
                   extension_uris=tuple(extension_uris))


@dataclass(frozen=True)
class Logout(Command):
    verb = "logout"

    def write(self, verb: etree._Element) -> None:
        pass

    @classmethod
    def read(cls, verb: etree._Element) -> Self:
        Children(verb).end()
        return cls()


@dataclass(frozen=True)
class Poll(Command):
    """`<poll op="req"/>` asks for the oldest message; `op="ack"` dequeues one by id."""

    verb = "poll"

    op: PollOp = "req"
    message_id: str | None = None

    def __post_init__(self) -> None:
        choose(self.op, POLL_OPS, "epp:poll op")
        if self.op == "ack":
            check_token(self.message_id, "epp:poll msgID", minimum=1, maximum=None)
        elif self.message_id is not None:
            raise CodecError("epp:poll: a request (op=req) takes no msgID")

    @classmethod
    def request(cls) -> Poll:
        return cls("req")

    @classmethod
    def acknowledge(cls, message_id: str) -> Poll:
        return cls("ack", message_id)

    def write(self, verb: etree._Element) -> None:
        verb.set("op", self.op)
        if self.message_id is not None:
            verb.set("msgID", self.message_id)

    @classmethod
    def read(cls, verb: etree._Element) -> Self:
        Children(verb).end()
        op = choose(attribute(verb, "op"), POLL_OPS, "epp:poll op")
        message_id = verb.get("msgID")
        return cls(op, None if message_id is None else " ".join(message_id.split()))


# --- domain commands (RFC 5731) --------------------------------------------------------------

def _name(children: Children, namespace: str) -> str:
    return token(children.one(qualified(namespace, "name")))


def _period(element: etree._Element | None) -> Period | None:
    if element is None:
        return None
    unit = choose(attribute(element, "unit"), PERIOD_UNITS, "domain:period unit")
    return Period(integer(token(element), "domain:period", minimum=1, maximum=99), unit)


def _write_period(parent: etree._Element, period: Period | None) -> None:
    if period is not None:
        add(parent, DOMAIN_NS, "period", str(period.value), {"unit": period.unit})


def _optional_auth(children: Children, namespace: str) -> Secret | None:
    element = children.optional(qualified(namespace, "authInfo"))
    return None if element is None else read_auth_info(element, namespace)


def _optional_any_auth(children: Children, namespace: str
                       ) -> tuple[Secret | None, RawElement | None]:
    """(password, ext element) of an optional authInfo; at most one is set."""
    element = children.optional(qualified(namespace, "authInfo"))
    return _split_auth(None if element is None else read_any_auth_info(element, namespace))


def _split_auth(value: Secret | RawElement | None) -> tuple[Secret | None, RawElement | None]:
    if isinstance(value, RawElement):
        return None, value
    return value, None


def _check_auth(password: Secret | None, ext: RawElement | None, namespace: str, *,
                required: bool) -> None:
    """A password or an `ext` element, never both; `required` when the schema asks for one."""
    prefix = PREFIXES[namespace]
    if password is not None:
        check_secret(password, f"{prefix}:authInfo")
    if ext is not None:
        check_ext_auth_info(ext, namespace)
    if password is not None and ext is not None:
        raise CodecError(f"{prefix}:authInfo: {prefix}:pw and {prefix}:ext exclude each other")
    if required and password is None and ext is None:
        raise CodecError(f"{prefix}:authInfo: a {prefix}:pw or a {prefix}:ext is required")


def _write_optional_auth(parent: etree._Element, namespace: str, password: Secret | None,
                         ext: RawElement | None) -> None:
    value = password if password is not None else ext
    if value is not None:
        write_any_auth_info(parent, namespace, value)


@dataclass(frozen=True)
class DomainCheck(Command):
    verb = "check"
    namespace = DOMAIN_NS

    names: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(self.names))
        if not self.names:
            raise CodecError("domain:check: at least one domain:name is required")
        for name in self.names:
            check_domain_name(name)

    def write(self, verb: etree._Element) -> None:
        element = self._object(verb)
        for name in self.names:
            add(element, DOMAIN_NS, "name", name)

    @classmethod
    def read(cls, verb: etree._Element) -> Self:
        children = cls._object_children(verb)
        names = children.many(qualified(DOMAIN_NS, "name"), minimum=1)
        children.end()
        return cls(tuple(token(name) for name in names))


@dataclass(frozen=True)
class DomainInfo(Command):
    """An info; the authInfo (a password, or an `ext` element) proves the right to see a
    domain another registrar sponsors."""

    verb = "info"
    namespace = DOMAIN_NS

    name: str
    hosts: HostsFilter = "all"
    auth_info: Secret | None = None
    auth_info_ext: RawElement | None = None

    def __post_init__(self) -> None:
        check_domain_name(self.name)
        choose(self.hosts, HOSTS_FILTERS, "domain:name hosts")
        _check_auth(self.auth_info, self.auth_info_ext, DOMAIN_NS, required=False)

    def write(self, verb: etree._Element) -> None:
        element = self._object(verb)
        add(element, DOMAIN_NS, "name", self.name, {"hosts": self.hosts})
        _write_optional_auth(element, DOMAIN_NS, self.auth_info, self.auth_info_ext)

    @classmethod
    def read(cls, verb: etree._Element) -> Self:
        children = cls._object_children(verb)
        name = children.one(qualified(DOMAIN_NS, "name"))
        auth, ext = _optional_any_auth(children, DOMAIN_NS)
        children.end()
        hosts = choose(attribute(name, "hosts", "all"), HOSTS_FILTERS, "domain:name hosts")
        return cls(token(name), hosts, auth, ext)


@dataclass(frozen=True)
class DomainCreate(Command):
    """A new domain. Nameservers are host object names (`nameservers`) or host attributes
    (`host_attributes`), not both; the authInfo is a password (RFC 9154: an empty one when no
    code is set) or an `ext` element, exactly one of the two."""

    verb = "create"
    namespace = DOMAIN_NS

    name: str
    auth_info: Secret | None = None
    period: Period | None = None
    nameservers: tuple[str, ...] = ()
    registrant: str | None = None
    contacts: tuple[DomainContact, ...] = ()
    host_attributes: tuple[HostAttribute, ...] = ()
    auth_info_ext: RawElement | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "nameservers", tuple(self.nameservers))
        object.__setattr__(self, "host_attributes", tuple(self.host_attributes))
        object.__setattr__(self, "contacts", tuple(self.contacts))
        check_domain_name(self.name)
        _check_auth(self.auth_info, self.auth_info_ext, DOMAIN_NS, required=True)
        check_nameserver_forms(self.nameservers, self.host_attributes)
        if self.registrant is not None:
            check_client_id(self.registrant, "domain:registrant")

    def write(self, verb: etree._Element) -> None:
        element = self._object(verb)
        add(element, DOMAIN_NS, "name", self.name)
        _write_period(element, self.period)
        write_nameservers(element, self.nameservers, self.host_attributes)
        if self.registrant is not None:
            add(element, DOMAIN_NS, "registrant", self.registrant)
        write_contacts(element, self.contacts)
        _write_optional_auth(element, DOMAIN_NS, self.auth_info, self.auth_info_ext)

    @classmethod
    def read(cls, verb: etree._Element) -> Self:
        children = cls._object_children(verb)
        name = _name(children, DOMAIN_NS)
        period = _period(children.optional(qualified(DOMAIN_NS, "period")))
        names, attributes = read_nameservers(children.optional(qualified(DOMAIN_NS, "ns")))
        registrant = children.optional(qualified(DOMAIN_NS, "registrant"))
        contacts = children.many(qualified(DOMAIN_NS, "contact"))
        auth, ext = _split_auth(read_any_auth_info(
            children.one(qualified(DOMAIN_NS, "authInfo")), DOMAIN_NS))
        children.end()
        return cls(name=name, auth_info=auth, period=period, nameservers=names,
                   registrant=None if registrant is None else token(registrant),
                   contacts=tuple(read_contact(contact) for contact in contacts),
                   host_attributes=attributes, auth_info_ext=ext)


@dataclass(frozen=True)
class DomainChanges:
    """What one `<domain:add>` or `<domain:rem>` names. Nameservers are host object names or
    host attributes, not both."""

    nameservers: tuple[str, ...] = ()
    contacts: tuple[DomainContact, ...] = ()
    statuses: tuple[Status, ...] = ()
    host_attributes: tuple[HostAttribute, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "nameservers", tuple(self.nameservers))
        object.__setattr__(self, "host_attributes", tuple(self.host_attributes))
        object.__setattr__(self, "contacts", tuple(self.contacts))
        check_nameserver_forms(self.nameservers, self.host_attributes)
        object.__setattr__(self, "statuses", check_statuses(
            self.statuses, ALL_STATUSES, "domain:status", minimum=0,
            maximum=MAX_DOMAIN_STATUSES))

    @property
    def is_empty(self) -> bool:
        return not (self.nameservers or self.host_attributes or self.contacts or self.statuses)

    def write(self, parent: etree._Element, local: str) -> None:
        if self.is_empty:
            return
        element = add(parent, DOMAIN_NS, local)
        write_nameservers(element, self.nameservers, self.host_attributes)
        write_contacts(element, self.contacts)
        write_statuses(element, DOMAIN_NS, self.statuses)

    @classmethod
    def read(cls, element: etree._Element | None) -> DomainChanges:
        if element is None:
            return cls()
        children = Children(element)
        names, attributes = read_nameservers(children.optional(qualified(DOMAIN_NS, "ns")))
        contacts = children.many(qualified(DOMAIN_NS, "contact"))
        statuses = children.many(qualified(DOMAIN_NS, "status"))
        children.end()
        return cls(nameservers=names,
                   contacts=tuple(read_contact(contact) for contact in contacts),
                   statuses=tuple(read_status(status) for status in statuses),
                   host_attributes=attributes)


@dataclass(frozen=True)
class DomainUpdate(Command):
    """A domain update. With nothing to add, remove or change, it carries an empty
    `<domain:chg/>`, as the RGP restore request (RFC 3915 section 4.2.5) is written.

    `remove_auth_info` unsets the authInfo: written as `<domain:null/>` (RFC 5731); read from
    that or from an empty `<domain:pw/>` (RFC 9154 section 4.2), so an empty password given
    here means the same removal. A new authInfo is a password or an `ext` element."""

    verb = "update"
    namespace = DOMAIN_NS

    name: str
    add: DomainChanges = field(default_factory=DomainChanges)
    remove: DomainChanges = field(default_factory=DomainChanges)
    registrant: str | None = None
    auth_info: Secret | None = None
    auth_info_ext: RawElement | None = None
    remove_auth_info: bool = False

    def __post_init__(self) -> None:
        check_domain_name(self.name)
        if self.registrant is not None:
            check_client_id(self.registrant, "domain:registrant")
        _check_auth(self.auth_info, self.auth_info_ext, DOMAIN_NS, required=False)
        if self.auth_info is not None and not self.auth_info.reveal():
            object.__setattr__(self, "auth_info", None)
            object.__setattr__(self, "remove_auth_info", True)
        if self.remove_auth_info and (self.auth_info is not None
                                      or self.auth_info_ext is not None):
            raise CodecError("domain:authInfo: a new authInfo and its removal (domain:null) "
                             "exclude each other")
        uses_names = bool(self.add.nameservers or self.remove.nameservers)
        uses_attributes = bool(self.add.host_attributes or self.remove.host_attributes)
        if uses_names and uses_attributes:
            raise CodecError("domain:ns: domain:hostObj and domain:hostAttr exclude each "
                             "other; an update uses one form in domain:add and domain:rem")

    @property
    def changes_auth_info(self) -> bool:
        return self.auth_info is not None or self.auth_info_ext is not None \
            or self.remove_auth_info

    def write(self, verb: etree._Element) -> None:
        element = self._object(verb)
        add(element, DOMAIN_NS, "name", self.name)
        self.add.write(element, "add")
        self.remove.write(element, "rem")
        if self.registrant is not None or self.changes_auth_info \
                or (self.add.is_empty and self.remove.is_empty):
            change = add(element, DOMAIN_NS, "chg")
            if self.registrant is not None:
                add(change, DOMAIN_NS, "registrant", self.registrant)
            if self.remove_auth_info:
                add(add(change, DOMAIN_NS, "authInfo"), DOMAIN_NS, "null")
            _write_optional_auth(change, DOMAIN_NS, self.auth_info, self.auth_info_ext)

    @classmethod
    def read(cls, verb: etree._Element) -> Self:
        children = cls._object_children(verb)
        name = _name(children, DOMAIN_NS)
        added = DomainChanges.read(children.optional(qualified(DOMAIN_NS, "add")))
        removed = DomainChanges.read(children.optional(qualified(DOMAIN_NS, "rem")))
        change = children.optional(qualified(DOMAIN_NS, "chg"))
        children.end()
        registrant: str | None = None
        auth: Secret | None = None
        ext: RawElement | None = None
        remove_auth = False
        if change is not None:
            changed = Children(change)
            found = changed.optional(qualified(DOMAIN_NS, "registrant"))
            registrant = None if found is None else token(found)
            info = changed.optional(qualified(DOMAIN_NS, "authInfo"))
            changed.end()
            if info is not None:
                if only_child(info).tag == qualified(DOMAIN_NS, "null"):
                    Children(only_child(info)).end()
                    remove_auth = True
                else:
                    auth, ext = _split_auth(read_any_auth_info(info, DOMAIN_NS))
        return cls(name=name, add=added, remove=removed, registrant=registrant, auth_info=auth,
                   auth_info_ext=ext, remove_auth_info=remove_auth)


@dataclass(frozen=True)
class DomainDelete(Command):
    verb = "delete"
    namespace = DOMAIN_NS

    name: str

    def __post_init__(self) -> None:
        check_domain_name(self.name)

    def write(self, verb: etree._Element) -> None:
        add(self._object(verb), DOMAIN_NS, "name", self.name)

    @classmethod
    def read(cls, verb: etree._Element) -> Self:
        children = cls._object_children(verb)
        name = _name(children, DOMAIN_NS)
        children.end()
        return cls(name)


@dataclass(frozen=True)
class DomainRenew(Command):
    """A renewal; `current_expiry` is the expiry date the registry holds now, which makes a
    retried renewal fail instead of renewing twice."""

    verb = "renew"
    namespace = DOMAIN_NS

    name: str
    current_expiry: date
    period: Period | None = None

    def __post_init__(self) -> None:
        check_domain_name(self.name)
        format_date(self.current_expiry, "domain:curExpDate")

    def write(self, verb: etree._Element) -> None:
        element = self._object(verb)
        add(element, DOMAIN_NS, "name", self.name)
        add(element, DOMAIN_NS, "curExpDate",
            format_date(self.current_expiry, "domain:curExpDate"))
        _write_period(element, self.period)

    @classmethod
    def read(cls, verb: etree._Element) -> Self:
        children = cls._object_children(verb)
        name = _name(children, DOMAIN_NS)
        expiry = parse_date(token(children.one(qualified(DOMAIN_NS, "curExpDate"))),
                            "domain:curExpDate")
        period = _period(children.optional(qualified(DOMAIN_NS, "period")))
        children.end()
        return cls(name, expiry, period)


@dataclass(frozen=True)
class DomainTransfer(Command):
    """`op` goes on the `<transfer>` element; the authInfo (a password, or an `ext` element)
    proves the registrant's consent."""

    verb = "transfer"
    namespace = DOMAIN_NS

    name: str
    op: TransferOp = "request"
    period: Period | None = None
    auth_info: Secret | None = None
    auth_info_ext: RawElement | None = None

    def __post_init__(self) -> None:
        check_domain_name(self.name)
        choose(self.op, TRANSFER_OPS, "epp:transfer op")
        _check_auth(self.auth_info, self.auth_info_ext, DOMAIN_NS, required=False)

    def write(self, verb: etree._Element) -> None:
        verb.set("op", self.op)
        element = self._object(verb)
        add(element, DOMAIN_NS, "name", self.name)
        _write_period(element, self.period)
        _write_optional_auth(element, DOMAIN_NS, self.auth_info, self.auth_info_ext)

    @classmethod
    def read(cls, verb: etree._Element) -> Self:
        op = choose(attribute(verb, "op"), TRANSFER_OPS, "epp:transfer op")
        children = cls._object_children(verb)
        name = _name(children, DOMAIN_NS)
        period = _period(children.optional(qualified(DOMAIN_NS, "period")))
        auth, ext = _optional_any_auth(children, DOMAIN_NS)
        children.end()
        return cls(name, op, period, auth, ext)


# --- host commands (RFC 5732) ----------------------------------------------------------------

@dataclass(frozen=True)
class HostCheck(Command):
    verb = "check"
    namespace = HOST_NS

    names: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(self.names))
        if not self.names:
            raise CodecError("host:check: at least one host:name is required")
        for name in self.names:
            check_domain_name(name, "host:name")

    def write(self, verb: etree._Element) -> None:
        element = self._object(verb)
        for name in self.names:
            add(element, HOST_NS, "name", name)

    @classmethod
    def read(cls, verb: etree._Element) -> Self:
        children = cls._object_children(verb)
        names = children.many(qualified(HOST_NS, "name"), minimum=1)
        children.end()
        return cls(tuple(token(name) for name in names))


@dataclass(frozen=True)
class HostCreate(Command):
    """A host object; addresses (glue) are needed only for hosts inside the registry's
    zones."""

    verb = "create"
    namespace = HOST_NS

    name: str
    addresses: tuple[HostAddress, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "addresses", tuple(self.addresses))
        check_domain_name(self.name, "host:name")
        _check_addresses(self.addresses)

    def write(self, verb: etree._Element) -> None:
        element = self._object(verb)
        add(element, HOST_NS, "name", self.name)
        for address in self.addresses:
            write_address(element, address)

    @classmethod
    def read(cls, verb: etree._Element) -> Self:
        children = cls._object_children(verb)
        name = _name(children, HOST_NS)
        addresses = children.many(qualified(HOST_NS, "addr"))
        children.end()
        return cls(name, tuple(read_address(address) for address in addresses))


def _check_addresses(addresses: tuple[HostAddress, ...]) -> None:
    for address in addresses:
        if not isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
            raise CodecError(f"host:addr: {str(address)[:40]!r} is not an IP address")


@dataclass(frozen=True)
class _HostByName(Command):
    namespace = HOST_NS

    name: str

    def __post_init__(self) -> None:
        check_domain_name(self.name, "host:name")

    def write(self, verb: etree._Element) -> None:
        add(self._object(verb), HOST_NS, "name", self.name)

    @classmethod
    def read(cls, verb: etree._Element) -> Self:
        children = cls._object_children(verb)
        name = _name(children, HOST_NS)
        children.end()
        return cls(name)


@dataclass(frozen=True)
class HostInfo(_HostByName):
    verb = "info"


@dataclass(frozen=True)
class HostDelete(_HostByName):
    verb = "delete"


@dataclass(frozen=True)
class HostChanges:
    """What one `<host:add>` or `<host:rem>` names: addresses and statuses."""

    addresses: tuple[HostAddress, ...] = ()
    statuses: tuple[Status, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "addresses", tuple(self.addresses))
        _check_addresses(self.addresses)
        object.__setattr__(self, "statuses", check_statuses(
            self.statuses, HOST_STATUSES, "host:status", minimum=0,
            maximum=MAX_OBJECT_STATUSES))

    @property
    def is_empty(self) -> bool:
        return not (self.addresses or self.statuses)

    def write(self, parent: etree._Element, local: str) -> None:
        if self.is_empty:
            return
        element = add(parent, HOST_NS, local)
        for address in self.addresses:
            write_address(element, address)
        write_statuses(element, HOST_NS, self.statuses)

    @classmethod
    def read(cls, element: etree._Element | None) -> HostChanges:
        if element is None:
            return cls()
        children = Children(element)
        addresses = children.many(qualified(HOST_NS, "addr"))
        statuses = children.many(qualified(HOST_NS, "status"))
        children.end()
        return cls(tuple(read_address(address) for address in addresses),
                   tuple(read_status(status) for status in statuses))


@dataclass(frozen=True)
class HostUpdate(Command):
    """A host update (RFC 5732 section 3.2.5): addresses and statuses added or removed, and a
    new name (`new_name`, the `<host:chg>`)."""

    verb = "update"
    namespace = HOST_NS

    name: str
    add: HostChanges = field(default_factory=HostChanges)
    remove: HostChanges = field(default_factory=HostChanges)
    new_name: str | None = None

    def __post_init__(self) -> None:
        check_domain_name(self.name, "host:name")
        if self.new_name is not None:
            check_domain_name(self.new_name, "host:chg name")

    def write(self, verb: etree._Element) -> None:
        element = self._object(verb)
        add(element, HOST_NS, "name", self.name)
        self.add.write(element, "add")
        self.remove.write(element, "rem")
        if self.new_name is not None:
            add(add(element, HOST_NS, "chg"), HOST_NS, "name", self.new_name)

    @classmethod
    def read(cls, verb: etree._Element) -> Self:
        children = cls._object_children(verb)
        name = _name(children, HOST_NS)
        added = HostChanges.read(children.optional(qualified(HOST_NS, "add")))
        removed = HostChanges.read(children.optional(qualified(HOST_NS, "rem")))
        change = children.optional(qualified(HOST_NS, "chg"))
        children.end()
        new_name: str | None = None
        if change is not None:
            changed = Children(change)
            new_name = _name(changed, HOST_NS)
            changed.end()
        return cls(name, added, removed, new_name)


# --- contact commands (RFC 5733) -------------------------------------------------------------

@dataclass(frozen=True)
class ContactCheck(Command):
    verb = "check"
    namespace = CONTACT_NS

    ids: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", tuple(self.ids))
        if not self.ids:
            raise CodecError("contact:check: at least one contact:id is required")
        for contact_id in self.ids:
            check_client_id(contact_id, "contact:id")

    def write(self, verb: etree._Element) -> None:
        element = self._object(verb)
        for contact_id in self.ids:
            add(element, CONTACT_NS, "id", contact_id)

    @classmethod
    def read(cls, verb: etree._Element) -> Self:
        children = cls._object_children(verb)
        ids = children.many(qualified(CONTACT_NS, "id"), minimum=1)
        children.end()
        return cls(tuple(token(contact_id) for contact_id in ids))


@dataclass(frozen=True)
class ContactCreate(Command):
    verb = "create"
    namespace = CONTACT_NS

    id: str
    postal_info: tuple[PostalInfo, ...]
    email: str
    auth_info: Secret
    voice: Phone | None = None
    fax: Phone | None = None
    disclose: Disclose | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "postal_info", tuple(self.postal_info))
        check_client_id(self.id, "contact:id")
        kinds = [info.type for info in self.postal_info]
        if not 1 <= len(kinds) <= MAX_POSTAL_INFO or len(set(kinds)) != len(kinds):
            raise CodecError("contact:postalInfo: one or two, at most one of each type "
                             "(int, loc)")
        check_token(self.email, "contact:email", minimum=1, maximum=None)
        check_secret(self.auth_info, "contact:authInfo")

    def write(self, verb: etree._Element) -> None:
        element = self._object(verb)
        add(element, CONTACT_NS, "id", self.id)
        for info in self.postal_info:
            write_postal_info(element, info)
        write_phone(element, "voice", self.voice)
        write_phone(element, "fax", self.fax)
        add(element, CONTACT_NS, "email", self.email)
        write_auth_info(element, CONTACT_NS, self.auth_info)
        write_disclose(element, self.disclose)

    @classmethod
    def read(cls, verb: etree._Element) -> Self:
        children = cls._object_children(verb)
        contact_id = token(children.one(qualified(CONTACT_NS, "id")))
        postal = children.many(qualified(CONTACT_NS, "postalInfo"), minimum=1,
                               maximum=MAX_POSTAL_INFO)
        voice = read_phone(children.optional(qualified(CONTACT_NS, "voice")))
        fax = read_phone(children.optional(qualified(CONTACT_NS, "fax")))
        email = token(children.one(qualified(CONTACT_NS, "email")))
        auth = read_auth_info(children.one(qualified(CONTACT_NS, "authInfo")), CONTACT_NS)
        disclose = read_disclose(children.optional(qualified(CONTACT_NS, "disclose")))
        children.end()
        return cls(id=contact_id, postal_info=tuple(read_postal_info(p) for p in postal),
                   email=email, auth_info=auth, voice=voice, fax=fax, disclose=disclose)


@dataclass(frozen=True)
class _ContactByIdWithAuth(Command):
    namespace = CONTACT_NS

    id: str
    auth_info: Secret | None = None

    def __post_init__(self) -> None:
        check_client_id(self.id, "contact:id")
        if self.auth_info is not None:
            check_secret(self.auth_info, "contact:authInfo")

    def write(self, verb: etree._Element) -> None:
        element = self._object(verb)
        add(element, CONTACT_NS, "id", self.id)
        if self.auth_info is not None:
            write_auth_info(element, CONTACT_NS, self.auth_info)

    @classmethod
    def _read_fields(cls, verb: etree._Element) -> tuple[str, Secret | None]:
        children = cls._object_children(verb)
        contact_id = token(children.one(qualified(CONTACT_NS, "id")))
        auth = _optional_auth(children, CONTACT_NS)
        children.end()
        return contact_id, auth


@dataclass(frozen=True)
class ContactInfo(_ContactByIdWithAuth):
    verb = "info"

    @classmethod
    def read(cls, verb: etree._Element) -> Self:
        contact_id, auth = cls._read_fields(verb)
        return cls(contact_id, auth)


@dataclass(frozen=True)
class ContactTransfer(_ContactByIdWithAuth):
    """A contact transfer (RFC 5733 section 3.2.4); `op` goes on the `<transfer>` element and
    the authInfo proves the contact's consent."""

    verb = "transfer"

    op: TransferOp = "request"

    def __post_init__(self) -> None:
        super().__post_init__()
        choose(self.op, TRANSFER_OPS, "epp:transfer op")

    def write(self, verb: etree._Element) -> None:
        verb.set("op", self.op)
        super().write(verb)

    @classmethod
    def read(cls, verb: etree._Element) -> Self:
        op = choose(attribute(verb, "op"), TRANSFER_OPS, "epp:transfer op")
        contact_id, auth = cls._read_fields(verb)
        return cls(contact_id, auth, op)


@dataclass(frozen=True)
class ContactDelete(Command):
    verb = "delete"
    namespace = CONTACT_NS

    id: str

    def __post_init__(self) -> None:
        check_client_id(self.id, "contact:id")

    def write(self, verb: etree._Element) -> None:
        add(self._object(verb), CONTACT_NS, "id", self.id)

    @classmethod
    def read(cls, verb: etree._Element) -> Self:
        children = cls._object_children(verb)
        contact_id = token(children.one(qualified(CONTACT_NS, "id")))
        children.end()
        return cls(contact_id)


@dataclass(frozen=True)
class PostalInfoChange:
    """One `<contact:postalInfo>` of a contact update's `<chg>` (RFC 5733 chgPostalInfoType):
    every part is optional, but an address is given whole (street lines, city, sp, pc, cc),
    replacing the one held. An empty `org` removes the organization."""

    type: PostalType
    name: str | None = None
    org: str | None = None
    street: tuple[str, ...] = ()
    city: str | None = None
    sp: str | None = None
    pc: str | None = None
    cc: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "street", tuple(self.street))
        choose(self.type, POSTAL_TYPES, "contact:postalInfo type")
        if self.name is None and self.org is None and not self.changes_address:
            raise CodecError("contact:postalInfo: a change names contact:name, contact:org or "
                             "contact:addr")
        if self.changes_address and (self.city is None or self.cc is None):
            raise CodecError("contact:addr: a changed address needs contact:city and "
                             "contact:cc")
        # The checks of a full postal info (line lengths, the ASCII-only "int" form, the
        # country code) apply to what is given; placeholders stand in for what is not.
        PostalInfo(self.type, self.name if self.name is not None else "-",
                   self.city if self.city is not None else "-",
                   self.cc if self.cc is not None else "XX", org=self.org or None,
                   street=self.street, sp=self.sp, pc=self.pc)

    @property
    def changes_address(self) -> bool:
        return bool(self.street) or any(value is not None for value in
                                        (self.city, self.sp, self.pc, self.cc))

    def write(self, parent: etree._Element) -> None:
        element = add(parent, CONTACT_NS, "postalInfo", attributes={"type": self.type})
        if self.name is not None:
            add(element, CONTACT_NS, "name", self.name)
        if self.org is not None:
            add(element, CONTACT_NS, "org", self.org)
        if self.changes_address:
            address = add(element, CONTACT_NS, "addr")
            for line in self.street:
                add(address, CONTACT_NS, "street", line)
            add(address, CONTACT_NS, "city", self.city)
            if self.sp is not None:
                add(address, CONTACT_NS, "sp", self.sp)
            if self.pc is not None:
                add(address, CONTACT_NS, "pc", self.pc)
            add(address, CONTACT_NS, "cc", self.cc)

    @classmethod
    def read(cls, element: etree._Element) -> PostalInfoChange:
        kind = choose(attribute(element, "type"), POSTAL_TYPES, "contact:postalInfo type")
        children = Children(element)
        name = children.optional(qualified(CONTACT_NS, "name"))
        org = children.optional(qualified(CONTACT_NS, "org"))
        address = children.optional(qualified(CONTACT_NS, "addr"))
        children.end()
        street: tuple[str, ...] = ()
        city = sp = pc = cc = None
        if address is not None:
            street, city, sp, pc, cc = read_postal_address(address)
        return cls(kind, name=None if name is None else postal_line(name),
                   org=None if org is None else postal_line(org), street=street, city=city,
                   sp=sp, pc=pc, cc=cc)


@dataclass(frozen=True)
class ContactUpdate(Command):
    """A contact update (RFC 5733 section 3.2.5): statuses added or removed, and what `<chg>`
    replaces (postal info, voice, fax, email, authInfo, disclosure)."""

    verb = "update"
    namespace = CONTACT_NS

    id: str
    add: tuple[Status, ...] = ()
    remove: tuple[Status, ...] = ()
    postal_info: tuple[PostalInfoChange, ...] = ()
    voice: Phone | None = None
    fax: Phone | None = None
    email: str | None = None
    auth_info: Secret | None = None
    disclose: Disclose | None = None

    def __post_init__(self) -> None:
        check_client_id(self.id, "contact:id")
        for name in ("add", "remove"):
            object.__setattr__(self, name, check_statuses(
                getattr(self, name), CONTACT_STATUSES, "contact:status", minimum=0,
                maximum=MAX_OBJECT_STATUSES))
        object.__setattr__(self, "postal_info", tuple(self.postal_info))
        kinds = [info.type for info in self.postal_info]
        if len(set(kinds)) != len(kinds):
            raise CodecError("contact:postalInfo: at most one change of each type (int, loc)")
        if self.email is not None:
            check_token(self.email, "contact:email", minimum=1, maximum=None)
        if self.auth_info is not None:
            check_secret(self.auth_info, "contact:authInfo")

    @property
    def changes(self) -> bool:
        """Whether there is anything for `<contact:chg>`."""
        return bool(self.postal_info) or any(value is not None for value in (
            self.voice, self.fax, self.email, self.auth_info, self.disclose))

    def write(self, verb: etree._Element) -> None:
        element = self._object(verb)
        add(element, CONTACT_NS, "id", self.id)
        for local, statuses in (("add", self.add), ("rem", self.remove)):
            if statuses:
                write_statuses(add(element, CONTACT_NS, local), CONTACT_NS, statuses)
        if self.changes:
            change = add(element, CONTACT_NS, "chg")
            for info in self.postal_info:
                info.write(change)
            write_phone(change, "voice", self.voice)
            write_phone(change, "fax", self.fax)
            if self.email is not None:
                add(change, CONTACT_NS, "email", self.email)
            if self.auth_info is not None:
                write_auth_info(change, CONTACT_NS, self.auth_info)
            write_disclose(change, self.disclose)

    @classmethod
    def read(cls, verb: etree._Element) -> Self:
        children = cls._object_children(verb)
        contact_id = token(children.one(qualified(CONTACT_NS, "id")))
        added = _contact_statuses(children.optional(qualified(CONTACT_NS, "add")))
        removed = _contact_statuses(children.optional(qualified(CONTACT_NS, "rem")))
        change = children.optional(qualified(CONTACT_NS, "chg"))
        children.end()
        if change is None:
            return cls(contact_id, added, removed)
        changed = Children(change)
        postal = changed.many(qualified(CONTACT_NS, "postalInfo"), maximum=MAX_POSTAL_INFO)
        voice = read_phone(changed.optional(qualified(CONTACT_NS, "voice")))
        fax = read_phone(changed.optional(qualified(CONTACT_NS, "fax")))
        email = changed.optional(qualified(CONTACT_NS, "email"))
        auth = _optional_auth(changed, CONTACT_NS)
        disclose = read_disclose(changed.optional(qualified(CONTACT_NS, "disclose")))
        changed.end()
        return cls(contact_id, added, removed,
                   tuple(PostalInfoChange.read(info) for info in postal), voice, fax,
                   None if email is None else token(email), auth, disclose)


def _contact_statuses(element: etree._Element | None) -> tuple[Status, ...]:
    if element is None:
        return ()
    children = Children(element)
    statuses = children.many(qualified(CONTACT_NS, "status"), minimum=1,
                             maximum=MAX_OBJECT_STATUSES)
    children.end()
    return tuple(read_status(status) for status in statuses)


# --- command extensions ----------------------------------------------------------------------

class CommandExtension(ABC):
    """One element of a command's `<extension>`, and the commands it may extend."""

    tag: ClassVar[str]
    extends: ClassVar[tuple[type[Command], ...]]

    @abstractmethod
    def write(self, extension: etree._Element) -> None:
        """Append this extension's element to `<extension>`."""

    @classmethod
    @abstractmethod
    def read(cls, element: etree._Element) -> Self:
        """The extension from its element."""

    @classmethod
    def matches(cls, element: etree._Element) -> bool:
        """Whether `element` (of this class's tag) is this extension; two classes share a tag
        when an attribute tells them apart (rgp:update's restore op)."""
        return True


@dataclass(frozen=True)
class SecDnsCreate(CommandExtension):
    """DNSSEC data for a new domain (RFC 5910 section 5.2.1): DS records (`ds`) or keys
    (`keys`, the key data interface), exactly one of the two."""

    tag = qualified(SECDNS_NS, "create")
    extends = (DomainCreate,)

    ds: tuple[DsRecord, ...] = ()
    max_sig_life: int | None = None
    keys: tuple[KeyData, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "ds", tuple(check_ds(record) for record in self.ds))
        object.__setattr__(self, "keys", tuple(self.keys))
        check_dnssec_interface(self.ds, self.keys, "secDNS:create")
        if not (self.ds or self.keys):
            raise CodecError("secDNS:create: at least one secDNS:dsData or secDNS:keyData is "
                             "required")
        check_max_sig_life(self.max_sig_life)

    def write(self, extension: etree._Element) -> None:
        write_ds_or_key(add(extension, SECDNS_NS, "create", declare=True), self.ds,
                        self.max_sig_life, self.keys)

    @classmethod
    def read(cls, element: etree._Element) -> Self:
        records, keys, life = read_ds_or_key(element)
        return cls(records, life, keys)


@dataclass(frozen=True)
class SecDnsUpdate(CommandExtension):
    """DNSSEC changes to a domain (RFC 5910 section 5.2.5): removals first, as the schema
    orders them; `remove_all` drops every record (and takes no list). DS records (`add`,
    `remove`) and keys (`add_keys`, `remove_keys`) are the two interfaces: one update uses
    one."""

    tag = qualified(SECDNS_NS, "update")
    extends = (DomainUpdate,)

    add: tuple[DsRecord, ...] = ()
    remove: tuple[DsRecord, ...] = ()
    remove_all: bool = False
    max_sig_life: int | None = None
    urgent: bool = False
    add_keys: tuple[KeyData, ...] = ()
    remove_keys: tuple[KeyData, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "add", tuple(check_ds(record) for record in self.add))
        object.__setattr__(self, "remove", tuple(check_ds(record) for record in self.remove))
        object.__setattr__(self, "add_keys", tuple(self.add_keys))
        object.__setattr__(self, "remove_keys", tuple(self.remove_keys))
        check_dnssec_interface((*self.add, *self.remove), (*self.add_keys, *self.remove_keys),
                               "secDNS:update")
        if self.remove_all and (self.remove or self.remove_keys):
            raise CodecError("secDNS:rem: secDNS:all and a list of records exclude each other")
        if not (self.add or self.remove or self.add_keys or self.remove_keys
                or self.remove_all or self.max_sig_life is not None):
            raise CodecError("secDNS:update: nothing to add, remove or change")
        check_max_sig_life(self.max_sig_life)

    def write(self, extension: etree._Element) -> None:
        element = add(extension, SECDNS_NS, "update", declare=True,
                      attributes={"urgent": "true"} if self.urgent else None)
        if self.remove_all or self.remove or self.remove_keys:
            removed = add(element, SECDNS_NS, "rem")
            if self.remove_all:
                add(removed, SECDNS_NS, "all", "true")
            write_ds_data(removed, self.remove)
            write_key_data(removed, self.remove_keys)
        if self.add or self.add_keys:
            write_ds_or_key(add(element, SECDNS_NS, "add"), self.add, None, self.add_keys)
        if self.max_sig_life is not None:
            change = add(element, SECDNS_NS, "chg")
            add(change, SECDNS_NS, "maxSigLife", str(self.max_sig_life))

    @classmethod
    def read(cls, element: etree._Element) -> Self:
        urgent = boolean(attribute(element, "urgent", "false"), "secDNS:update urgent")
        children = Children(element)
        removed = children.optional(qualified(SECDNS_NS, "rem"))
        added = children.optional(qualified(SECDNS_NS, "add"))
        change = children.optional(qualified(SECDNS_NS, "chg"))
        children.end()
        remove_all = False
        remove: tuple[DsRecord, ...] = ()
        remove_keys: tuple[KeyData, ...] = ()
        if removed is not None:
            listed = Children(removed)
            everything = listed.optional(qualified(SECDNS_NS, "all"))
            if everything is not None:
                remove_all = boolean(token(everything), "secDNS:all")
                if not remove_all:
                    raise CodecError("secDNS:all: false removes nothing; leave secDNS:rem out")
            else:
                remove, remove_keys = read_ds_or_key_data(listed, removed)
            listed.end()
        add_records: tuple[DsRecord, ...] = ()
        add_keys: tuple[KeyData, ...] = ()
        if added is not None:
            add_records, add_keys, life = read_ds_or_key(added)
            if life is not None:
                raise CodecError("secDNS:add: secDNS:maxSigLife belongs in secDNS:chg")
        max_sig_life: int | None = None
        if change is not None:
            changed = Children(change)
            life_element = changed.optional(qualified(SECDNS_NS, "maxSigLife"))
            changed.end()
            if life_element is not None:
                max_sig_life = integer(token(life_element), "secDNS:maxSigLife", minimum=1,
                                       maximum=None)
        return cls(add=add_records, remove=remove, remove_all=remove_all,
                   max_sig_life=max_sig_life, urgent=urgent, add_keys=add_keys,
                   remove_keys=remove_keys)


def _restore_op(element: etree._Element) -> str | None:
    restore = element.find(qualified(RGP_NS, "restore"))
    return None if restore is None else restore.get("op")


@dataclass(frozen=True)
class RgpRestoreRequest(CommandExtension):
    """Asks to restore a deleted domain in its redemption period (RFC 3915 section 4.2.5)."""

    tag = qualified(RGP_NS, "update")
    extends = (DomainUpdate,)

    @classmethod
    def matches(cls, element: etree._Element) -> bool:
        return _restore_op(element) == "request"

    def write(self, extension: etree._Element) -> None:
        update = add(extension, RGP_NS, "update", declare=True)
        add(update, RGP_NS, "restore", attributes={"op": "request"})

    @classmethod
    def read(cls, element: etree._Element) -> Self:
        children = Children(element)
        restore = children.one(qualified(RGP_NS, "restore"))
        children.end()
        op = attribute(restore, "op")
        if op != "request":
            raise CodecError(f"rgp:restore: op must be request or report, not {op[:16]!r}")
        Children(restore).end()
        return cls()


RESTORE_STATEMENTS = 2  # RFC 3915 section 4.2.5


@dataclass(frozen=True)
class RgpRestoreReport(CommandExtension):
    """The restore report that follows a restore request (RFC 3915 section 4.2.5): the
    registration data before the deletion and after the restore, when the domain was deleted
    and restored, why, the registrar's two statements, and anything else it adds.

    The data and statements are text (the RFC's examples are); markup inside them is refused
    (2102), never dropped. `lang` is the language of the reason and the statements."""

    tag = qualified(RGP_NS, "update")
    extends = (DomainUpdate,)

    pre_data: str
    post_data: str
    deleted: datetime
    restored: datetime
    reason: str
    statements: tuple[str, ...]
    other: str | None = None
    lang: str = "en"

    def __post_init__(self) -> None:
        object.__setattr__(self, "statements", tuple(self.statements))
        for text, element in ((self.pre_data, "rgp:preData"), (self.post_data, "rgp:postData"),
                              (self.reason, "rgp:resReason"),
                              *((statement, "rgp:statement") for statement in self.statements)):
            _check_report_text(text, element)
        if self.other is not None:
            _check_report_text(self.other, "rgp:other")
        if len(self.statements) != RESTORE_STATEMENTS:
            raise CodecError(f"rgp:statement: the report carries exactly {RESTORE_STATEMENTS} "
                             f"statements, not {len(self.statements)}")
        format_datetime(self.deleted, "rgp:delTime")
        format_datetime(self.restored, "rgp:resTime")
        check_token(self.lang, "rgp:resReason lang", minimum=1, maximum=35)

    @classmethod
    def matches(cls, element: etree._Element) -> bool:
        return _restore_op(element) == "report"

    def write(self, extension: etree._Element) -> None:
        update = add(extension, RGP_NS, "update", declare=True)
        report = add(add(update, RGP_NS, "restore", attributes={"op": "report"}), RGP_NS,
                     "report")
        lang = None if self.lang == "en" else {"lang": self.lang}
        add(report, RGP_NS, "preData", self.pre_data)
        add(report, RGP_NS, "postData", self.post_data)
        add(report, RGP_NS, "delTime", format_datetime(self.deleted, "rgp:delTime"))
        add(report, RGP_NS, "resTime", format_datetime(self.restored, "rgp:resTime"))
        add(report, RGP_NS, "resReason", self.reason, lang)
        for statement in self.statements:
            add(report, RGP_NS, "statement", statement, lang)
        if self.other is not None:
            add(report, RGP_NS, "other", self.other)

    @classmethod
    def read(cls, element: etree._Element) -> Self:
        children = Children(element)
        restore = children.one(qualified(RGP_NS, "restore"))
        children.end()
        if attribute(restore, "op") != "report":
            raise CodecError("rgp:restore: a restore report has op=report")
        parts = Children(restore)
        report = Children(parts.one(qualified(RGP_NS, "report")))
        parts.end()
        pre_data = _report_text(report.one(qualified(RGP_NS, "preData")))
        post_data = _report_text(report.one(qualified(RGP_NS, "postData")))
        deleted = parse_datetime(token(report.one(qualified(RGP_NS, "delTime"))),
                                 "rgp:delTime")
        restored = parse_datetime(token(report.one(qualified(RGP_NS, "resTime"))),
                                  "rgp:resTime")
        reason = report.one(qualified(RGP_NS, "resReason"))
        statements = report.many(qualified(RGP_NS, "statement"), minimum=1, maximum=2)
        other = report.optional(qualified(RGP_NS, "other"))
        report.end()
        return cls(pre_data=pre_data, post_data=post_data, deleted=deleted, restored=restored,
                   reason=_report_text(reason),
                   statements=tuple(_report_text(statement) for statement in statements),
                   other=None if other is None else _report_text(other),
                   lang=attribute(reason, "lang", "en"))


def _check_report_text(value: object, element: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise CodecError(f"{element}: text is required")


def _report_text(element: etree._Element) -> str:
    """A report's free text (RFC 3915 mixedType), its surrounding whitespace dropped."""
    if len(element):
        raise UnimplementedOption(f"{show(element.tag)}: markup ({show(element[0].tag)}) "
                                  "is not supported; send text")
    return raw_text(element).strip()


# --- documents -------------------------------------------------------------------------------

Extension = CommandExtension | RawElement
E = TypeVar("E", bound=CommandExtension)

_COMMANDS: dict[tuple[str, str | None], type[Command]] = {
    (kind.verb, kind.namespace): kind for kind in (
        Login, Logout, Poll, DomainCheck, DomainInfo, DomainCreate, DomainUpdate, DomainDelete,
        DomainRenew, DomainTransfer, HostCheck, HostCreate, HostInfo, HostUpdate, HostDelete,
        ContactCheck, ContactCreate, ContactInfo, ContactUpdate, ContactDelete,
        ContactTransfer,
    )
}
# By tag; where two classes share one, the first whose `matches` accepts the element reads it
# (and the first reads, and refuses, an element that none accepts).
_EXTENSIONS: dict[str, tuple[type[CommandExtension], ...]] = {}
for _kind in (SecDnsCreate, SecDnsUpdate, RgpRestoreRequest, RgpRestoreReport):
    _EXTENSIONS[_kind.tag] = (*_EXTENSIONS.get(_kind.tag, ()), _kind)


@dataclass(frozen=True)
class EppCommand:
    """A parsed client document: the command, its extensions and its clTRID."""

    body: Command | Hello
    extensions: tuple[Extension, ...] = ()
    cl_trid: str | None = None

    @property
    def command(self) -> str:
        """The verb: `hello`, `login`, `create`, `transfer`, ..."""
        return self.body.verb

    @property
    def object_type(self) -> str | None:
        return self.body.object_type

    def extension(self, kind: type[E]) -> E | None:
        """The extension of that type, or None."""
        for extension in self.extensions:
            if isinstance(extension, kind):
                return extension
        return None


def build_hello(*, validate: Validator | None = None) -> bytes:
    root = new_document()
    add(root, EPP_NS, "hello")
    return serialize(root, validate)


def build_command(body: Command, *, extensions: Sequence[Extension] = (),
                  cl_trid: str | None = None, validate: Validator | None = None) -> bytes:
    """The command document. Without a `cl_trid`, a fresh one is generated; a client that
    tracks its transactions makes one with `new_cl_trid()` and passes it.

    Raises CodecError, also for a value XML 1.0 cannot carry (lxml's ValueError: a control
    character): nothing was sent."""
    root = new_document()
    command = add(root, EPP_NS, "command")
    verb = add(command, EPP_NS, body.verb)
    try:
        body.write(verb)
        if extensions:
            element = add(command, EPP_NS, "extension")
            for extension in extensions:
                if isinstance(extension, RawElement):
                    element.append(extension.to_element())
                else:
                    _check_extends(extension, body)
                    extension.write(element)
    except ValueError as exc:  # lxml refuses the text; the value itself is never shown
        raise CodecError(f"{body.object_type or 'epp'}:{body.verb}: a value cannot be "
                         f"carried in XML ({exc})") from None
    add(command, EPP_NS, "clTRID",
        check_transaction_id(cl_trid if cl_trid is not None else new_cl_trid(), "epp:clTRID"))
    return serialize(root, validate)


def parse_command(data: bytes, *, validate: Validator | None = None) -> EppCommand:
    """A client's document as the server sees it: `<hello/>` or one `<command>`."""
    top = only_child(load(data, validate))
    if top.tag == qualified(EPP_NS, "hello"):
        if len(top) or (top.text or "").strip():
            raise CodecError("epp:hello: must be empty")
        return EppCommand(Hello())
    if top.tag != qualified(EPP_NS, "command"):
        raise CodecError(f"epp: expected epp:hello or epp:command, found {show(top.tag)}")
    children = list(top)
    if not children:
        raise CodecError("epp:command: the command element is missing")
    body = _read_body(children[0])
    rest = Children(top)
    rest.one(children[0].tag)  # the verb, read above
    extension_element = rest.optional(qualified(EPP_NS, "extension"))
    cl_trid_element = rest.optional(qualified(EPP_NS, "clTRID"))
    rest.end()
    extensions: list[Extension] = []
    if extension_element is not None:
        for element in extension_element:
            kinds = _EXTENSIONS.get(element.tag)
            if kinds is None:
                extensions.append(RawElement.of(element))
                continue
            kind = next((kind for kind in kinds if kind.matches(element)), kinds[0])
            extension = kind.read(element)
            _check_extends(extension, body)
            extensions.append(extension)
    cl_trid = None if cl_trid_element is None else check_transaction_id(
        token(cl_trid_element), "epp:clTRID")
    return EppCommand(body, tuple(extensions), cl_trid)


def _read_body(verb: etree._Element) -> Command:
    name = etree.QName(verb.tag)
    if name.namespace != EPP_NS or name.localname not in _VERBS:
        raise UnknownCommand(f"epp:command: {show(verb.tag)} is not an EPP command")
    if name.localname in ("login", "logout", "poll"):
        return _COMMANDS[(name.localname, None)].read(verb)
    namespace = etree.QName(only_child(verb).tag).namespace
    if namespace not in OBJECT_URIS:
        raise UnimplementedObjectService(
            f"{show(verb.tag)}: objects of {namespace or 'no namespace'} are not served")
    kind = _COMMANDS.get((name.localname, namespace))
    if kind is None:
        raise UnimplementedCommand(f"{show(verb.tag)}: "
                                   f"{PREFIXES[namespace]}:{name.localname} is not supported")
    return kind.read(verb)


def _check_extends(extension: CommandExtension, body: Command) -> None:
    if not isinstance(body, extension.extends):
        raise CodecError(f"{show(extension.tag)}: does not extend "
                         f"{body.object_type or 'epp'}:{body.verb}")


__all__ = [
    "RESTORE_STATEMENTS", "Command", "CommandExtension", "ContactCheck", "ContactCreate",
    "ContactDelete", "ContactInfo", "ContactTransfer", "ContactUpdate", "DomainChanges",
    "DomainCheck", "DomainCreate", "DomainDelete", "DomainInfo", "DomainRenew",
    "DomainTransfer", "DomainUpdate", "EppCommand", "Extension", "Hello", "HostChanges",
    "HostCheck", "HostCreate", "HostDelete", "HostInfo", "HostUpdate", "HostsFilter", "Login",
    "Logout", "Poll", "PostalInfoChange", "RgpRestoreReport", "RgpRestoreRequest",
    "SecDnsCreate", "SecDnsUpdate", "TransferOp", "build_command", "build_hello",
    "parse_command",
]
