"""EPP commands: one immutable class per command, each writing and reading its own XML, so the
client (`build_command`) and the sandbox registry (`parse_command`) share one definition.

A command is checked when it is built (lengths, enumerations, counts of the RFC schemas), on
both sides: a client never sends what the schema refuses, and a server gets the same checks
on what it parses. Names travel as A-labels; turning what a person typed into one is
`rules/names.py`'s job. Passwords and authorization codes are `Secret`s, masked in `repr`.

Supported: hello; login, logout, poll; domain check, info, create, update, delete, renew,
transfer; host create, info, delete; contact create, info. Extensions: secDNS-1.1 create and
update (DS data interface), rgp-1.0 restore request. Any other extension element is kept as a
`RawElement`; a command this module does not carry is refused with `UnimplementedCommand`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import ClassVar, Literal, Self, TypeVar

from lxml import etree

from regshield.registry.codec import (
    CONTACT_NS,
    DOMAIN_NS,
    EPP_VERSION,
    EXTENSION_URIS,
    HOST_NS,
    MAX_DOMAIN_STATUSES,
    MAX_POSTAL_INFO,
    OBJECT_URIS,
    PERIOD_UNITS,
    PREFIXES,
    RGP_NS,
    SECDNS_NS,
    Children,
    CodecError,
    Disclose,
    DomainContact,
    HostAddress,
    Period,
    Phone,
    PostalInfo,
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
    check_domain_name,
    check_ds,
    check_max_sig_life,
    check_secret,
    check_statuses,
    check_token,
    check_transaction_id,
    choose,
    format_date,
    integer,
    load,
    new_cl_trid,
    new_document,
    only_child,
    parse_date,
    qualified,
    read_address,
    read_auth_info,
    read_contact,
    read_disclose,
    read_ds_data,
    read_ds_or_key,
    read_host_objects,
    read_phone,
    read_postal_info,
    read_status,
    serialize,
    show,
    token,
    write_address,
    write_auth_info,
    write_contacts,
    write_disclose,
    write_ds_data,
    write_ds_or_key,
    write_host_objects,
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
    verb = "info"
    namespace = DOMAIN_NS

    name: str
    hosts: HostsFilter = "all"
    auth_info: Secret | None = None

    def __post_init__(self) -> None:
        check_domain_name(self.name)
        choose(self.hosts, HOSTS_FILTERS, "domain:name hosts")
        if self.auth_info is not None:
            check_secret(self.auth_info, "domain:authInfo")

    def write(self, verb: etree._Element) -> None:
        element = self._object(verb)
        add(element, DOMAIN_NS, "name", self.name, {"hosts": self.hosts})
        if self.auth_info is not None:
            write_auth_info(element, DOMAIN_NS, self.auth_info)

    @classmethod
    def read(cls, verb: etree._Element) -> Self:
        children = cls._object_children(verb)
        name = children.one(qualified(DOMAIN_NS, "name"))
        auth = _optional_auth(children, DOMAIN_NS)
        children.end()
        hosts = choose(attribute(name, "hosts", "all"), HOSTS_FILTERS, "domain:name hosts")
        return cls(token(name), hosts, auth)


@dataclass(frozen=True)
class DomainCreate(Command):
    verb = "create"
    namespace = DOMAIN_NS

    name: str
    auth_info: Secret
    period: Period | None = None
    nameservers: tuple[str, ...] = ()
    registrant: str | None = None
    contacts: tuple[DomainContact, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "nameservers", tuple(self.nameservers))
        object.__setattr__(self, "contacts", tuple(self.contacts))
        check_domain_name(self.name)
        check_secret(self.auth_info, "domain:authInfo")
        for host in self.nameservers:
            check_domain_name(host, "domain:hostObj")
        if self.registrant is not None:
            check_client_id(self.registrant, "domain:registrant")

    def write(self, verb: etree._Element) -> None:
        element = self._object(verb)
        add(element, DOMAIN_NS, "name", self.name)
        _write_period(element, self.period)
        if self.nameservers:
            write_host_objects(element, self.nameservers)
        if self.registrant is not None:
            add(element, DOMAIN_NS, "registrant", self.registrant)
        write_contacts(element, self.contacts)
        write_auth_info(element, DOMAIN_NS, self.auth_info)

    @classmethod
    def read(cls, verb: etree._Element) -> Self:
        children = cls._object_children(verb)
        name = _name(children, DOMAIN_NS)
        period = _period(children.optional(qualified(DOMAIN_NS, "period")))
        ns = children.optional(qualified(DOMAIN_NS, "ns"))
        registrant = children.optional(qualified(DOMAIN_NS, "registrant"))
        contacts = children.many(qualified(DOMAIN_NS, "contact"))
        auth = read_auth_info(children.one(qualified(DOMAIN_NS, "authInfo")), DOMAIN_NS)
        children.end()
        return cls(name=name, auth_info=auth, period=period,
                   nameservers=() if ns is None else read_host_objects(ns),
                   registrant=None if registrant is None else token(registrant),
                   contacts=tuple(read_contact(contact) for contact in contacts))


@dataclass(frozen=True)
class DomainChanges:
    """What one `<domain:add>` or `<domain:rem>` names."""

    nameservers: tuple[str, ...] = ()
    contacts: tuple[DomainContact, ...] = ()
    statuses: tuple[Status, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "nameservers", tuple(self.nameservers))
        object.__setattr__(self, "contacts", tuple(self.contacts))
        for host in self.nameservers:
            check_domain_name(host, "domain:hostObj")
        object.__setattr__(self, "statuses", check_statuses(
            self.statuses, ALL_STATUSES, "domain:status", minimum=0,
            maximum=MAX_DOMAIN_STATUSES))

    @property
    def is_empty(self) -> bool:
        return not (self.nameservers or self.contacts or self.statuses)

    def write(self, parent: etree._Element, local: str) -> None:
        if self.is_empty:
            return
        element = add(parent, DOMAIN_NS, local)
        if self.nameservers:
            write_host_objects(element, self.nameservers)
        write_contacts(element, self.contacts)
        write_statuses(element, DOMAIN_NS, self.statuses)

    @classmethod
    def read(cls, element: etree._Element | None) -> DomainChanges:
        if element is None:
            return cls()
        children = Children(element)
        ns = children.optional(qualified(DOMAIN_NS, "ns"))
        contacts = children.many(qualified(DOMAIN_NS, "contact"))
        statuses = children.many(qualified(DOMAIN_NS, "status"))
        children.end()
        return cls(nameservers=() if ns is None else read_host_objects(ns),
                   contacts=tuple(read_contact(contact) for contact in contacts),
                   statuses=tuple(read_status(status) for status in statuses))


@dataclass(frozen=True)
class DomainUpdate(Command):
    """A domain update. With nothing to add, remove or change, it carries an empty
    `<domain:chg/>`, as the RGP restore request (RFC 3915 section 4.2.5) is written."""

    verb = "update"
    namespace = DOMAIN_NS

    name: str
    add: DomainChanges = field(default_factory=DomainChanges)
    remove: DomainChanges = field(default_factory=DomainChanges)
    registrant: str | None = None
    auth_info: Secret | None = None

    def __post_init__(self) -> None:
        check_domain_name(self.name)
        if self.registrant is not None:
            check_client_id(self.registrant, "domain:registrant")
        if self.auth_info is not None:
            check_secret(self.auth_info, "domain:authInfo")

    def write(self, verb: etree._Element) -> None:
        element = self._object(verb)
        add(element, DOMAIN_NS, "name", self.name)
        self.add.write(element, "add")
        self.remove.write(element, "rem")
        if self.registrant is not None or self.auth_info is not None \
                or (self.add.is_empty and self.remove.is_empty):
            change = add(element, DOMAIN_NS, "chg")
            if self.registrant is not None:
                add(change, DOMAIN_NS, "registrant", self.registrant)
            if self.auth_info is not None:
                write_auth_info(change, DOMAIN_NS, self.auth_info)

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
        if change is not None:
            changed = Children(change)
            found = changed.optional(qualified(DOMAIN_NS, "registrant"))
            registrant = None if found is None else token(found)
            auth = _optional_auth(changed, DOMAIN_NS)
            changed.end()
        return cls(name=name, add=added, remove=removed, registrant=registrant, auth_info=auth)


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
    """`op` goes on the `<transfer>` element; the authInfo proves the registrant's consent."""

    verb = "transfer"
    namespace = DOMAIN_NS

    name: str
    op: TransferOp = "request"
    period: Period | None = None
    auth_info: Secret | None = None

    def __post_init__(self) -> None:
        check_domain_name(self.name)
        choose(self.op, TRANSFER_OPS, "epp:transfer op")
        if self.auth_info is not None:
            check_secret(self.auth_info, "domain:authInfo")

    def write(self, verb: etree._Element) -> None:
        verb.set("op", self.op)
        element = self._object(verb)
        add(element, DOMAIN_NS, "name", self.name)
        _write_period(element, self.period)
        if self.auth_info is not None:
            write_auth_info(element, DOMAIN_NS, self.auth_info)

    @classmethod
    def read(cls, verb: etree._Element) -> Self:
        op = choose(attribute(verb, "op"), TRANSFER_OPS, "epp:transfer op")
        children = cls._object_children(verb)
        name = _name(children, DOMAIN_NS)
        period = _period(children.optional(qualified(DOMAIN_NS, "period")))
        auth = _optional_auth(children, DOMAIN_NS)
        children.end()
        return cls(name, op, period, auth)


# --- host commands (RFC 5732) ----------------------------------------------------------------

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


# --- contact commands (RFC 5733) -------------------------------------------------------------

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
class ContactInfo(Command):
    verb = "info"
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
    def read(cls, verb: etree._Element) -> Self:
        children = cls._object_children(verb)
        contact_id = token(children.one(qualified(CONTACT_NS, "id")))
        auth = _optional_auth(children, CONTACT_NS)
        children.end()
        return cls(contact_id, auth)


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


@dataclass(frozen=True)
class SecDnsCreate(CommandExtension):
    """DS records for a new domain (RFC 5910 section 5.2.1)."""

    tag = qualified(SECDNS_NS, "create")
    extends = (DomainCreate,)

    ds: tuple[DsRecord, ...]
    max_sig_life: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "ds", tuple(check_ds(record) for record in self.ds))
        if not self.ds:
            raise CodecError("secDNS:create: at least one secDNS:dsData is required")
        check_max_sig_life(self.max_sig_life)

    def write(self, extension: etree._Element) -> None:
        write_ds_or_key(add(extension, SECDNS_NS, "create", declare=True), self.ds,
                        self.max_sig_life)

    @classmethod
    def read(cls, element: etree._Element) -> Self:
        records, life = read_ds_or_key(element)
        return cls(records, life)


@dataclass(frozen=True)
class SecDnsUpdate(CommandExtension):
    """DS changes to a domain (RFC 5910 section 5.2.5): removals first, as the schema orders
    them; `remove_all` drops every DS record (and takes no list)."""

    tag = qualified(SECDNS_NS, "update")
    extends = (DomainUpdate,)

    add: tuple[DsRecord, ...] = ()
    remove: tuple[DsRecord, ...] = ()
    remove_all: bool = False
    max_sig_life: int | None = None
    urgent: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "add", tuple(check_ds(record) for record in self.add))
        object.__setattr__(self, "remove", tuple(check_ds(record) for record in self.remove))
        if self.remove_all and self.remove:
            raise CodecError("secDNS:rem: secDNS:all and secDNS:dsData exclude each other")
        if not (self.add or self.remove or self.remove_all or self.max_sig_life is not None):
            raise CodecError("secDNS:update: nothing to add, remove or change")
        check_max_sig_life(self.max_sig_life)

    def write(self, extension: etree._Element) -> None:
        element = add(extension, SECDNS_NS, "update", declare=True,
                      attributes={"urgent": "true"} if self.urgent else None)
        if self.remove_all or self.remove:
            removed = add(element, SECDNS_NS, "rem")
            if self.remove_all:
                add(removed, SECDNS_NS, "all", "true")
            write_ds_data(removed, self.remove)
        if self.add:
            write_ds_or_key(add(element, SECDNS_NS, "add"), self.add, None)
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
        if removed is not None:
            listed = Children(removed)
            everything = listed.optional(qualified(SECDNS_NS, "all"))
            if everything is not None:
                remove_all = boolean(token(everything), "secDNS:all")
                if not remove_all:
                    raise CodecError("secDNS:all: false removes nothing; leave secDNS:rem out")
            else:
                remove = read_ds_data(listed, removed)
            listed.end()
        add_records: tuple[DsRecord, ...] = ()
        if added is not None:
            add_records, life = read_ds_or_key(added)
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
                   max_sig_life=max_sig_life, urgent=urgent)


@dataclass(frozen=True)
class RgpRestoreRequest(CommandExtension):
    """Asks to restore a deleted domain in its redemption period (RFC 3915 section 4.2.5)."""

    tag = qualified(RGP_NS, "update")
    extends = (DomainUpdate,)

    def write(self, extension: etree._Element) -> None:
        update = add(extension, RGP_NS, "update", declare=True)
        add(update, RGP_NS, "restore", attributes={"op": "request"})

    @classmethod
    def read(cls, element: etree._Element) -> Self:
        children = Children(element)
        restore = children.one(qualified(RGP_NS, "restore"))
        children.end()
        op = attribute(restore, "op")
        if op == "report":
            raise UnimplementedOption("rgp:restore: the restore report is not supported")
        if op != "request":
            raise CodecError(f"rgp:restore: op must be request or report, not {op[:16]!r}")
        Children(restore).end()
        return cls()


# --- documents -------------------------------------------------------------------------------

Extension = CommandExtension | RawElement
E = TypeVar("E", bound=CommandExtension)

_COMMANDS: dict[tuple[str, str | None], type[Command]] = {
    (kind.verb, kind.namespace): kind for kind in (
        Login, Logout, Poll, DomainCheck, DomainInfo, DomainCreate, DomainUpdate, DomainDelete,
        DomainRenew, DomainTransfer, HostCreate, HostInfo, HostDelete, ContactCreate,
        ContactInfo,
    )
}
_EXTENSIONS: dict[str, type[CommandExtension]] = {
    kind.tag: kind for kind in (SecDnsCreate, SecDnsUpdate, RgpRestoreRequest)
}


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
    tracks its transactions makes one with `new_cl_trid()` and passes it."""
    root = new_document()
    command = add(root, EPP_NS, "command")
    verb = add(command, EPP_NS, body.verb)
    body.write(verb)
    if extensions:
        element = add(command, EPP_NS, "extension")
        for extension in extensions:
            if isinstance(extension, RawElement):
                element.append(extension.to_element())
            else:
                _check_extends(extension, body)
                extension.write(element)
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
            kind = _EXTENSIONS.get(element.tag)
            if kind is None:
                extensions.append(RawElement.of(element))
                continue
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
    "Command", "CommandExtension", "ContactCreate", "ContactInfo", "DomainChanges",
    "DomainCheck", "DomainCreate", "DomainDelete", "DomainInfo", "DomainRenew",
    "DomainTransfer", "DomainUpdate", "EppCommand", "Extension", "Hello", "HostCreate",
    "HostDelete", "HostInfo", "HostsFilter", "Login", "Logout", "Poll", "RgpRestoreRequest",
    "SecDnsCreate", "SecDnsUpdate", "TransferOp", "build_command", "build_hello",
    "parse_command",
]
