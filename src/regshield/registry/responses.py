"""EPP responses and greetings: the server builds them (`build_response`, `build_greeting`),
the client parses them (`parse_response`, `parse_greeting`), with one class per `<resData>` or
response extension element, each writing and reading its own XML.

Dates become aware datetimes in UTC; authorization codes become `Secret`s, masked in `repr`.
Elements this module has no type for (a registry's own extension, a poll message's payload)
are kept as `RawElement`s, never dropped.

Typed: domain chkData, infData, creData, renData, trnData, panData; host chkData, infData,
creData; contact chkData, infData, creData, trnData; secDNS-1.1 infData (DS data or key data
interface); rgp-1.0 infData and upData.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Self, TypeVar

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
    PREFIXES,
    RGP_NS,
    SECDNS_NS,
    TRANSFER_STATUSES,
    Children,
    CodecError,
    Disclose,
    DomainContact,
    HostAddress,
    HostAttribute,
    KeyData,
    Phone,
    PostalInfo,
    RawElement,
    ResultCode,
    Secret,
    Status,
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
    check_roid,
    check_secret,
    check_statuses,
    check_token,
    check_transaction_id,
    choose,
    format_datetime,
    integer,
    load,
    new_document,
    only_child,
    parse_datetime,
    qualified,
    read_address,
    read_any_auth_info,
    read_auth_info,
    read_contact,
    read_disclose,
    read_ds_or_key,
    read_nameservers,
    read_phone,
    read_postal_info,
    read_status,
    result_code,
    serialize,
    show,
    token,
    write_address,
    write_any_auth_info,
    write_auth_info,
    write_contacts,
    write_disclose,
    write_ds_or_key,
    write_nameservers,
    write_phone,
    write_postal_info,
    write_statuses,
)
from regshield.registry.xml import EPP_NS
from regshield.rules.ds import DsRecord
from regshield.rules.statuses import ALL_STATUSES, RGP_STATUSES

# --- results and the message queue -----------------------------------------------------------


@dataclass(frozen=True)
class ExtValue:
    """A `<extValue>`: the offending element and why the server refused it."""

    value: RawElement
    reason: str
    lang: str = "en"


@dataclass(frozen=True)
class Result:
    """One `<result>`. Without a message, the standard text of RFC 5730 section 3 is used."""

    code: int
    message: str = ""
    lang: str = "en"
    values: tuple[RawElement, ...] = ()
    ext_values: tuple[ExtValue, ...] = ()

    def __post_init__(self) -> None:
        code = result_code(self.code)
        object.__setattr__(self, "code", code)
        object.__setattr__(self, "message", self.message or code.message)
        object.__setattr__(self, "values", tuple(self.values))
        object.__setattr__(self, "ext_values", tuple(self.ext_values))

    def write(self, response: etree._Element) -> None:
        element = add(response, EPP_NS, "result", attributes={"code": str(self.code)})
        add(element, EPP_NS, "msg", self.message, _lang(self.lang))
        for value in self.values:
            add(element, EPP_NS, "value").append(value.to_element())
        for ext in self.ext_values:
            ext_element = add(element, EPP_NS, "extValue")
            add(ext_element, EPP_NS, "value").append(ext.value.to_element())
            add(ext_element, EPP_NS, "reason", ext.reason, _lang(ext.lang))

    @classmethod
    def read(cls, element: etree._Element) -> Result:
        code = result_code(attribute(element, "code"))
        children = Children(element)
        message = children.one(qualified(EPP_NS, "msg"))
        values: list[RawElement] = []
        ext_values: list[ExtValue] = []
        for child in children.rest():
            if child.tag == qualified(EPP_NS, "value"):
                values.append(RawElement.of(only_child(child)))
            elif child.tag == qualified(EPP_NS, "extValue"):
                parts = Children(child)
                value = RawElement.of(only_child(parts.one(qualified(EPP_NS, "value"))))
                reason = parts.one(qualified(EPP_NS, "reason"))
                parts.end()
                ext_values.append(ExtValue(value, token(reason),
                                           attribute(reason, "lang", "en")))
            else:
                raise CodecError(f"epp:result: unexpected element {show(child.tag)}")
        return cls(code, token(message), attribute(message, "lang", "en"), tuple(values),
                   tuple(ext_values))


@dataclass(frozen=True)
class MessageQueue:
    """`<msgQ>`: how many messages wait, the id of the oldest, and (on a poll request) its
    date and text. The message's payload, if any, is in the response's `data`."""

    count: int
    id: str
    queued: datetime | None = None
    message: str | None = None
    lang: str = "en"

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 0:
            raise CodecError(f"epp:msgQ: count must be a whole number, not {self.count!r}")
        check_token(self.id, "epp:msgQ id", minimum=1, maximum=None)
        if self.queued is not None:
            format_datetime(self.queued, "epp:qDate")

    def write(self, response: etree._Element) -> None:
        element = add(response, EPP_NS, "msgQ",
                      attributes={"count": str(self.count), "id": self.id})
        if self.queued is not None:
            add(element, EPP_NS, "qDate", format_datetime(self.queued, "epp:qDate"))
        if self.message is not None:
            add(element, EPP_NS, "msg", self.message, _lang(self.lang))

    @classmethod
    def read(cls, element: etree._Element) -> MessageQueue:
        count = integer(attribute(element, "count"), "epp:msgQ count", minimum=0,
                        maximum=None)
        children = Children(element)
        queued = _optional_datetime(children, EPP_NS, "qDate")
        message = children.optional(qualified(EPP_NS, "msg"))
        children.end()
        return cls(count=count, id=attribute(element, "id"), queued=queued,
                   message=None if message is None else _mixed_text(message),
                   lang="en" if message is None else attribute(message, "lang", "en"))


def _mixed_text(element: etree._Element) -> str:
    """The text of mixed content (a poll message may hold elements among its words)."""
    return "".join(str(part) for part in element.itertext()).strip()


def _lang(lang: str) -> dict[str, str] | None:
    return None if lang == "en" else {"lang": lang}


def _add_datetime(parent: etree._Element, namespace: str, local: str,
                  value: datetime | None) -> None:
    if value is not None:
        add(parent, namespace, local, format_datetime(value, f"{namespace}:{local}"))


def _optional_datetime(children: Children, namespace: str, local: str) -> datetime | None:
    element = children.optional(qualified(namespace, local))
    return None if element is None else parse_datetime(token(element), show(element.tag))


def _datetime(children: Children, namespace: str, local: str) -> datetime:
    element = children.one(qualified(namespace, local))
    return parse_datetime(token(element), show(element.tag))


def _text(children: Children, namespace: str, local: str) -> str:
    return token(children.one(qualified(namespace, local)))


def _optional_text(children: Children, namespace: str, local: str) -> str | None:
    element = children.optional(qualified(namespace, local))
    return None if element is None else token(element)


def _check_datetimes(item: object, **elements: str) -> None:
    """Optional datetimes must be aware; each keyword maps an attribute to its element."""
    for name, element in elements.items():
        value = getattr(item, name)
        if value is not None:
            format_datetime(value, element)


# --- response data ---------------------------------------------------------------------------

class ResponseItem(ABC):
    """One element of `<resData>` or of a response's `<extension>`."""

    tag: ClassVar[str]
    in_extension: ClassVar[bool] = False

    @abstractmethod
    def write(self, parent: etree._Element) -> None:
        """Append this item's element to `parent`."""

    @classmethod
    @abstractmethod
    def read(cls, element: etree._Element) -> Self:
        """The item from its element."""

    def _root(self, parent: etree._Element) -> etree._Element:
        name = etree.QName(self.tag)
        assert name.namespace is not None
        return add(parent, name.namespace, name.localname, declare=True)


@dataclass(frozen=True)
class CheckResult:
    """One `<cd>`: whether the name can be provisioned, and if not, why."""

    name: str
    available: bool
    reason: str | None = None


@dataclass(frozen=True)
class _CheckData(ResponseItem):
    """A `<chkData>`: one `<cd>` per name or identifier asked about. Subclasses name their
    namespace and the element that holds the name (`name`, or `id` for contacts)."""

    namespace: ClassVar[str]
    key: ClassVar[str] = "name"

    results: tuple[CheckResult, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "results", tuple(self.results))
        prefix = PREFIXES[self.namespace]
        if not self.results:
            raise CodecError(f"{prefix}:chkData: at least one {prefix}:cd is required")
        for result in self.results:
            self._check_key(result.name)
            if result.reason is not None:
                check_token(result.reason, f"{prefix}:reason", minimum=1, maximum=32)

    @classmethod
    def _check_key(cls, value: str) -> None:
        check_domain_name(value, f"{PREFIXES[cls.namespace]}:{cls.key}")

    def write(self, parent: etree._Element) -> None:
        element = self._root(parent)
        for result in self.results:
            cd = add(element, self.namespace, "cd")
            add(cd, self.namespace, self.key, result.name,
                {"avail": "1" if result.available else "0"})
            if result.reason is not None:
                add(cd, self.namespace, "reason", result.reason)

    @classmethod
    def read(cls, element: etree._Element) -> Self:
        children = Children(element)
        results: list[CheckResult] = []
        for cd in children.many(qualified(cls.namespace, "cd"), minimum=1):
            parts = Children(cd)
            name = parts.one(qualified(cls.namespace, cls.key))
            reason = _optional_text(parts, cls.namespace, "reason")
            parts.end()
            available = boolean(attribute(name, "avail"), f"{show(name.tag)} avail")
            results.append(CheckResult(token(name), available, reason))
        children.end()
        return cls(tuple(results))


@dataclass(frozen=True)
class DomainCheckData(_CheckData):
    tag = qualified(DOMAIN_NS, "chkData")
    namespace = DOMAIN_NS


@dataclass(frozen=True)
class HostCheckData(_CheckData):
    tag = qualified(HOST_NS, "chkData")
    namespace = HOST_NS


@dataclass(frozen=True)
class ContactCheckData(_CheckData):
    """A contact check's answer; each result's `name` is a contact identifier."""

    tag = qualified(CONTACT_NS, "chkData")
    namespace = CONTACT_NS
    key = "id"

    @classmethod
    def _check_key(cls, value: str) -> None:
        check_client_id(value, "contact:id")


@dataclass(frozen=True)
class DomainInfoData(ResponseItem):
    """A domain as the registry holds it. Nameservers are host object names (`nameservers`)
    or host attributes (`host_attributes`); `hosts` are its subordinate hosts; the authInfo
    (a password, or an `ext` element) comes only to the sponsoring registrar (or with the
    right authInfo)."""

    tag = qualified(DOMAIN_NS, "infData")

    name: str
    roid: str
    sponsoring_client: str
    statuses: tuple[Status, ...] = ()
    registrant: str | None = None
    contacts: tuple[DomainContact, ...] = ()
    nameservers: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    created_by: str | None = None
    created: datetime | None = None
    updated_by: str | None = None
    updated: datetime | None = None
    expires: datetime | None = None
    transferred: datetime | None = None
    auth_info: Secret | None = None
    host_attributes: tuple[HostAttribute, ...] = ()
    auth_info_ext: RawElement | None = None

    def __post_init__(self) -> None:
        for name in ("statuses", "contacts", "nameservers", "hosts", "host_attributes"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        check_domain_name(self.name)
        check_roid(self.roid, "domain:roid")
        check_client_id(self.sponsoring_client, "domain:clID")
        check_statuses(self.statuses, ALL_STATUSES, "domain:status", minimum=0,
                       maximum=MAX_DOMAIN_STATUSES)
        check_nameserver_forms(self.nameservers, self.host_attributes)
        for host in self.hosts:
            check_domain_name(host, "domain:host")
        if self.auth_info_ext is not None:
            check_ext_auth_info(self.auth_info_ext, DOMAIN_NS)
            if self.auth_info is not None:
                raise CodecError("domain:authInfo: domain:pw and domain:ext exclude each other")
        for identifier, element in ((self.registrant, "domain:registrant"),
                                    (self.created_by, "domain:crID"),
                                    (self.updated_by, "domain:upID")):
            if identifier is not None:
                check_client_id(identifier, element)
        _check_datetimes(self, created="domain:crDate", updated="domain:upDate",
                         expires="domain:exDate", transferred="domain:trDate")
        if self.auth_info is not None:
            check_secret(self.auth_info, "domain:authInfo")

    def write(self, parent: etree._Element) -> None:
        element = self._root(parent)
        add(element, DOMAIN_NS, "name", self.name)
        add(element, DOMAIN_NS, "roid", self.roid)
        write_statuses(element, DOMAIN_NS, self.statuses)
        if self.registrant is not None:
            add(element, DOMAIN_NS, "registrant", self.registrant)
        write_contacts(element, self.contacts)
        write_nameservers(element, self.nameservers, self.host_attributes)
        for host in self.hosts:
            add(element, DOMAIN_NS, "host", host)
        add(element, DOMAIN_NS, "clID", self.sponsoring_client)
        if self.created_by is not None:
            add(element, DOMAIN_NS, "crID", self.created_by)
        _add_datetime(element, DOMAIN_NS, "crDate", self.created)
        if self.updated_by is not None:
            add(element, DOMAIN_NS, "upID", self.updated_by)
        _add_datetime(element, DOMAIN_NS, "upDate", self.updated)
        _add_datetime(element, DOMAIN_NS, "exDate", self.expires)
        _add_datetime(element, DOMAIN_NS, "trDate", self.transferred)
        auth = self.auth_info if self.auth_info is not None else self.auth_info_ext
        if auth is not None:
            write_any_auth_info(element, DOMAIN_NS, auth)

    @classmethod
    def read(cls, element: etree._Element) -> Self:
        children = Children(element)
        name = _text(children, DOMAIN_NS, "name")
        roid = _text(children, DOMAIN_NS, "roid")
        statuses = children.many(qualified(DOMAIN_NS, "status"))
        registrant = _optional_text(children, DOMAIN_NS, "registrant")
        contacts = children.many(qualified(DOMAIN_NS, "contact"))
        ns = children.optional(qualified(DOMAIN_NS, "ns"))
        hosts = children.many(qualified(DOMAIN_NS, "host"))
        sponsor = _text(children, DOMAIN_NS, "clID")
        created_by = _optional_text(children, DOMAIN_NS, "crID")
        created = _optional_datetime(children, DOMAIN_NS, "crDate")
        updated_by = _optional_text(children, DOMAIN_NS, "upID")
        updated = _optional_datetime(children, DOMAIN_NS, "upDate")
        expires = _optional_datetime(children, DOMAIN_NS, "exDate")
        transferred = _optional_datetime(children, DOMAIN_NS, "trDate")
        auth_element = children.optional(qualified(DOMAIN_NS, "authInfo"))
        children.end()
        names, attributes = read_nameservers(ns)
        auth = None if auth_element is None else read_any_auth_info(auth_element, DOMAIN_NS)
        return cls(
            name=name, roid=roid, sponsoring_client=sponsor,
            statuses=tuple(read_status(status) for status in statuses),
            registrant=registrant, contacts=tuple(read_contact(c) for c in contacts),
            nameservers=names, hosts=tuple(token(host) for host in hosts),
            created_by=created_by, created=created, updated_by=updated_by, updated=updated,
            expires=expires, transferred=transferred,
            auth_info=auth if isinstance(auth, Secret) else None,
            host_attributes=attributes,
            auth_info_ext=auth if isinstance(auth, RawElement) else None)


@dataclass(frozen=True)
class DomainCreateData(ResponseItem):
    tag = qualified(DOMAIN_NS, "creData")

    name: str
    created: datetime
    expires: datetime | None = None

    def __post_init__(self) -> None:
        check_domain_name(self.name)
        format_datetime(self.created, "domain:crDate")
        _check_datetimes(self, expires="domain:exDate")

    def write(self, parent: etree._Element) -> None:
        element = self._root(parent)
        add(element, DOMAIN_NS, "name", self.name)
        _add_datetime(element, DOMAIN_NS, "crDate", self.created)
        _add_datetime(element, DOMAIN_NS, "exDate", self.expires)

    @classmethod
    def read(cls, element: etree._Element) -> Self:
        children = Children(element)
        name = _text(children, DOMAIN_NS, "name")
        created = _datetime(children, DOMAIN_NS, "crDate")
        expires = _optional_datetime(children, DOMAIN_NS, "exDate")
        children.end()
        return cls(name, created, expires)


@dataclass(frozen=True)
class DomainRenewData(ResponseItem):
    tag = qualified(DOMAIN_NS, "renData")

    name: str
    expires: datetime | None = None

    def __post_init__(self) -> None:
        check_domain_name(self.name)
        _check_datetimes(self, expires="domain:exDate")

    def write(self, parent: etree._Element) -> None:
        element = self._root(parent)
        add(element, DOMAIN_NS, "name", self.name)
        _add_datetime(element, DOMAIN_NS, "exDate", self.expires)

    @classmethod
    def read(cls, element: etree._Element) -> Self:
        children = Children(element)
        name = _text(children, DOMAIN_NS, "name")
        expires = _optional_datetime(children, DOMAIN_NS, "exDate")
        children.end()
        return cls(name, expires)


@dataclass(frozen=True)
class DomainTransferData(ResponseItem):
    """A transfer's state: who asked (reID) and when, who must act (acID) and by when."""

    tag = qualified(DOMAIN_NS, "trnData")

    name: str
    status: str
    requesting_client: str
    requested: datetime
    acting_client: str
    act_by: datetime
    expires: datetime | None = None

    def __post_init__(self) -> None:
        check_domain_name(self.name)
        if self.status not in TRANSFER_STATUSES:
            raise CodecError(f"domain:trStatus: {self.status[:32]!r} is not a transfer status")
        check_client_id(self.requesting_client, "domain:reID")
        check_client_id(self.acting_client, "domain:acID")
        format_datetime(self.requested, "domain:reDate")
        format_datetime(self.act_by, "domain:acDate")
        _check_datetimes(self, expires="domain:exDate")

    def write(self, parent: etree._Element) -> None:
        element = self._root(parent)
        add(element, DOMAIN_NS, "name", self.name)
        add(element, DOMAIN_NS, "trStatus", self.status)
        add(element, DOMAIN_NS, "reID", self.requesting_client)
        _add_datetime(element, DOMAIN_NS, "reDate", self.requested)
        add(element, DOMAIN_NS, "acID", self.acting_client)
        _add_datetime(element, DOMAIN_NS, "acDate", self.act_by)
        _add_datetime(element, DOMAIN_NS, "exDate", self.expires)

    @classmethod
    def read(cls, element: etree._Element) -> Self:
        children = Children(element)
        name = _text(children, DOMAIN_NS, "name")
        status = _text(children, DOMAIN_NS, "trStatus")
        requesting = _text(children, DOMAIN_NS, "reID")
        requested = _datetime(children, DOMAIN_NS, "reDate")
        acting = _text(children, DOMAIN_NS, "acID")
        act_by = _datetime(children, DOMAIN_NS, "acDate")
        expires = _optional_datetime(children, DOMAIN_NS, "exDate")
        children.end()
        return cls(name, status, requesting, requested, acting, act_by, expires)


@dataclass(frozen=True)
class DomainPendingActionData(ResponseItem):
    """The outcome of an action the registry had answered with 1001 (a poll message)."""

    tag = qualified(DOMAIN_NS, "panData")

    name: str
    succeeded: bool
    sv_trid: str
    date: datetime
    cl_trid: str | None = None

    def __post_init__(self) -> None:
        check_domain_name(self.name)
        check_transaction_id(self.sv_trid, "domain:svTRID")
        if self.cl_trid is not None:
            check_transaction_id(self.cl_trid, "domain:clTRID")
        format_datetime(self.date, "domain:paDate")

    def write(self, parent: etree._Element) -> None:
        element = self._root(parent)
        add(element, DOMAIN_NS, "name", self.name,
            {"paResult": "1" if self.succeeded else "0"})
        transaction = add(element, DOMAIN_NS, "paTRID")
        if self.cl_trid is not None:
            add(transaction, EPP_NS, "clTRID", self.cl_trid)
        add(transaction, EPP_NS, "svTRID", self.sv_trid)
        _add_datetime(element, DOMAIN_NS, "paDate", self.date)

    @classmethod
    def read(cls, element: etree._Element) -> Self:
        children = Children(element)
        name = children.one(qualified(DOMAIN_NS, "name"))
        transaction = Children(children.one(qualified(DOMAIN_NS, "paTRID")))
        date = _datetime(children, DOMAIN_NS, "paDate")
        children.end()
        # paTRID is EPP's trIDType: its children are in the EPP namespace.
        cl_trid = _optional_text(transaction, EPP_NS, "clTRID")
        sv_trid = _text(transaction, EPP_NS, "svTRID")
        transaction.end()
        return cls(token(name), boolean(attribute(name, "paResult"), "domain:name paResult"),
                   sv_trid, date, cl_trid)


@dataclass(frozen=True)
class HostCreateData(ResponseItem):
    tag = qualified(HOST_NS, "creData")

    name: str
    created: datetime

    def __post_init__(self) -> None:
        check_domain_name(self.name, "host:name")
        format_datetime(self.created, "host:crDate")

    def write(self, parent: etree._Element) -> None:
        element = self._root(parent)
        add(element, HOST_NS, "name", self.name)
        _add_datetime(element, HOST_NS, "crDate", self.created)

    @classmethod
    def read(cls, element: etree._Element) -> Self:
        children = Children(element)
        name = _text(children, HOST_NS, "name")
        created = _datetime(children, HOST_NS, "crDate")
        children.end()
        return cls(name, created)


@dataclass(frozen=True)
class HostInfoData(ResponseItem):
    tag = qualified(HOST_NS, "infData")

    name: str
    roid: str
    statuses: tuple[Status, ...]
    sponsoring_client: str
    created_by: str
    created: datetime
    addresses: tuple[HostAddress, ...] = ()
    updated_by: str | None = None
    updated: datetime | None = None
    transferred: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "addresses", tuple(self.addresses))
        check_domain_name(self.name, "host:name")
        check_roid(self.roid, "host:roid")
        object.__setattr__(self, "statuses", check_statuses(
            self.statuses, HOST_STATUSES, "host:status", minimum=1,
            maximum=MAX_OBJECT_STATUSES))
        check_client_id(self.sponsoring_client, "host:clID")
        check_client_id(self.created_by, "host:crID")
        if self.updated_by is not None:
            check_client_id(self.updated_by, "host:upID")
        format_datetime(self.created, "host:crDate")
        _check_datetimes(self, updated="host:upDate", transferred="host:trDate")

    def write(self, parent: etree._Element) -> None:
        element = self._root(parent)
        add(element, HOST_NS, "name", self.name)
        add(element, HOST_NS, "roid", self.roid)
        write_statuses(element, HOST_NS, self.statuses)
        for address in self.addresses:
            write_address(element, address)
        add(element, HOST_NS, "clID", self.sponsoring_client)
        add(element, HOST_NS, "crID", self.created_by)
        _add_datetime(element, HOST_NS, "crDate", self.created)
        if self.updated_by is not None:
            add(element, HOST_NS, "upID", self.updated_by)
        _add_datetime(element, HOST_NS, "upDate", self.updated)
        _add_datetime(element, HOST_NS, "trDate", self.transferred)

    @classmethod
    def read(cls, element: etree._Element) -> Self:
        children = Children(element)
        name = _text(children, HOST_NS, "name")
        roid = _text(children, HOST_NS, "roid")
        statuses = children.many(qualified(HOST_NS, "status"), minimum=1)
        addresses = children.many(qualified(HOST_NS, "addr"))
        sponsor = _text(children, HOST_NS, "clID")
        created_by = _text(children, HOST_NS, "crID")
        created = _datetime(children, HOST_NS, "crDate")
        updated_by = _optional_text(children, HOST_NS, "upID")
        updated = _optional_datetime(children, HOST_NS, "upDate")
        transferred = _optional_datetime(children, HOST_NS, "trDate")
        children.end()
        return cls(name=name, roid=roid,
                   statuses=tuple(read_status(status) for status in statuses),
                   sponsoring_client=sponsor, created_by=created_by, created=created,
                   addresses=tuple(read_address(address) for address in addresses),
                   updated_by=updated_by, updated=updated, transferred=transferred)


@dataclass(frozen=True)
class ContactCreateData(ResponseItem):
    tag = qualified(CONTACT_NS, "creData")

    id: str
    created: datetime

    def __post_init__(self) -> None:
        check_client_id(self.id, "contact:id")
        format_datetime(self.created, "contact:crDate")

    def write(self, parent: etree._Element) -> None:
        element = self._root(parent)
        add(element, CONTACT_NS, "id", self.id)
        _add_datetime(element, CONTACT_NS, "crDate", self.created)

    @classmethod
    def read(cls, element: etree._Element) -> Self:
        children = Children(element)
        contact_id = _text(children, CONTACT_NS, "id")
        created = _datetime(children, CONTACT_NS, "crDate")
        children.end()
        return cls(contact_id, created)


@dataclass(frozen=True)
class ContactInfoData(ResponseItem):
    tag = qualified(CONTACT_NS, "infData")

    id: str
    roid: str
    statuses: tuple[Status, ...]
    postal_info: tuple[PostalInfo, ...]
    email: str
    sponsoring_client: str
    created_by: str
    created: datetime
    voice: Phone | None = None
    fax: Phone | None = None
    updated_by: str | None = None
    updated: datetime | None = None
    transferred: datetime | None = None
    auth_info: Secret | None = None
    disclose: Disclose | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "postal_info", tuple(self.postal_info))
        check_client_id(self.id, "contact:id")
        check_roid(self.roid, "contact:roid")
        object.__setattr__(self, "statuses", check_statuses(
            self.statuses, CONTACT_STATUSES, "contact:status", minimum=1,
            maximum=MAX_OBJECT_STATUSES))
        if not 1 <= len(self.postal_info) <= MAX_POSTAL_INFO:
            raise CodecError("contact:postalInfo: one or two are required")
        check_token(self.email, "contact:email", minimum=1, maximum=None)
        check_client_id(self.sponsoring_client, "contact:clID")
        check_client_id(self.created_by, "contact:crID")
        if self.updated_by is not None:
            check_client_id(self.updated_by, "contact:upID")
        format_datetime(self.created, "contact:crDate")
        _check_datetimes(self, updated="contact:upDate", transferred="contact:trDate")
        if self.auth_info is not None:
            check_secret(self.auth_info, "contact:authInfo")

    def write(self, parent: etree._Element) -> None:
        element = self._root(parent)
        add(element, CONTACT_NS, "id", self.id)
        add(element, CONTACT_NS, "roid", self.roid)
        write_statuses(element, CONTACT_NS, self.statuses)
        for info in self.postal_info:
            write_postal_info(element, info)
        write_phone(element, "voice", self.voice)
        write_phone(element, "fax", self.fax)
        add(element, CONTACT_NS, "email", self.email)
        add(element, CONTACT_NS, "clID", self.sponsoring_client)
        add(element, CONTACT_NS, "crID", self.created_by)
        _add_datetime(element, CONTACT_NS, "crDate", self.created)
        if self.updated_by is not None:
            add(element, CONTACT_NS, "upID", self.updated_by)
        _add_datetime(element, CONTACT_NS, "upDate", self.updated)
        _add_datetime(element, CONTACT_NS, "trDate", self.transferred)
        if self.auth_info is not None:
            write_auth_info(element, CONTACT_NS, self.auth_info)
        write_disclose(element, self.disclose)

    @classmethod
    def read(cls, element: etree._Element) -> Self:
        children = Children(element)
        contact_id = _text(children, CONTACT_NS, "id")
        roid = _text(children, CONTACT_NS, "roid")
        statuses = children.many(qualified(CONTACT_NS, "status"), minimum=1)
        postal = children.many(qualified(CONTACT_NS, "postalInfo"), minimum=1,
                               maximum=MAX_POSTAL_INFO)
        voice = read_phone(children.optional(qualified(CONTACT_NS, "voice")))
        fax = read_phone(children.optional(qualified(CONTACT_NS, "fax")))
        email = _text(children, CONTACT_NS, "email")
        sponsor = _text(children, CONTACT_NS, "clID")
        created_by = _text(children, CONTACT_NS, "crID")
        created = _datetime(children, CONTACT_NS, "crDate")
        updated_by = _optional_text(children, CONTACT_NS, "upID")
        updated = _optional_datetime(children, CONTACT_NS, "upDate")
        transferred = _optional_datetime(children, CONTACT_NS, "trDate")
        auth = children.optional(qualified(CONTACT_NS, "authInfo"))
        disclose = read_disclose(children.optional(qualified(CONTACT_NS, "disclose")))
        children.end()
        return cls(id=contact_id, roid=roid,
                   statuses=tuple(read_status(status) for status in statuses),
                   postal_info=tuple(read_postal_info(info) for info in postal),
                   email=email, sponsoring_client=sponsor, created_by=created_by,
                   created=created, voice=voice, fax=fax, updated_by=updated_by,
                   updated=updated, transferred=transferred,
                   auth_info=None if auth is None else read_auth_info(auth, CONTACT_NS),
                   disclose=disclose)


@dataclass(frozen=True)
class ContactTransferData(ResponseItem):
    """A contact transfer's state (RFC 5733 section 3.1.3): who asked (reID) and when, who
    must act (acID) and by when. Contacts have no expiry, so there is no exDate."""

    tag = qualified(CONTACT_NS, "trnData")

    id: str
    status: str
    requesting_client: str
    requested: datetime
    acting_client: str
    act_by: datetime

    def __post_init__(self) -> None:
        check_client_id(self.id, "contact:id")
        if self.status not in TRANSFER_STATUSES:
            raise CodecError(f"contact:trStatus: {self.status[:32]!r} is not a transfer "
                             "status")
        check_client_id(self.requesting_client, "contact:reID")
        check_client_id(self.acting_client, "contact:acID")
        format_datetime(self.requested, "contact:reDate")
        format_datetime(self.act_by, "contact:acDate")

    def write(self, parent: etree._Element) -> None:
        element = self._root(parent)
        add(element, CONTACT_NS, "id", self.id)
        add(element, CONTACT_NS, "trStatus", self.status)
        add(element, CONTACT_NS, "reID", self.requesting_client)
        _add_datetime(element, CONTACT_NS, "reDate", self.requested)
        add(element, CONTACT_NS, "acID", self.acting_client)
        _add_datetime(element, CONTACT_NS, "acDate", self.act_by)

    @classmethod
    def read(cls, element: etree._Element) -> Self:
        children = Children(element)
        contact_id = _text(children, CONTACT_NS, "id")
        status = _text(children, CONTACT_NS, "trStatus")
        requesting = _text(children, CONTACT_NS, "reID")
        requested = _datetime(children, CONTACT_NS, "reDate")
        acting = _text(children, CONTACT_NS, "acID")
        act_by = _datetime(children, CONTACT_NS, "acDate")
        children.end()
        return cls(contact_id, status, requesting, requested, acting, act_by)


@dataclass(frozen=True)
class SecDnsInfo(ResponseItem):
    """The DNSSEC data a registry holds for a domain (RFC 5910 section 5.1.2): DS records
    (`ds`) or keys (`keys`), whichever interface the registry serves."""

    tag = qualified(SECDNS_NS, "infData")
    in_extension = True

    ds: tuple[DsRecord, ...] = ()
    max_sig_life: int | None = None
    keys: tuple[KeyData, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "ds", tuple(check_ds(record) for record in self.ds))
        object.__setattr__(self, "keys", tuple(self.keys))
        check_dnssec_interface(self.ds, self.keys, "secDNS:infData")
        if not (self.ds or self.keys):
            raise CodecError("secDNS:infData: at least one secDNS:dsData or secDNS:keyData is "
                             "required (a domain without DNSSEC data has no secDNS:infData)")
        check_max_sig_life(self.max_sig_life)

    def write(self, parent: etree._Element) -> None:
        write_ds_or_key(self._root(parent), self.ds, self.max_sig_life, self.keys)

    @classmethod
    def read(cls, element: etree._Element) -> Self:
        records, keys, life = read_ds_or_key(element)
        return cls(records, life, keys)


def _check_rgp(statuses: tuple[Status, ...], element: str) -> tuple[Status, ...]:
    return check_statuses(statuses, frozenset(RGP_STATUSES), element, minimum=1,
                          maximum=len(RGP_STATUSES))


@dataclass(frozen=True)
class _RgpStatuses(ResponseItem):
    in_extension = True

    statuses: tuple[Status, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "statuses", _check_rgp(tuple(self.statuses),
                                                        "rgp:rgpStatus"))

    def write(self, parent: etree._Element) -> None:
        element = self._root(parent)
        for status in self.statuses:
            attributes = {"s": status.value, **(_lang(status.lang) or {})}
            add(element, RGP_NS, "rgpStatus", status.reason or None, attributes)

    @classmethod
    def read(cls, element: etree._Element) -> Self:
        children = Children(element)
        statuses = children.many(qualified(RGP_NS, "rgpStatus"), minimum=1)
        children.end()
        return cls(tuple(read_status(status) for status in statuses))


@dataclass(frozen=True)
class RgpInfo(_RgpStatuses):
    """The grace periods a domain is in (RFC 3915 section 4.1.2), beside its EPP statuses."""

    tag = qualified(RGP_NS, "infData")


@dataclass(frozen=True)
class RgpUpdateData(_RgpStatuses):
    """The grace period status after a restore request (RFC 3915 section 4.2.5)."""

    tag = qualified(RGP_NS, "upData")


# --- documents -------------------------------------------------------------------------------

Item = ResponseItem | RawElement
T = TypeVar("T", bound=ResponseItem)

_RES_DATA: dict[str, type[ResponseItem]] = {kind.tag: kind for kind in (
    DomainCheckData, DomainInfoData, DomainCreateData, DomainRenewData, DomainTransferData,
    DomainPendingActionData, HostCheckData, HostCreateData, HostInfoData, ContactCheckData,
    ContactCreateData, ContactInfoData, ContactTransferData,
)}
_RESPONSE_EXTENSIONS: dict[str, type[ResponseItem]] = {kind.tag: kind for kind in (
    SecDnsInfo, RgpInfo, RgpUpdateData,
)}


@dataclass(frozen=True)
class EppResponse:
    """A server's answer to one command."""

    results: tuple[Result, ...]
    sv_trid: str
    cl_trid: str | None = None
    message_queue: MessageQueue | None = None
    data: tuple[Item, ...] = ()
    extensions: tuple[Item, ...] = ()

    def __post_init__(self) -> None:
        for name in ("results", "data", "extensions"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not self.results:
            raise CodecError("epp:response: at least one epp:result is required")
        check_transaction_id(self.sv_trid, "epp:svTRID")
        if self.cl_trid is not None:
            check_transaction_id(self.cl_trid, "epp:clTRID")
        for item in self.data:
            if isinstance(item, ResponseItem) and item.in_extension:
                raise CodecError(f"epp:resData: {show(item.tag)} belongs in epp:extension")
        for item in self.extensions:
            if isinstance(item, ResponseItem) and not item.in_extension:
                raise CodecError(f"epp:extension: {show(item.tag)} belongs in epp:resData")

    @property
    def code(self) -> ResultCode:
        return ResultCode(self.results[0].code)

    @property
    def message(self) -> str:
        return self.results[0].message

    @property
    def succeeded(self) -> bool:
        return self.code.succeeded

    def item(self, kind: type[T]) -> T | None:
        """The response data or extension of that type, or None."""
        for item in (*self.data, *self.extensions):
            if isinstance(item, kind):
                return item
        return None


def build_response(code: int, message: str | None, cl_trid: str | None, sv_trid: str,
                   res_data: Item | Sequence[Item] | None = None,
                   msg_q: MessageQueue | None = None,
                   extension: Item | Sequence[Item] | None = None, *,
                   values: Sequence[RawElement] = (), lang: str = "en",
                   validate: Validator | None = None) -> bytes:
    """A response with one result. Without a message, RFC 5730's standard text is used."""
    result = Result(code, message or "", lang, tuple(values))
    return encode_response(EppResponse(
        results=(result,), sv_trid=sv_trid, cl_trid=cl_trid, message_queue=msg_q,
        data=_items(res_data), extensions=_items(extension)), validate=validate)


def encode_response(response: EppResponse, *, validate: Validator | None = None) -> bytes:
    """Any response, with as many results as it holds."""
    root = new_document()
    element = add(root, EPP_NS, "response")
    for result in response.results:
        result.write(element)
    if response.message_queue is not None:
        response.message_queue.write(element)
    for container, items in (("resData", response.data), ("extension", response.extensions)):
        if items:
            parent = add(element, EPP_NS, container)
            for item in items:
                if isinstance(item, RawElement):
                    parent.append(item.to_element())
                else:
                    item.write(parent)
    transaction = add(element, EPP_NS, "trID")
    if response.cl_trid is not None:
        add(transaction, EPP_NS, "clTRID", response.cl_trid)
    add(transaction, EPP_NS, "svTRID", response.sv_trid)
    return serialize(root, validate)


def parse_response(data: bytes, *, validate: Validator | None = None) -> EppResponse:
    """A server's response as the client sees it."""
    top = only_child(load(data, validate))
    if top.tag != qualified(EPP_NS, "response"):
        raise CodecError(f"epp: expected epp:response, found {show(top.tag)}")
    children = Children(top)
    results = [Result.read(r) for r in children.many(qualified(EPP_NS, "result"), minimum=1)]
    queue = children.optional(qualified(EPP_NS, "msgQ"))
    res_data = children.optional(qualified(EPP_NS, "resData"))
    extension = children.optional(qualified(EPP_NS, "extension"))
    transaction = Children(children.one(qualified(EPP_NS, "trID")))
    children.end()
    cl_trid = _optional_text(transaction, EPP_NS, "clTRID")
    sv_trid = _text(transaction, EPP_NS, "svTRID")
    transaction.end()
    return EppResponse(
        results=tuple(results), sv_trid=sv_trid, cl_trid=cl_trid,
        message_queue=None if queue is None else MessageQueue.read(queue),
        data=_read_items(res_data, _RES_DATA),
        extensions=_read_items(extension, _RESPONSE_EXTENSIONS))


def _items(value: Item | Sequence[Item] | None) -> tuple[Item, ...]:
    if value is None:
        return ()
    if isinstance(value, ResponseItem | RawElement):
        return (value,)
    return tuple(value)


def _read_items(container: etree._Element | None,
                known: dict[str, type[ResponseItem]]) -> tuple[Item, ...]:
    if container is None:
        return ()
    if not len(container):
        raise CodecError(f"{show(container.tag)}: must hold at least one element")
    items: list[Item] = []
    for element in container:
        kind = known.get(element.tag)
        items.append(RawElement.of(element) if kind is None else kind.read(element))
    return tuple(items)


# --- the greeting ----------------------------------------------------------------------------

DCP_ACCESS = ("all", "none", "null", "other", "personal", "personalAndOther")
DCP_PURPOSES = ("admin", "contact", "other", "prov")
DCP_RECIPIENTS = ("other", "ours", "public", "same", "unrelated")
DCP_RETENTION = ("business", "indefinite", "legal", "none", "stated")


def _ordered(values: Sequence[str], order: tuple[str, ...], element: str) -> tuple[str, ...]:
    unknown = sorted(set(values) - set(order))
    if unknown:
        raise CodecError(f"{element}: unknown {', '.join(unknown)}")
    return tuple(name for name in order if name in values)


@dataclass(frozen=True)
class DcpStatement:
    """One data collection statement: why data is collected, who receives it, how long it is
    kept (RFC 5730 section 2.4). `ours` recipients' descriptions are not kept."""

    purposes: tuple[str, ...] = ("admin", "prov")
    recipients: tuple[str, ...] = ("ours", "public")
    retention: str = "stated"

    def __post_init__(self) -> None:
        object.__setattr__(self, "purposes",
                           _ordered(self.purposes, DCP_PURPOSES, "epp:purpose"))
        object.__setattr__(self, "recipients",
                           _ordered(self.recipients, DCP_RECIPIENTS, "epp:recipient"))
        choose(self.retention, DCP_RETENTION, "epp:retention")


@dataclass(frozen=True)
class DataCollectionPolicy:
    """`<dcp>`. `expiry` is an absolute datetime or a relative XML Schema duration."""

    access: str = "all"
    statements: tuple[DcpStatement, ...] = (DcpStatement(),)
    expiry: datetime | str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "statements", tuple(self.statements))
        choose(self.access, DCP_ACCESS, "epp:access")
        if not self.statements:
            raise CodecError("epp:dcp: at least one epp:statement is required")
        if isinstance(self.expiry, datetime):
            format_datetime(self.expiry, "epp:absolute")
        elif self.expiry is not None:
            check_token(self.expiry, "epp:relative", minimum=2, maximum=None)


@dataclass(frozen=True)
class Greeting:
    """What a server says on connection and in answer to `<hello/>`."""

    server_id: str
    server_date: datetime
    object_uris: tuple[str, ...] = OBJECT_URIS
    extension_uris: tuple[str, ...] = EXTENSION_URIS
    versions: tuple[str, ...] = (EPP_VERSION,)
    languages: tuple[str, ...] = ("en",)
    dcp: DataCollectionPolicy = field(default_factory=DataCollectionPolicy)

    def __post_init__(self) -> None:
        for name in ("object_uris", "extension_uris", "versions", "languages"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        check_token(self.server_id, "epp:svID", minimum=3, maximum=64)
        format_datetime(self.server_date, "epp:svDate")
        for values, element in ((self.versions, "epp:version"), (self.languages, "epp:lang"),
                                (self.object_uris, "epp:objURI")):
            if not values:
                raise CodecError(f"epp:svcMenu: at least one {element} is required")
        for uri in (*self.versions, *self.languages, *self.object_uris, *self.extension_uris):
            check_token(uri, "epp:svcMenu", minimum=1, maximum=None)


def build_greeting(greeting: Greeting, *, validate: Validator | None = None) -> bytes:
    root = new_document()
    element = add(root, EPP_NS, "greeting")
    add(element, EPP_NS, "svID", greeting.server_id)
    add(element, EPP_NS, "svDate", format_datetime(greeting.server_date, "epp:svDate"))
    menu = add(element, EPP_NS, "svcMenu")
    for local, values in (("version", greeting.versions), ("lang", greeting.languages),
                          ("objURI", greeting.object_uris)):
        for value in values:
            add(menu, EPP_NS, local, value)
    if greeting.extension_uris:
        extensions = add(menu, EPP_NS, "svcExtension")
        for uri in greeting.extension_uris:
            add(extensions, EPP_NS, "extURI", uri)
    dcp = add(element, EPP_NS, "dcp")
    add(add(dcp, EPP_NS, "access"), EPP_NS, greeting.dcp.access)
    for statement in greeting.dcp.statements:
        written = add(dcp, EPP_NS, "statement")
        purpose = add(written, EPP_NS, "purpose")
        for name in statement.purposes:
            add(purpose, EPP_NS, name)
        recipient = add(written, EPP_NS, "recipient")
        for name in statement.recipients:
            add(recipient, EPP_NS, name)
        add(add(written, EPP_NS, "retention"), EPP_NS, statement.retention)
    expiry = greeting.dcp.expiry
    if expiry is not None:
        when = add(dcp, EPP_NS, "expiry")
        if isinstance(expiry, datetime):
            add(when, EPP_NS, "absolute", format_datetime(expiry, "epp:absolute"))
        else:
            add(when, EPP_NS, "relative", expiry)
    return serialize(root, validate)


def parse_greeting(data: bytes, *, validate: Validator | None = None) -> Greeting:
    top = only_child(load(data, validate))
    if top.tag != qualified(EPP_NS, "greeting"):
        raise CodecError(f"epp: expected epp:greeting, found {show(top.tag)}")
    children = Children(top)
    server_id = _text(children, EPP_NS, "svID")
    server_date = _datetime(children, EPP_NS, "svDate")
    menu = Children(children.one(qualified(EPP_NS, "svcMenu")))
    dcp = children.one(qualified(EPP_NS, "dcp"))
    children.end()
    versions = [token(e) for e in menu.many(qualified(EPP_NS, "version"), minimum=1)]
    languages = [token(e) for e in menu.many(qualified(EPP_NS, "lang"), minimum=1)]
    object_uris = [token(e) for e in menu.many(qualified(EPP_NS, "objURI"), minimum=1)]
    extension_uris: list[str] = []
    extensions = menu.optional(qualified(EPP_NS, "svcExtension"))
    menu.end()
    if extensions is not None:
        listed = Children(extensions)
        extension_uris = [token(e) for e in listed.many(qualified(EPP_NS, "extURI"),
                                                        minimum=1)]
        listed.end()
    return Greeting(server_id=server_id, server_date=server_date,
                    object_uris=tuple(object_uris), extension_uris=tuple(extension_uris),
                    versions=tuple(versions), languages=tuple(languages),
                    dcp=_read_dcp(dcp))


def _read_dcp(element: etree._Element) -> DataCollectionPolicy:
    children = Children(element)
    access = _local_name(only_child(children.one(qualified(EPP_NS, "access"))))
    statements: list[DcpStatement] = []
    for statement in children.many(qualified(EPP_NS, "statement"), minimum=1):
        parts = Children(statement)
        purposes = [_local_name(e) for e in parts.one(qualified(EPP_NS, "purpose"))]
        recipients = [_local_name(e) for e in parts.one(qualified(EPP_NS, "recipient"))]
        retention = _local_name(only_child(parts.one(qualified(EPP_NS, "retention"))))
        parts.end()
        statements.append(DcpStatement(tuple(purposes), tuple(recipients), retention))
    expiry_element = children.optional(qualified(EPP_NS, "expiry"))
    children.end()
    expiry: datetime | str | None = None
    if expiry_element is not None:
        when = only_child(expiry_element)
        if when.tag == qualified(EPP_NS, "absolute"):
            expiry = parse_datetime(token(when), "epp:absolute")
        elif when.tag == qualified(EPP_NS, "relative"):
            expiry = token(when)
        else:
            raise CodecError(f"epp:expiry: unexpected element {show(when.tag)}")
    return DataCollectionPolicy(access, tuple(statements), expiry)


def _local_name(element: etree._Element) -> str:
    name = etree.QName(element.tag)
    if name.namespace != EPP_NS:
        raise CodecError(f"epp:dcp: unexpected element {show(element.tag)}")
    return name.localname


__all__ = [
    "CheckResult",
    "ContactCheckData",
    "ContactCreateData",
    "ContactInfoData",
    "ContactTransferData",
    "DataCollectionPolicy",
    "DcpStatement",
    "DomainCheckData",
    "DomainCreateData",
    "DomainInfoData",
    "DomainPendingActionData",
    "DomainRenewData",
    "DomainTransferData",
    "EppResponse",
    "ExtValue",
    "Greeting",
    "HostCheckData",
    "HostCreateData",
    "HostInfoData",
    "Item",
    "MessageQueue",
    "ResponseItem",
    "Result",
    "RgpInfo",
    "RgpUpdateData",
    "SecDnsInfo",
    "build_greeting",
    "build_response",
    "encode_response",
    "parse_greeting",
    "parse_response",
]
