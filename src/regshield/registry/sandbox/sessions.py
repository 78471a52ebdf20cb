"""One EPP session with the sandbox registry: what it answers to each command.

A session reads a client's data unit, parses and schema-validates it with the shared codec,
checks that the client may send it (logged in, sponsor, statuses), applies it to the sandbox's
state, and answers with a response that is itself validated against the EPP schemas before it
leaves. Every answer carries the client's clTRID (when one could be read) and a fresh svTRID.

Result codes (RFC 5730 section 3, RFC 5731):
- 2001 malformed or schema-invalid document; 2000/2101/2102/2307 from the codec's errors;
- 2002 a command before login, or login twice; 2103 any command extension (none is served yet);
- 2200 wrong credentials or a missing client certificate; 2501 and close at the third failure;
- 2201 a registrar acting on a domain it does not sponsor (info and transfer query: unless
  the authInfo matches; transfer approve/reject: not the losing registrar; cancel: not the
  gaining one); 2202 info, transfer request or query with a wrong or missing authInfo;
- 2106 a transfer request by the domain's own sponsor; 2300 a transfer request while one is
  pending; 2301 approve, reject or cancel with no transfer pending, query with none ever;
- 2302 create of a live name; 2303 a name that is not registered, a poll ack of a message
  that is not in the registrar's queue;
- 2304 what the domain's statuses prohibit (rules/statuses.py `refusal`);
- 2004 a period outside 1 to 10 years, more than 13 nameservers; 2005 a name that is not a
  valid domain or host name; 2306 a name outside the served TLDs or not at the second level,
  a server or unknown status set by a client, an add of what is there or a removal of what is
  not, a renew whose curExpDate is not the expiry date, a renew or transfer that would take
  the registration past 10 years;
- 1001 a transfer request (the losing registrar is told by poll message); 1300 and 1301 poll;
- 2400 anything unexpected (logged; the session goes on).

A pending transfer whose acDate has passed is approved by the registry (serverApproved) before
any command of any session is handled, so a registrar never sees it still pending.

Not yet served: host and contact objects (nameservers are taken as host names, not checked
against host objects; registrant and contacts are kept as given), RGP and secDNS; transfer
restrictions after creation or a prior transfer; authInfo lifetimes.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from regshield.errors import ValidationFailed
from regshield.registry.codec import (
    EXTENSION_URIS,
    OBJECT_URIS,
    CodecError,
    DomainContact,
    Period,
    ResultCode,
    Secret,
    Status,
    check_transaction_id,
    result_for_error,
)
from regshield.registry.commands import (
    DomainChanges,
    DomainCheck,
    DomainCreate,
    DomainDelete,
    DomainInfo,
    DomainRenew,
    DomainTransfer,
    DomainUpdate,
    EppCommand,
    Hello,
    Login,
    Logout,
    Poll,
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
    build_greeting,
    build_response,
)
from regshield.registry.sandbox.models import SandboxDomain, SandboxMessage, SandboxTransfer
from regshield.registry.sandbox.state import SandboxState
from regshield.registry.sandbox.transfers import (
    PENDING,
    approve_due_transfers,
    end_transfer,
    has_due_transfers,
    latest_transfer,
    message_transfer_data,
    oldest_message,
    queue_message,
    transfer_data,
    waiting_messages,
)
from regshield.registry.schemas import validate_epp
from regshield.registry.xml import EPP_NS, UnsafeOrInvalidXml, parse_document
from regshield.rules.names import MAX_NAMESERVERS, parse_domain_name, parse_nameservers
from regshield.rules.statuses import CLIENT_STATUSES, DomainStatus, Operation, refusal
from regshield.security.passwords import hash_password, verify_password
from regshield.security.transfer_codes import transfer_code_hash, verify_transfer_code

SERVER_ID = "regshield-sandbox"
# Offered like a real registry's, so that clients which always log in with every standard
# object and extension (pyepp does) can connect; a command the sandbox does not carry out yet
# is refused on its own (2101 for the command, 2103 for a command extension).
SERVED_OBJECTS: tuple[str, ...] = OBJECT_URIS
SERVED_EXTENSIONS: tuple[str, ...] = EXTENSION_URIS
LANGUAGES: tuple[str, ...] = ("en",)
PERIOD_YEARS = (1, 10)  # RFC 5731 section 3.2.1 allows 1 to 99; gTLD registries sell 1 to 10

H = TypeVar("H", str, tuple[str, str])
log = structlog.get_logger("regshield.sandbox")


class Refusal(Exception):
    """The command is refused with `code`; `message` says why (never a secret)."""

    def __init__(self, code: ResultCode, message: str | None = None) -> None:
        super().__init__(message or code.message)
        self.code = code
        self.message = message or code.message


@dataclass(frozen=True)
class Answer:
    """What a command came to: its result code, its resData and the message queue's state."""

    code: ResultCode
    data: Item | None = None
    queue: MessageQueue | None = None


@dataclass(frozen=True)
class Reply:
    """A response to send, and whether the server closes the connection after it."""

    data: bytes
    close: bool = False


def new_sv_trid() -> str:
    return f"SBX-{secrets.token_hex(12)}"


class SandboxSession:
    """The state of one connection: who is logged in, and how many logins failed."""

    def __init__(self, state: SandboxState, peer_certificate_sha256: str | None) -> None:
        self.state = state
        self.peer_certificate_sha256 = peer_certificate_sha256
        self.client_id: str | None = None
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
                           close=answer.code.closes_session)

    def _reply(self, code: ResultCode, message: str | None, cl_trid: str | None,
               data: Item | None = None, queue: MessageQueue | None = None, *,
               close: bool = False) -> Reply:
        try:
            payload = build_response(code, message, cl_trid, new_sv_trid(), data, queue,
                                     validate=validate_epp)
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
            self.client_id = None
            return Answer(ResultCode.COMPLETED_ENDING_SESSION)
        if command.extensions:
            raise Refusal(ResultCode.UNIMPLEMENTED_EXTENSION,
                          "this registry serves no command extension yet")
        client = self.client_id
        await self._approve_due_transfers()
        if isinstance(body, DomainCheck):
            return Answer(ResultCode.COMPLETED, await self._check(body))
        if isinstance(body, DomainInfo):
            return Answer(ResultCode.COMPLETED, await self._info(body, client))
        if isinstance(body, DomainCreate):
            return Answer(ResultCode.COMPLETED, await self._create(body, client))
        if isinstance(body, DomainUpdate):
            await self._update(body, client)
            return Answer(ResultCode.COMPLETED)
        if isinstance(body, DomainDelete):
            await self._delete(body, client)
            return Answer(ResultCode.COMPLETED)
        if isinstance(body, DomainRenew):
            return Answer(ResultCode.COMPLETED, await self._renew(body, client))
        if isinstance(body, DomainTransfer):
            return await self._transfer(body, client)
        if isinstance(body, Poll):
            return await self._poll(body, client)
        raise Refusal(ResultCode.UNIMPLEMENTED_COMMAND,
                      f"{body.object_type or 'epp'}:{body.verb} is not served by the sandbox")

    # --- session -----------------------------------------------------------------------------

    async def _login(self, login: Login) -> ResultCode:
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
        # argon2 takes tens of milliseconds: off the event loop, so other sessions go on.
        password_ok = await asyncio.to_thread(
            verify_password, None if registrar is None else registrar.password_hash,
            login.password.reveal())
        certificate_ok = registrar is not None and (
            registrar.certificate_sha256 is None
            or registrar.certificate_sha256 == self.peer_certificate_sha256)
        if not (password_ok and certificate_ok):
            self.failures += 1
            log.info("sandbox:login:failed", registrar=login.client_id,
                     failures=self.failures)
            if self.failures >= self.state.config.max_login_failures:
                raise Refusal(ResultCode.AUTHENTICATION_ERROR_CLOSING)
            raise Refusal(ResultCode.AUTHENTICATION_ERROR)
        if login.new_password is not None:
            new_hash = await asyncio.to_thread(hash_password, login.new_password.reveal())
            await self.state.set_password_hash(login.client_id, new_hash)
        self.client_id = login.client_id
        self.failures = 0
        log.info("sandbox:login:succeeded", registrar=login.client_id)
        return ResultCode.COMPLETED

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
                taken = await _live_domain(session, name) is not None
                results.append(CheckResult(name, not taken, "In use" if taken else None))
        return DomainCheckData(tuple(results))

    async def _info(self, info: DomainInfo, client: str) -> DomainInfoData:
        name = self._served_name(info.name)
        async with self.state.store.read() as session:
            domain = await _existing(session, name)
        if domain.sponsor_id != client:
            if info.auth_info is None:
                raise Refusal(ResultCode.AUTHORIZATION_ERROR,
                              f"{name} is sponsored by another registrar")
            if not _auth_info_matches(info.auth_info, domain.auth_info_hash):
                raise Refusal(ResultCode.INVALID_AUTHORIZATION_INFORMATION)
        # The authInfo is never returned: only its salted hash is kept (RFC 9154 section 4.3).
        return DomainInfoData(
            name=domain.name, roid=domain.roid, sponsoring_client=domain.sponsor_id,
            statuses=tuple(Status(value) for value in _shown_statuses(domain.statuses)),
            registrant=domain.registrant,
            contacts=tuple(DomainContact(c["type"], c["id"]) for c in domain.contacts),
            nameservers=tuple(domain.nameservers), created_by=domain.creator_id,
            created=domain.created_at, updated_by=domain.updater_id,
            updated=domain.updated_at, expires=domain.expires_at,
            transferred=domain.transferred_at)

    async def _create(self, create: DomainCreate, client: str) -> DomainCreateData:
        name = self._served_name(create.name)
        years = _period_years(create.period)
        nameservers = _nameservers(create.nameservers)
        now = self.state.clock.now()
        async with self.state.store.write() as session:
            if await _live_domain(session, name) is not None:
                raise Refusal(ResultCode.OBJECT_EXISTS, f"{name} is registered")
            domain = SandboxDomain(
                name=name, roid=f"D{secrets.token_hex(8).upper()}-SANDBOX",
                sponsor_id=client, creator_id=client, statuses=[],
                registrant=create.registrant, contacts=_contact_rows(create.contacts),
                nameservers=nameservers, auth_info_hash=_auth_info_hash(create.auth_info),
                created_at=now, expires_at=add_years(now, years))
            session.add(domain)
        log.info("sandbox:domain:created", registrar=client, domain=name)
        return DomainCreateData(name, now, domain.expires_at)

    async def _update(self, update: DomainUpdate, client: str) -> None:
        name = self._served_name(update.name)
        added = _status_values(update.add.statuses)
        removed = _status_values(update.remove.statuses)
        other_change = not (_no_objects(update.add) and _no_objects(update.remove)
                            and update.registrant is None and update.auth_info is None)
        if not (other_change or added or removed):
            raise Refusal(ResultCode.REQUIRED_PARAMETER_MISSING, "the update changes nothing")
        foreign = sorted((added | removed) - CLIENT_STATUSES)
        if foreign:
            raise Refusal(ResultCode.PARAMETER_VALUE_POLICY_ERROR,
                          f"a registrar sets only client statuses, not {', '.join(foreign)}")
        added_hosts = _nameservers(update.add.nameservers)
        removed_hosts = _nameservers(update.remove.nameservers)
        async with self.state.store.write() as session:
            domain = await _existing(session, name)
            if domain.sponsor_id != client:
                raise Refusal(ResultCode.AUTHORIZATION_ERROR,
                              f"{name} is sponsored by another registrar")
            current = frozenset(domain.statuses)
            reason = refusal(Operation.UPDATE, current, adding=added, removing=removed,
                             changes_other_fields=other_change)
            if reason is not None:
                raise Refusal(ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION, reason)
            domain.statuses = sorted(_changed(current, added, removed, "status"))
            hosts = _changed(domain.nameservers, added_hosts, removed_hosts, "nameserver")
            if len(hosts) > MAX_NAMESERVERS:
                raise Refusal(ResultCode.PARAMETER_VALUE_RANGE_ERROR,
                              f"at most {MAX_NAMESERVERS} nameservers")
            domain.nameservers = [host for host in dict.fromkeys([*domain.nameservers,
                                                                  *added_hosts])
                                  if host in hosts]
            contacts = _changed(_contact_keys(domain.contacts),
                                _contact_keys(_contact_rows(update.add.contacts)),
                                _contact_keys(_contact_rows(update.remove.contacts)), "contact")
            domain.contacts = [{"type": kind, "id": ident} for kind, ident in sorted(contacts)]
            if update.registrant is not None:
                domain.registrant = update.registrant
            if update.auth_info is not None:
                domain.auth_info_hash = _auth_info_hash(update.auth_info)
            domain.updated_at = self.state.clock.now()
            domain.updater_id = client
        log.info("sandbox:domain:updated", registrar=client, domain=name)

    async def _delete(self, delete: DomainDelete, client: str) -> None:
        name = self._served_name(delete.name)
        async with self.state.store.write() as session:
            domain = await _existing(session, name)
            if domain.sponsor_id != client:
                raise Refusal(ResultCode.AUTHORIZATION_ERROR,
                              f"{name} is sponsored by another registrar")
            reason = refusal(Operation.DELETE, domain.statuses)
            if reason is not None:
                raise Refusal(ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION, reason)
            # Soft: the record stays as history; the name is free again at once (no RGP yet).
            domain.deleted_at = self.state.clock.now()
            domain.updater_id = client
        log.info("sandbox:domain:deleted", registrar=client, domain=name)

    async def _renew(self, renew: DomainRenew, client: str) -> DomainRenewData:
        """Raises Refusal: 2303 no such domain, 2201 not the sponsor, 2306 curExpDate is not
        the expiry date or the registration would pass 10 years, 2004 bad period, 2304 a
        status prohibits renewal."""
        name = self._served_name(renew.name)
        years = _period_years(renew.period)
        now = self.state.clock.now()
        async with self.state.store.write() as session:
            domain = await _existing(session, name)
            if domain.sponsor_id != client:
                raise Refusal(ResultCode.AUTHORIZATION_ERROR,
                              f"{name} is sponsored by another registrar")
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
            domain = await _existing(session, name)
            if domain.sponsor_id == client:
                raise Refusal(ResultCode.NOT_ELIGIBLE_FOR_TRANSFER,
                              f"{name} is already sponsored by {client}")
            if request.auth_info is None \
                    or not _auth_info_matches(request.auth_info, domain.auth_info_hash):
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
            domain = await _existing(session, name)
            record = await latest_transfer(session, domain)
        if record is None:
            raise Refusal(ResultCode.OBJECT_NOT_PENDING_TRANSFER,
                          f"{name} has never been transferred")
        if client not in (record.requesting_id, record.acting_id):
            if query.auth_info is None:
                raise Refusal(ResultCode.AUTHORIZATION_ERROR,
                              f"{name}'s transfer is between other registrars")
            if not _auth_info_matches(query.auth_info, domain.auth_info_hash):
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
            domain = await _existing(session, name)
            record = await latest_transfer(session, domain)
            if record is None or record.status != PENDING:
                raise Refusal(ResultCode.OBJECT_NOT_PENDING_TRANSFER,
                              f"no transfer of {name} is pending")
            allowed = record.acting_id if decider == "acting" else record.requesting_id
            if client != allowed:
                raise Refusal(ResultCode.AUTHORIZATION_ERROR,
                              f"only {'the losing' if decider == 'acting' else 'the gaining'} "
                              f"registrar may {decision.op} this transfer")
            data = end_transfer(session, domain, record, status, now)
        return data

    async def _approve_due_transfers(self) -> None:
        now = self.state.clock.now()
        async with self.state.store.read() as session:
            due = await has_due_transfers(session, now)
        if due:  # the read first: most commands find nothing due and need no write lock
            async with self.state.store.write() as session:
                await approve_due_transfers(session, now)

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
        """The canonical A-label form of a name this registry serves, or a Refusal."""
        try:
            name = parse_domain_name(raw, "domain:name")
        except ValidationFailed as exc:
            raise Refusal(ResultCode.PARAMETER_VALUE_SYNTAX_ERROR,
                          f"domain:name: {exc.errors[0].message}") from None
        if name.tld not in self.state.config.tlds:
            raise Refusal(ResultCode.PARAMETER_VALUE_POLICY_ERROR,
                          f"domain:name: .{name.tld} is not served by this registry "
                          f"(served: {', '.join(self.state.config.tlds)})")
        if len(name.labels) != 2:
            raise Refusal(ResultCode.PARAMETER_VALUE_POLICY_ERROR,
                          "domain:name: names are registered at the second level only")
        return name.ascii


# --- helpers ---------------------------------------------------------------------------------

async def _live_domain(session: AsyncSession, name: str) -> SandboxDomain | None:
    found = await session.scalars(select(SandboxDomain).where(
        SandboxDomain.name == name, SandboxDomain.deleted_at.is_(None)))
    return found.one_or_none()


async def _existing(session: AsyncSession, name: str) -> SandboxDomain:
    domain = await _live_domain(session, name)
    if domain is None:
        raise Refusal(ResultCode.OBJECT_DOES_NOT_EXIST, f"{name} is not registered")
    return domain


def _shown_statuses(statuses: Iterable[str]) -> list[str]:
    """The statuses to report: "ok" alone when there is none (RFC 5731 section 2.3)."""
    values = sorted(set(statuses) - {"ok"})
    return values or ["ok"]


def _status_values(statuses: Iterable[Status]) -> frozenset[str]:
    return frozenset(status.value for status in statuses)


def _no_objects(changes: DomainChanges) -> bool:
    return not (changes.nameservers or changes.contacts)


def _changed(current: Iterable[H], added: Iterable[H], removed: Iterable[H],
             what: str) -> set[H]:
    """`current` less `removed` plus `added`; removing what is not there, or adding what is,
    is refused rather than ignored, so that a client's view of the domain is never stale."""
    present = set(current)
    for item in removed:
        if item not in present:
            raise Refusal(ResultCode.PARAMETER_VALUE_POLICY_ERROR,
                          f"the {what} {_label(item)} is not on the domain")
        present.discard(item)
    for item in added:
        if item in present:
            raise Refusal(ResultCode.PARAMETER_VALUE_POLICY_ERROR,
                          f"the {what} {_label(item)} is already on the domain")
        present.add(item)
    return present


def _label(item: object) -> str:
    return ":".join(item) if isinstance(item, tuple) else str(item)


def _nameservers(values: tuple[str, ...]) -> list[str]:
    try:
        return [name.ascii for name in parse_nameservers(list(values), "domain:hostObj")]
    except ValidationFailed as exc:
        codes = {error.code for error in exc.errors}
        code = (ResultCode.PARAMETER_VALUE_RANGE_ERROR if "too_many" in codes
                else ResultCode.PARAMETER_VALUE_POLICY_ERROR if codes == {"duplicate"}
                else ResultCode.PARAMETER_VALUE_SYNTAX_ERROR)
        raise Refusal(code, f"{exc.errors[0].field}: {exc.errors[0].message}") from None


def _contact_rows(contacts: Iterable[DomainContact]) -> list[dict[str, str]]:
    return [{"type": contact.type, "id": contact.id} for contact in contacts]


def _contact_keys(rows: Iterable[dict[str, str]]) -> list[tuple[str, str]]:
    return [(row["type"], row["id"]) for row in rows]


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


def _auth_info_hash(secret: Secret) -> str | None:
    """The salted hash of an authInfo; an empty one means none is set (RFC 9154 section 4.2)."""
    code = secret.reveal()
    return transfer_code_hash(code) if code.strip() else None


def _auth_info_matches(secret: Secret, stored_hash: str | None) -> bool:
    code = secret.reveal()
    return bool(stored_hash) and bool(code.strip()) \
        and verify_transfer_code(code, stored_hash or "")


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


__all__ = ["Answer", "Refusal", "Reply", "SandboxSession", "add_years"]
