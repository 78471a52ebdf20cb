"""One EPP session with the sandbox registry: what it answers to each command.

A session reads a client's data unit, parses and schema-validates it with the shared codec,
checks that the client may send it (logged in, sponsor, statuses), applies it to the sandbox's
state, and answers with a response that is itself validated against the EPP schemas before it
leaves. Every answer carries the client's clTRID (when one could be read) and a fresh svTRID.

Result codes (RFC 5730 section 3, RFC 5731):
- 2001 malformed or schema-invalid document; 2000/2101/2102/2307 from the codec's errors;
- 2002 a command before login, or login twice; 2103 any command extension (none is served yet);
- 2200 wrong credentials or a missing client certificate; 2501 and close at the third failure;
- 2201 a registrar acting on a domain it does not sponsor (info: unless the authInfo matches);
  2202 info with a wrong authInfo;
- 2302 create of a live name; 2303 a name that is not registered;
- 2304 what the domain's statuses prohibit (rules/statuses.py `refusal`);
- 2004 a period outside 1 to 10 years, more than 13 nameservers; 2005 a name that is not a
  valid domain or host name; 2306 a name outside the served TLDs or not at the second level,
  a server or unknown status set by a client, an add of what is there or a removal of what is
  not;
- 2400 anything unexpected (logged; the session goes on).

Not yet served: host and contact objects (nameservers are taken as host names, not checked
against host objects; registrant and contacts are kept as given), renew, transfer, poll, RGP
and secDNS.
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
    DOMAIN_NS,
    CodecError,
    DomainContact,
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
    DomainUpdate,
    EppCommand,
    Hello,
    Login,
    Logout,
    parse_command,
)
from regshield.registry.responses import (
    CheckResult,
    DomainCheckData,
    DomainCreateData,
    DomainInfoData,
    Greeting,
    Item,
    build_greeting,
    build_response,
)
from regshield.registry.sandbox.models import SandboxDomain
from regshield.registry.sandbox.state import SandboxState
from regshield.registry.schemas import validate_epp
from regshield.registry.xml import EPP_NS, UnsafeOrInvalidXml, parse_document
from regshield.rules.names import MAX_NAMESERVERS, parse_domain_name, parse_nameservers
from regshield.rules.statuses import CLIENT_STATUSES, Operation, refusal
from regshield.security.passwords import hash_password, verify_password
from regshield.security.transfer_codes import transfer_code_hash, verify_transfer_code

SERVER_ID = "regshield-sandbox"
SERVED_OBJECTS: tuple[str, ...] = (DOMAIN_NS,)
SERVED_EXTENSIONS: tuple[str, ...] = ()
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
            code, data_items = await self._dispatch(command)
        except Refusal as refused:
            close = refused.code.closes_session
            return self._reply(refused.code, refused.message, command.cl_trid, close=close)
        except Exception:
            log.exception("sandbox:command:crashed", command=command.command,
                          object=command.object_type)
            return self._reply(ResultCode.COMMAND_FAILED, None, command.cl_trid)
        return self._reply(code, None, command.cl_trid, data_items, close=code.closes_session)

    def _reply(self, code: ResultCode, message: str | None, cl_trid: str | None,
               data: Item | None = None, *, close: bool = False) -> Reply:
        try:
            payload = build_response(code, message, cl_trid, new_sv_trid(), data,
                                     validate=validate_epp)
        except (CodecError, ValueError):  # our own answer is invalid: a bug, never sent
            log.exception("sandbox:response:invalid", code=int(code))
            payload = build_response(ResultCode.COMMAND_FAILED, None, cl_trid, new_sv_trid(),
                                     validate=validate_epp)
        return Reply(payload, close)

    async def _dispatch(self, command: EppCommand) -> tuple[ResultCode, Item | None]:
        body = command.body
        if isinstance(body, Login):
            return await self._login(body), None
        if self.client_id is None:
            raise Refusal(ResultCode.COMMAND_USE_ERROR, "log in first")
        if isinstance(body, Logout):
            self.client_id = None
            return ResultCode.COMPLETED_ENDING_SESSION, None
        if command.extensions:
            raise Refusal(ResultCode.UNIMPLEMENTED_EXTENSION,
                          "this registry serves no command extension yet")
        client = self.client_id
        if isinstance(body, DomainCheck):
            return ResultCode.COMPLETED, await self._check(body)
        if isinstance(body, DomainInfo):
            return ResultCode.COMPLETED, await self._info(body, client)
        if isinstance(body, DomainCreate):
            return ResultCode.COMPLETED, await self._create(body, client)
        if isinstance(body, DomainUpdate):
            await self._update(body, client)
            return ResultCode.COMPLETED, None
        if isinstance(body, DomainDelete):
            await self._delete(body, client)
            return ResultCode.COMPLETED, None
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
            updated=domain.updated_at, expires=domain.expires_at)

    async def _create(self, create: DomainCreate, client: str) -> DomainCreateData:
        name = self._served_name(create.name)
        years = _period_years(create)
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


def _period_years(create: DomainCreate) -> int:
    low, high = PERIOD_YEARS
    if create.period is None:
        return low
    value, unit = create.period.value, create.period.unit
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


__all__ = ["Refusal", "Reply", "SandboxSession", "add_years"]
