"""One EPP session with the sandbox registry: what it answers to each command.

A session reads a client's data unit, parses and schema-validates it with the shared codec,
checks that the client may send it (logged in, sponsor, statuses), applies it to the sandbox's
state, and answers with a response that is itself validated against the EPP schemas before it
leaves. Every answer carries the client's clTRID (when one could be read) and a fresh svTRID.

Result codes (RFC 5730 section 3, RFC 5731):
- 2001 malformed or schema-invalid document; 2000/2101/2102/2307 from the codec's errors;
- 2002 a command before login, or login twice; 2103 an extension the sandbox does not serve,
  or one the client did not select at login;
- 2200 wrong credentials or a missing client certificate; 2501 and close at the third failure
  (failures with either credential, EPP or registry-lock password, count alike);
- 2201 a registrar acting on a domain it does not sponsor (info and transfer query: unless
  the authInfo matches; transfer approve/reject: not the losing registrar; cancel: not the
  gaining one); 2202 info, transfer request or query with a wrong or missing authInfo;
- 2106 a transfer request by the domain's own sponsor; 2300 a transfer request while one is
  pending; 2301 approve, reject or cancel with no transfer pending, query with none ever;
- 2302 create of a live name (one in redemption included); 2303 a name that is not
  registered (or purged), a poll ack of a message that is not in the registrar's queue;
- 2304 what the domain's statuses prohibit (rules/statuses.py `refusal`): any transform of a
  domain in pendingDelete but the restore of one in its redemption period;
- 2004 a period outside 1 to 10 years, more than 13 nameservers; 2005 a name that is not a
  valid domain or host name; 2306 a name outside the served TLDs or not at the second level,
  a server or unknown status set by a client, an add of what is there or a removal of what is
  not, a renew whose curExpDate is not the expiry date, a renew or transfer that would take
  the registration past 10 years, DS records the DS policy refuses or more than 8, the
  secDNS key data interface (RFC 5910 section 4); 2102 secDNS maxSigLife or urgent, host
  attributes, an `ext` authInfo; 2303 a nameserver inside the served TLDs that is no host
  object; 2305 the delete of a domain with subordinate hosts;
- 1001 a transfer request (the losing registrar is told by poll message), the delete of a
  domain past its add grace period (it enters redemption, see deletions.py); 1300 and 1301
  poll;
- 2201 in a registry-lock session, any command but check, info and an update of
  registry-lock statuses (updates.py);
- 2400 anything unexpected (logged; the session goes on).

Extensions: secDNS-1.1 on create and update (DS data interface; infData on info for a session
that selected secDNS-1.1) and rgp-1.0 (restore request and report; infData on info for a
session that selected rgp-1.0). Work that falls due as time passes (transfers the registry approves,
deleted domains moving through redemption) is done before any command of any session is
handled, so a registrar never sees a state whose time is up, and by the server's timer.

Host objects (hosts.py) and contact objects (contacts.py): check, create, info, update and
delete, with their own statuses, sponsorship (2201) and links (2305: a host a domain names, a
contact a domain names, a domain with subordinate hosts cannot be deleted). A command on an
object service the session did not select at login is refused with 2307, as an unselected
extension is with 2103. Nameservers inside the served TLDs must be host objects, external ones
are taken by name (hosts.py says why). A session that selected contact-1.0 is thick: a domain
create needs a registrant (2003) and every registrant and contact named must exist (2303); a
session without it is a minimum-data session, whose identifiers are kept as given.

Not served: host attributes in domain:ns and `ext` authInfo (2102; the sandbox keeps host
objects and passwords), contact transfers (2101), transfer restrictions after creation or a
prior transfer; authInfo lifetimes. A restore report (RFC 3915) completes a pending restore at
once.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import NoReturn

import structlog
from lxml import etree

from regshield.registry.codec import (
    CONTACT_NS,
    EXTENSION_URIS,
    HOST_NS,
    OBJECT_URIS,
    PREFIXES,
    RGP_NS,
    SECDNS_NS,
    CodecError,
    DomainContact,
    Period,
    RawElement,
    ResultCode,
    Status,
    check_transaction_id,
    result_for_error,
)
from regshield.registry.commands import (
    Command,
    ContactCheck,
    ContactCreate,
    ContactDelete,
    ContactInfo,
    ContactTransfer,
    ContactUpdate,
    DomainCheck,
    DomainCreate,
    DomainDelete,
    DomainInfo,
    DomainRenew,
    DomainTransfer,
    DomainUpdate,
    EppCommand,
    Hello,
    HostCheck,
    HostCreate,
    HostDelete,
    HostInfo,
    HostUpdate,
    Login,
    Logout,
    Poll,
    RgpRestoreReport,
    RgpRestoreRequest,
    SecDnsCreate,
    SecDnsUpdate,
    parse_command,
)
from regshield.registry.responses import (
    CheckResult,
    DomainCheckData,
    DomainCreateData,
    DomainInfoData,
    DomainRenewData,
    DomainTransferData,
    Greeting,
    Item,
    MessageQueue,
    RgpInfo,
    build_greeting,
    build_response,
)
from regshield.registry.sandbox.contacts import (
    check_contact_references,
    check_contacts,
    contact_info,
    create_contact,
    delete_contact,
    update_contact,
)
from regshield.registry.sandbox.deletions import (
    in_add_grace,
    purge,
    rgp_statuses,
    start_redemption,
)
from regshield.registry.sandbox.dnssec import created_ds, ds_info
from regshield.registry.sandbox.domains import (
    auth_info_hash,
    auth_info_matches,
    check_sponsor,
    contact_rows,
    existing,
    nameserver_names,
    served_name,
    shown_statuses,
)
from regshield.registry.sandbox.hosts import (
    check_hosts,
    check_nameserver_objects,
    create_host,
    delete_host,
    host_info,
    subordinate_hosts,
    update_host,
)
from regshield.registry.sandbox.models import (
    SandboxDomain,
    SandboxMessage,
    SandboxRegistrar,
    SandboxTransfer,
)
from regshield.registry.sandbox.refusals import Refusal
from regshield.registry.sandbox.schedule import run_due_work
from regshield.registry.sandbox.state import SandboxState, live_domain
from regshield.registry.sandbox.transfers import (
    PENDING,
    end_transfer,
    latest_transfer,
    message_transfer_data,
    oldest_message,
    queue_message,
    transfer_data,
    waiting_messages,
)
from regshield.registry.sandbox.updates import (
    change_registry_lock,
    refuse_unserved_forms,
    report_restore,
    restore_domain,
    update_domain,
)
from regshield.registry.schemas import validate_epp
from regshield.registry.xml import EPP_NS, UnsafeOrInvalidXml, parse_document
from regshield.rules.statuses import DomainStatus, Operation, refusal
from regshield.security.passwords import hash_password, verify_password

SERVER_ID = "regshield-sandbox"
# Offered like a real registry's, so that clients which always log in with every standard
# object and extension (pyepp does) can connect; a command the sandbox does not carry out yet
# is refused on its own (2101 for the command, 2103 for a command extension).
SERVED_OBJECTS: tuple[str, ...] = OBJECT_URIS
SERVED_EXTENSIONS: tuple[str, ...] = EXTENSION_URIS
LANGUAGES: tuple[str, ...] = ("en",)
PERIOD_YEARS = (1, 10)  # RFC 5731 section 3.2.1 allows 1 to 99; gTLD registries sell 1 to 10

log = structlog.get_logger("regshield.sandbox")


class Credential(Enum):
    """Which of its credentials a registrar logged in with."""

    EPP = "epp"  # the EPP password: every command, no server status
    REGISTRY_LOCK = "registry_lock"  # the lock password: registry-lock statuses only


@dataclass(frozen=True)
class Answer:
    """What a command came to: its result code, its resData, the message queue's state and
    the response extensions."""

    code: ResultCode
    data: Item | None = None
    queue: MessageQueue | None = None
    extensions: tuple[Item, ...] = ()


@dataclass(frozen=True)
class Reply:
    """A response to send, and whether the server closes the connection after it."""

    data: bytes
    close: bool = False


def new_sv_trid() -> str:
    return f"SBX-{secrets.token_hex(12)}"


class SandboxSession:
    """The state of one connection: who is logged in, with which credential and extensions,
    and how many logins failed."""

    def __init__(self, state: SandboxState, peer_certificate_sha256: str | None) -> None:
        self.state = state
        self.peer_certificate_sha256 = peer_certificate_sha256
        self.client_id: str | None = None
        self.credential: Credential | None = None
        self.object_uris: frozenset[str] = frozenset()
        self.extension_uris: frozenset[str] = frozenset()
        self.failures = 0

    def greeting(self) -> bytes:
        return build_greeting(Greeting(
            server_id=SERVER_ID, server_date=self.state.clock.now(),
            object_uris=SERVED_OBJECTS, extension_uris=SERVED_EXTENSIONS,
            languages=LANGUAGES), validate=validate_epp)

    async def handle(self, data: bytes) -> Reply:
        """The answer to one data unit from the client. Never raises for anything the client
        sent."""
        try:
            command = parse_command(data, validate=validate_epp)
        except CodecError as exc:
            return self._reply(result_for_error(exc), exc.detail, _salvage_cl_trid(data))
        if isinstance(command.body, Hello):
            return Reply(self.greeting())
        try:
            answer = await self._dispatch(command)
        except Refusal as refused:
            close = refused.code.closes_session
            return self._reply(refused.code, refused.message, command.cl_trid, close=close)
        except Exception:
            log.exception("sandbox:command:crashed", command=command.command,
                          object=command.object_type)
            return self._reply(ResultCode.COMMAND_FAILED, None, command.cl_trid)
        return self._reply(answer.code, None, command.cl_trid, answer.data, answer.queue,
                           answer.extensions, close=answer.code.closes_session)

    def _reply(self, code: ResultCode, message: str | None, cl_trid: str | None,
               data: Item | None = None, queue: MessageQueue | None = None,
               extensions: tuple[Item, ...] = (), *, close: bool = False) -> Reply:
        try:
            payload = build_response(code, message, cl_trid, new_sv_trid(), data, queue,
                                     extensions, validate=validate_epp)
        except (CodecError, ValueError):  # our own answer is invalid: a bug, never sent
            log.exception("sandbox:response:invalid", code=int(code))
            payload = build_response(ResultCode.COMMAND_FAILED, None, cl_trid, new_sv_trid(),
                                     validate=validate_epp)
        return Reply(payload, close)

    async def _dispatch(self, command: EppCommand) -> Answer:
        body = command.body
        if isinstance(body, Login):
            return Answer(await self._login(body))
        if self.client_id is None:
            raise Refusal(ResultCode.COMMAND_USE_ERROR, "log in first")
        if isinstance(body, Logout):
            self.client_id, self.credential = None, None
            return Answer(ResultCode.COMPLETED_ENDING_SESSION)
        self._check_objects(body)
        self._check_extensions(command)
        if self.credential is Credential.REGISTRY_LOCK \
                and not isinstance(body, DomainCheck | DomainInfo | DomainUpdate):
            raise Refusal(ResultCode.AUTHORIZATION_ERROR,
                          "a registry-lock session reads domains and sets or lifts "
                          "registry-lock statuses, nothing else")
        client = self.client_id
        await run_due_work(self.state)
        if isinstance(body, DomainCheck):
            return Answer(ResultCode.COMPLETED, await self._check(body))
        if isinstance(body, DomainInfo):
            return await self._info(body, client)
        if isinstance(body, DomainCreate):
            return Answer(ResultCode.COMPLETED,
                          await self._create(body, client, command.extension(SecDnsCreate)))
        if isinstance(body, DomainUpdate):
            return await self._update(command, body, client)
        if isinstance(body, DomainDelete):
            return Answer(await self._delete(body, client))
        if isinstance(body, DomainRenew):
            return Answer(ResultCode.COMPLETED, await self._renew(body, client))
        if isinstance(body, DomainTransfer):
            return await self._transfer(body, client)
        if isinstance(body, Poll):
            return await self._poll(body, client)
        if isinstance(body, Command) and body.namespace == HOST_NS:
            return await self._host(body, client)
        if isinstance(body, Command) and body.namespace == CONTACT_NS:
            return await self._contact(body, client)
        raise Refusal(ResultCode.UNIMPLEMENTED_COMMAND,
                      f"{body.object_type or 'epp'}:{body.verb} is not served by the sandbox")

    @property
    def thick(self) -> bool:
        """Whether the session selected contact objects (see contacts.py)."""
        return CONTACT_NS in self.object_uris

    def _check_objects(self, body: Command | Hello) -> None:
        """Refusal 2307 for a command on an object service the client did not select at login
        (RFC 5730 section 2.9.1.1: the login names the objects the session manages)."""
        namespace = body.namespace
        if namespace is not None and namespace not in self.object_uris:
            raise Refusal(ResultCode.UNIMPLEMENTED_OBJECT_SERVICE,
                          f"{PREFIXES.get(namespace, namespace)} ({namespace}) was not "
                          "selected at login")

    async def _host(self, body: Command, client: str) -> Answer:
        """Host commands: see hosts.py for what each refuses."""
        if isinstance(body, HostCheck):
            return Answer(ResultCode.COMPLETED, await check_hosts(self.state, body))
        if isinstance(body, HostCreate):
            return Answer(ResultCode.COMPLETED, await create_host(self.state, body, client))
        if isinstance(body, HostInfo):
            return Answer(ResultCode.COMPLETED, await host_info(self.state, body))
        if isinstance(body, HostUpdate):
            await update_host(self.state, body, client)
            return Answer(ResultCode.COMPLETED)
        if isinstance(body, HostDelete):
            await delete_host(self.state, body, client)
            return Answer(ResultCode.COMPLETED)
        raise Refusal(ResultCode.UNIMPLEMENTED_COMMAND,
                      f"host:{body.verb} is not served by the sandbox")

    async def _contact(self, body: Command, client: str) -> Answer:
        """Contact commands: see contacts.py for what each refuses; transfers are not
        served (2101)."""
        if isinstance(body, ContactCheck):
            return Answer(ResultCode.COMPLETED, await check_contacts(self.state, body))
        if isinstance(body, ContactCreate):
            return Answer(ResultCode.COMPLETED, await create_contact(self.state, body, client))
        if isinstance(body, ContactInfo):
            return Answer(ResultCode.COMPLETED, await contact_info(self.state, body, client))
        if isinstance(body, ContactUpdate):
            await update_contact(self.state, body, client)
            return Answer(ResultCode.COMPLETED)
        if isinstance(body, ContactDelete):
            await delete_contact(self.state, body, client)
            return Answer(ResultCode.COMPLETED)
        what = "contact:transfer" if isinstance(body, ContactTransfer) else f"contact:{body.verb}"
        raise Refusal(ResultCode.UNIMPLEMENTED_COMMAND, f"{what} is not served by the sandbox")

    def _check_extensions(self, command: EppCommand) -> None:
        """Refusal 2103 for an extension the sandbox does not serve, or one the client did not
        select at login (RFC 5730 section 2.9.1.1: the login names the extensions the session
        uses)."""
        for extension in command.extensions:
            if isinstance(extension, RawElement):
                raise Refusal(ResultCode.UNIMPLEMENTED_EXTENSION,
                              f"{extension.namespace or 'no namespace'} is not served")
            namespace = etree.QName(extension.tag).namespace or ""
            if namespace not in self.extension_uris:
                raise Refusal(ResultCode.UNIMPLEMENTED_EXTENSION,
                              f"{PREFIXES.get(namespace, namespace)} ({namespace}) was not "
                              "selected at login")

    # --- session -----------------------------------------------------------------------------

    async def _login(self, login: Login) -> ResultCode:
        """Raises Refusal: 2002 logged in already; 2307, 2103, 2102 what the login asks for
        is not served; 2200 (2501 and close at the last allowed failure) neither credential
        matches or the certificate is missing; 2306 a new password at a registry-lock login
        (that password is handed over out of band), or a new EPP password that is the lock
        password."""
        if self.client_id is not None:
            raise Refusal(ResultCode.COMMAND_USE_ERROR, "already logged in")
        unserved = sorted(set(login.object_uris) - set(SERVED_OBJECTS))
        if unserved:
            raise Refusal(ResultCode.UNIMPLEMENTED_OBJECT_SERVICE,
                          f"objects not served: {', '.join(unserved)}")
        unserved = sorted(set(login.extension_uris) - set(SERVED_EXTENSIONS))
        if unserved:
            raise Refusal(ResultCode.UNIMPLEMENTED_EXTENSION,
                          f"extensions not served: {', '.join(unserved)}")
        if login.lang not in LANGUAGES:
            raise Refusal(ResultCode.UNIMPLEMENTED_OPTION, "the only language is en")
        registrar = await self.state.registrar(login.client_id)
        credential = await self._credential(registrar, login.password.reveal())
        if registrar is None or credential is None:
            self._fail_login(login.client_id)
        if login.new_password is not None:
            await self._change_password(registrar, credential, login.new_password.reveal())
        self.client_id, self.credential = login.client_id, credential
        self.object_uris = frozenset(login.object_uris)
        self.extension_uris = frozenset(login.extension_uris)
        self.failures = 0
        log.info("sandbox:login:succeeded", registrar=login.client_id,
                 credential=credential.value)
        return ResultCode.COMPLETED

    async def _credential(self, registrar: SandboxRegistrar | None,
                          password: str) -> Credential | None:
        """The credential `password` is, if the registrar also presented its certificate.
        A wrong password costs two argon2 verifications whether or not the registrar exists
        or has a lock password, so timing tells neither. They run off the event loop (tens of
        milliseconds each), so other sessions go on."""
        found: Credential | None = None
        if await asyncio.to_thread(verify_password, _hash_of(registrar, Credential.EPP),
                                   password):
            found = Credential.EPP
        elif await asyncio.to_thread(verify_password,
                                     _hash_of(registrar, Credential.REGISTRY_LOCK), password):
            found = Credential.REGISTRY_LOCK
        certificate_ok = registrar is not None and (
            registrar.certificate_sha256 is None
            or registrar.certificate_sha256 == self.peer_certificate_sha256)
        return found if certificate_ok else None

    def _fail_login(self, client_id: str) -> NoReturn:
        self.failures += 1
        log.info("sandbox:login:failed", registrar=client_id, failures=self.failures)
        if self.failures >= self.state.config.max_login_failures:
            raise Refusal(ResultCode.AUTHENTICATION_ERROR_CLOSING)
        raise Refusal(ResultCode.AUTHENTICATION_ERROR)

    async def _change_password(self, registrar: SandboxRegistrar, credential: Credential,
                               new_password: str) -> None:
        if credential is Credential.REGISTRY_LOCK:
            raise Refusal(ResultCode.PARAMETER_VALUE_POLICY_ERROR,
                          "the registry-lock password is changed out of band, not at login")
        if await asyncio.to_thread(verify_password, registrar.lock_password_hash, new_password):
            raise Refusal(ResultCode.PARAMETER_VALUE_POLICY_ERROR,
                          "the new password must differ from the registry-lock password")
        new_hash = await asyncio.to_thread(hash_password, new_password)
        await self.state.set_password_hash(registrar.id, new_hash)

    # --- domain commands ---------------------------------------------------------------------

    async def _check(self, check: DomainCheck) -> DomainCheckData:
        results: list[CheckResult] = []
        async with self.state.store.read() as session:
            for raw in check.names:
                try:
                    name = self._served_name(raw)
                except Refusal as refused:
                    reason = ("Not served by this registry"
                              if refused.code == ResultCode.PARAMETER_VALUE_POLICY_ERROR
                              else "Invalid domain name")
                    results.append(CheckResult(raw, False, reason))
                    continue
                domain = await live_domain(session, name)
                results.append(CheckResult(name, domain is None, _unavailable(domain)))
        return DomainCheckData(tuple(results))

    async def _info(self, info: DomainInfo, client: str) -> Answer:
        """The domain, with its DS records and grace periods for a session that selected
        secDNS-1.1 and rgp-1.0. Raises Refusal: 2303; 2201 another registrar's domain asked
        without authInfo; 2202 a wrong authInfo."""
        name = self._served_name(info.name)
        refuse_unserved_forms(auth_info_ext=info.auth_info_ext)
        async with self.state.store.read() as session:
            domain = await existing(session, name)
            hosts = [host.name for host in await subordinate_hosts(session, name)]
        if domain.sponsor_id != client:
            if info.auth_info is None:
                raise Refusal(ResultCode.AUTHORIZATION_ERROR,
                              f"{name} is sponsored by another registrar")
            if not auth_info_matches(info.auth_info, domain.auth_info_hash):
                raise Refusal(ResultCode.INVALID_AUTHORIZATION_INFORMATION)
        data = _info_data(domain, hosts if info.hosts in ("all", "sub") else [],
                          delegated=info.hosts in ("all", "del"))
        return Answer(ResultCode.COMPLETED, data, extensions=self._info_extensions(domain))

    def _info_extensions(self, domain: SandboxDomain) -> tuple[Item, ...]:
        extensions: list[Item] = []
        ds = ds_info(domain.ds_records)
        if ds is not None and SECDNS_NS in self.extension_uris:
            extensions.append(ds)
        grace = rgp_statuses(domain, self.state.clock.now(), self.state.config)
        if grace and RGP_NS in self.extension_uris:
            extensions.append(RgpInfo(tuple(Status(value) for value in grace)))
        return tuple(extensions)

    async def _create(self, create: DomainCreate, client: str,
                      secdns: SecDnsCreate | None) -> DomainCreateData:
        """Raises Refusal: 2302 the name is taken (in redemption too); 2004 bad period, more
        than 13 nameservers; 2005 bad host name; 2306 DS records the policy refuses or more
        than 8, or secDNS key data; 2102 secDNS maxSigLife, host attributes, an `ext`
        authInfo; 2303 a nameserver inside the served TLDs that is no host object; in a
        thick session, 2003 no registrant and 2303 a registrant or contact that is no
        contact object."""
        name = self._served_name(create.name)
        refuse_unserved_forms(create.host_attributes, create.auth_info_ext)
        assert create.auth_info is not None  # the codec requires a pw or an ext
        if self.thick and create.registrant is None:
            raise Refusal(ResultCode.REQUIRED_PARAMETER_MISSING,
                          "domain:registrant: required in a session that manages contacts")
        years = _period_years(create.period)
        nameservers = nameserver_names(create.nameservers)
        ds_records = created_ds(secdns)
        now = self.state.clock.now()
        async with self.state.store.write() as session:
            if await live_domain(session, name) is not None:
                raise Refusal(ResultCode.OBJECT_EXISTS, f"{name} is registered")
            await check_nameserver_objects(session, nameservers, self.state.config.tlds)
            if self.thick:
                await check_contact_references(session, create.registrant, create.contacts)
            domain = SandboxDomain(
                name=name, roid=f"D{secrets.token_hex(8).upper()}-SANDBOX",
                sponsor_id=client, creator_id=client, statuses=[],
                registrant=create.registrant, contacts=contact_rows(create.contacts),
                nameservers=nameservers, auth_info_hash=auth_info_hash(create.auth_info),
                ds_records=ds_records, created_at=now, expires_at=add_years(now, years))
            session.add(domain)
        log.info("sandbox:domain:created", registrar=client, domain=name)
        return DomainCreateData(name, now, domain.expires_at)

    async def _update(self, command: EppCommand, update: DomainUpdate, client: str) -> Answer:
        """A registry-lock session's update, a restore request or any other update: see
        updates.py for what each refuses."""
        if self.credential is Credential.REGISTRY_LOCK:
            await change_registry_lock(self.state, update, client, bool(command.extensions))
            return Answer(ResultCode.COMPLETED)
        if command.extension(RgpRestoreRequest) is not None:
            restored = await restore_domain(self.state, update, client, len(command.extensions))
            return Answer(ResultCode.COMPLETED, extensions=(restored,))
        report = command.extension(RgpRestoreReport)
        if report is not None:
            await report_restore(self.state, update, client, report, len(command.extensions))
            return Answer(ResultCode.COMPLETED)
        await update_domain(self.state, update, client, command.extension(SecDnsUpdate),
                            thick=self.thick)
        return Answer(ResultCode.COMPLETED)

    async def _delete(self, delete: DomainDelete, client: str) -> ResultCode:
        """Within the add grace period the name is purged at once (1000); later the domain
        enters its redemption period (1001), and the sponsor hears by poll message how it
        ends. Raises Refusal: 2303; 2201 not the sponsor; 2304 a status prohibits deletion
        (pendingDelete included); 2305 the domain has subordinate hosts (RFC 5731 section
        3.2.2: they are deleted, or renamed out of it, first)."""
        name = self._served_name(delete.name)
        now = self.state.clock.now()
        async with self.state.store.write() as session:
            domain = await existing(session, name)
            check_sponsor(domain, client)
            reason = refusal(Operation.DELETE, domain.statuses)
            if reason is not None:
                raise Refusal(ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION, reason)
            hosts = await subordinate_hosts(session, name)
            if hosts:
                raise Refusal(ResultCode.OBJECT_ASSOCIATION_PROHIBITS_OPERATION,
                              f"{name} has subordinate hosts ({hosts[0].name}); delete them "
                              "first")
            domain.updater_id = client
            purged = in_add_grace(domain, now, self.state.config)
            if purged:
                purge(domain, now)
            else:
                start_redemption(domain, now, self.state.config)
        log.info("sandbox:domain:deleted", registrar=client, domain=name, purged=purged)
        return ResultCode.COMPLETED if purged else ResultCode.COMPLETED_ACTION_PENDING

    async def _renew(self, renew: DomainRenew, client: str) -> DomainRenewData:
        """Raises Refusal: 2303 no such domain, 2201 not the sponsor, 2306 curExpDate is not
        the expiry date or the registration would pass 10 years, 2004 bad period, 2304 a
        status prohibits renewal."""
        name = self._served_name(renew.name)
        years = _period_years(renew.period)
        now = self.state.clock.now()
        async with self.state.store.write() as session:
            domain = await existing(session, name)
            check_sponsor(domain, client)
            if renew.current_expiry != domain.expires_at.date():
                # The guard against a retried renewal renewing twice (RFC 5731 section 3.2.3).
                raise Refusal(ResultCode.PARAMETER_VALUE_POLICY_ERROR,
                              f"domain:curExpDate: {renew.current_expiry} is not the expiry "
                              "date of the domain")
            reason = refusal(Operation.RENEW, domain.statuses)
            if reason is not None:
                raise Refusal(ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION, reason)
            expires = add_years(domain.expires_at, years)
            _check_within_ten_years(expires, now)
            domain.expires_at = expires
            domain.updated_at = now
            domain.updater_id = client
        log.info("sandbox:domain:renewed", registrar=client, domain=name, years=years)
        return DomainRenewData(name, expires)

    async def _transfer(self, transfer: DomainTransfer, client: str) -> Answer:
        name = self._served_name(transfer.name)
        refuse_unserved_forms(auth_info_ext=transfer.auth_info_ext)
        if transfer.op == "request":
            return Answer(ResultCode.COMPLETED_ACTION_PENDING,
                          await self._transfer_request(transfer, name, client))
        if transfer.op == "query":
            return Answer(ResultCode.COMPLETED,
                          await self._transfer_query(transfer, name, client))
        return Answer(ResultCode.COMPLETED,
                      await self._transfer_decision(transfer, name, client))

    async def _transfer_request(self, request: DomainTransfer, name: str,
                                client: str) -> DomainTransferData:
        """The gaining registrar asks for the domain with the registrant's authInfo.

        Raises Refusal: 2303 no such domain, 2106 the sponsor asks for its own domain, 2202
        wrong or missing authInfo, 2300 a transfer is pending, 2304 a status prohibits
        transfer, 2004 bad period, 2306 the registration would pass 10 years."""
        years = _period_years(request.period)
        now = self.state.clock.now()
        async with self.state.store.write() as session:
            domain = await existing(session, name)
            if domain.sponsor_id == client:
                raise Refusal(ResultCode.NOT_ELIGIBLE_FOR_TRANSFER,
                              f"{name} is already sponsored by {client}")
            if request.auth_info is None \
                    or not auth_info_matches(request.auth_info, domain.auth_info_hash):
                raise Refusal(ResultCode.INVALID_AUTHORIZATION_INFORMATION)
            if DomainStatus.PENDING_TRANSFER in domain.statuses:
                raise Refusal(ResultCode.OBJECT_PENDING_TRANSFER,
                              f"a transfer of {name} is pending")
            reason = refusal(Operation.TRANSFER, domain.statuses)
            if reason is not None:
                raise Refusal(ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION, reason)
            expires = add_years(domain.expires_at, years)
            _check_within_ten_years(expires, now)
            record = SandboxTransfer(
                domain_id=domain.id, status=PENDING, requesting_id=client, requested_at=now,
                acting_id=domain.sponsor_id, act_by=now + self.state.config.transfer_auto_approve,
                period_years=years, expires_at=expires)
            session.add(record)
            domain.statuses = sorted({*domain.statuses, DomainStatus.PENDING_TRANSFER})
            data = transfer_data(record, name)
            queue_message(session, domain.sponsor_id, f"Transfer requested: {name}", now, data)
        log.info("sandbox:transfer:requested", gaining=client, losing=data.acting_client,
                 domain=name)
        return data

    async def _transfer_query(self, query: DomainTransfer, name: str,
                              client: str) -> DomainTransferData:
        """The most recent transfer of the domain, for either party or whoever holds the
        authInfo. Raises Refusal: 2303, 2301 never transferred, 2201 neither party, 2202
        wrong authInfo."""
        async with self.state.store.read() as session:
            domain = await existing(session, name)
            record = await latest_transfer(session, domain)
        if record is None:
            raise Refusal(ResultCode.OBJECT_NOT_PENDING_TRANSFER,
                          f"{name} has never been transferred")
        if client not in (record.requesting_id, record.acting_id):
            if query.auth_info is None:
                raise Refusal(ResultCode.AUTHORIZATION_ERROR,
                              f"{name}'s transfer is between other registrars")
            if not auth_info_matches(query.auth_info, domain.auth_info_hash):
                raise Refusal(ResultCode.INVALID_AUTHORIZATION_INFORMATION)
        return transfer_data(record, name)

    async def _transfer_decision(self, decision: DomainTransfer, name: str,
                                 client: str) -> DomainTransferData:
        """The losing registrar approves or rejects; the gaining registrar cancels.
        Raises Refusal: 2303, 2301 no transfer pending, 2201 the other party's decision."""
        status, decider = {"approve": ("clientApproved", "acting"),
                           "reject": ("clientRejected", "acting"),
                           "cancel": ("clientCancelled", "requesting")}[decision.op]
        now = self.state.clock.now()
        async with self.state.store.write() as session:
            domain = await existing(session, name)
            record = await latest_transfer(session, domain)
            if record is None or record.status != PENDING:
                raise Refusal(ResultCode.OBJECT_NOT_PENDING_TRANSFER,
                              f"no transfer of {name} is pending")
            allowed = record.acting_id if decider == "acting" else record.requesting_id
            if client != allowed:
                raise Refusal(ResultCode.AUTHORIZATION_ERROR,
                              f"only {'the losing' if decider == 'acting' else 'the gaining'} "
                              f"registrar may {decision.op} this transfer")
            data = await end_transfer(session, domain, record, status, now)
        return data

    async def _poll(self, poll: Poll, client: str) -> Answer:
        """`req`: the oldest message in the registrar's queue (1301) or 1300 when it is empty.
        `ack`: remove one message. Raises Refusal: 2303 no such message in this queue."""
        if poll.op == "req":
            async with self.state.store.read() as session:
                message = await oldest_message(session, client)
                count = await waiting_messages(session, client)
            if message is None:
                return Answer(ResultCode.COMPLETED_NO_MESSAGES)
            queue = MessageQueue(count, str(message.id), message.queued_at, message.summary)
            return Answer(ResultCode.COMPLETED_ACK_TO_DEQUEUE, message_transfer_data(message),
                          queue)
        message_id = _message_number(poll.message_id)
        async with self.state.store.write() as session:
            message = None if message_id is None \
                else await session.get(SandboxMessage, message_id)
            if message is None or message.registrar_id != client \
                    or message.acknowledged_at is not None:
                raise Refusal(ResultCode.OBJECT_DOES_NOT_EXIST,
                              f"no message {poll.message_id} in your queue")
            message.acknowledged_at = self.state.clock.now()
            await session.flush()
            count = await waiting_messages(session, client)
        return Answer(ResultCode.COMPLETED, None, MessageQueue(count, str(message.id)))

    def _served_name(self, raw: str) -> str:
        return served_name(raw, self.state.config.tlds)


# --- helpers ---------------------------------------------------------------------------------

def _hash_of(registrar: SandboxRegistrar | None, credential: Credential) -> str | None:
    if registrar is None:
        return None
    if credential is Credential.REGISTRY_LOCK:
        return registrar.lock_password_hash
    return registrar.password_hash


def _unavailable(domain: SandboxDomain | None) -> str | None:
    """Why a checked name is not available, or None when it is."""
    if domain is None:
        return None
    return "Pending delete" if DomainStatus.PENDING_DELETE in domain.statuses else "In use"


def _info_data(domain: SandboxDomain, hosts: list[str], *, delegated: bool) -> DomainInfoData:
    """`hosts` are the subordinate hosts to show; `delegated`, whether to show the
    nameservers (the info's hosts filter, RFC 5731 section 3.1.2)."""
    # The authInfo is never returned: only its salted hash is kept (RFC 9154 section 4.3).
    return DomainInfoData(
        name=domain.name, roid=domain.roid, sponsoring_client=domain.sponsor_id,
        statuses=tuple(Status(value) for value in shown_statuses(domain.statuses)),
        registrant=domain.registrant,
        contacts=tuple(DomainContact(c["type"], c["id"]) for c in domain.contacts),
        nameservers=tuple(domain.nameservers) if delegated else (), hosts=tuple(hosts),
        created_by=domain.creator_id,
        created=domain.created_at, updated_by=domain.updater_id,
        updated=domain.updated_at, expires=domain.expires_at,
        transferred=domain.transferred_at)


def _period_years(period: Period | None) -> int:
    low, high = PERIOD_YEARS
    if period is None:
        return low
    value, unit = period.value, period.unit
    if unit == "m" and value % 12:
        raise Refusal(ResultCode.PARAMETER_VALUE_RANGE_ERROR,
                      "domain:period: whole years only")
    years = value if unit == "y" else value // 12
    if not low <= years <= high:
        raise Refusal(ResultCode.PARAMETER_VALUE_RANGE_ERROR,
                      f"domain:period: {low} to {high} years, not {years}")
    return years


def _check_within_ten_years(expires: datetime, now: datetime) -> None:
    """gTLD registries register a name for at most 10 years ahead (RFC 5731 leaves it to
    policy): a renewal or transfer that would go further is refused, not cut short."""
    limit = add_years(now, PERIOD_YEARS[1])
    if expires > limit:
        raise Refusal(ResultCode.PARAMETER_VALUE_POLICY_ERROR,
                      f"the new expiry {expires.date()} is more than {PERIOD_YEARS[1]} years "
                      "ahead")


def _message_number(raw: str | None) -> int | None:
    """The message's row number from a msgID, or None when it cannot be one of ours."""
    if raw is None or not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        return None
    return int(raw)


def add_years(moment: datetime, years: int) -> datetime:
    """The same day and time `years` later; 29 February becomes 28 February."""
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:
        return moment.replace(year=moment.year + years, day=28)


def _salvage_cl_trid(data: bytes) -> str | None:
    """The clTRID of a document the codec refused, when it is well-formed enough to hold one,
    so that the client can match even an error to its command."""
    try:
        root = parse_document(data)
    except UnsafeOrInvalidXml:
        return None
    found = root.find(f"{{{EPP_NS}}}command/{{{EPP_NS}}}clTRID")
    if found is None or len(found):
        return None
    try:
        return check_transaction_id(" ".join((found.text or "").split()), "epp:clTRID")
    except CodecError:
        return None


__all__ = ["Answer", "Credential", "Refusal", "Reply", "SandboxSession", "add_years"]
