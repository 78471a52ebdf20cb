"""Registry operations: how a domain change reaches the registry and how its answer comes back.

A flow (flows/domains.py) records what it wants as a `DomainOperation` in its own transaction
and queues `registry:operation` in the outbox; the domain row itself is not touched. `execute`
then claims the operation, sends its EPP commands through the link's pool, reads the domain
back with an info on the same session, and settles it in a second transaction:

- confirmed: the row takes what the registry now holds; an event names the clTRID and svTRID;
- refused: the registry said no (a result code of 2000 or more); the row stays as it was;
- pending again: nothing could be sent (the registry is unreachable); the outbox retries;
- unknown: sent, but no answer came (the connection dropped). The next attempt does not send
  again: it reconciles by asking the registry for the domain and comparing.

An operation claimed by a process that died before settling it stays `running` until its
lease ends; the next attempt then reconciles it as unknown. So a crash between the registry's
answer and the local commit ends with the row equal to the registry, or with the difference
recorded as drift. The API runs the operation at once (201/200 when confirmed) and answers 202
when it is still pending; the outbox worker finishes it.

Two kinds carry a secret that must never be written down (a new transfer code; the code of an
incoming transfer). They run only inside the request that holds the secret, and one that
cannot be sent fails instead of waiting; their outbox job comes due only after the request's
lease, to settle what a request that died left open.

An operation whose command cannot be built (a value EPP cannot carry) or that meets any other
fault of ours settles as failed when nothing reached the registry, or as unknown (reconciled)
when something may have: an exception never leaves it running past its lease.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, Literal

import phonenumbers
import structlog

from regshield.errors import FieldError, RegshieldError, ValidationFailed
from regshield.flows.contacts import contact_binding
from regshield.flows.context import Actor, RequestContext, system_actor
from regshield.flows.runner import Tx, run_flow
from regshield.flows.zone_control import suspend_zones_of_others
from regshield.notify.messages import Change
from regshield.notify.requests import notice, to_account_owners, to_contact
from regshield.registry.client import (
    EppSession,
    RegistryConnectionLost,
    RegistryLoginRefused,
    RegistryProtocolError,
    RegistryUnavailable,
)
from regshield.registry.codec import (
    CodecError,
    DomainContact,
    Period,
    Phone,
    PostalInfo,
    ResultCode,
    Secret,
    Status,
)
from regshield.registry.commands import (
    Command,
    ContactCreate,
    ContactUpdate,
    DomainChanges,
    DomainCreate,
    DomainDelete,
    DomainInfo,
    DomainRenew,
    DomainTransfer,
    DomainUpdate,
    Extension,
    PostalInfoChange,
    RgpRestoreRequest,
    SecDnsUpdate,
)
from regshield.registry.links import RegistryLink
from regshield.registry.responses import (
    DomainCreateData,
    DomainInfoData,
    DomainRenewData,
    DomainTransferData,
    EppResponse,
    SecDnsInfo,
)
from regshield.rules.contacts import ContactData
from regshield.rules.ds import DsRecord
from regshield.rules.registry_lock import DS_WINDOW, RegistryEffect
from regshield.rules.statuses import (
    CLIENT_STATUSES,
    Hold,
    HoldReason,
    client_statuses,
    place,
    status_update_steps,
)
from regshield.security.tokens import new_public_id
from regshield.security.transfer_codes import new_transfer_code
from regshield.services import Services
from regshield.store.models import Account, Contact, Domain, DomainOperation
from regshield.store.queries.contacts import contact_by_handle
from regshield.store.queries.domains import (
    domains_using_contact,
    open_operations,
    operation_by_public_id,
)

LEASE = timedelta(minutes=3)  # longer than a command's timeout and the info after it
OUTBOX_KIND = "registry:operation"
log = structlog.get_logger("regshield.registry")

State = Literal["pending", "running", "confirmed", "refused", "unknown", "failed"]
SETTLED: frozenset[str] = frozenset({"confirmed", "refused", "failed"})


class OperationBusy(RegshieldError):
    """Another worker holds the operation's lease; try again after it ends."""

    http_status = 409
    type_slug = "operation-busy"
    title = "The operation is running"


class RegistryRefused(ValidationFailed):
    """The registry refused the command; the local record is unchanged."""

    http_status = 422
    type_slug = "registry-refused"
    title = "The registry refused the change"


# --- what an operation carries -------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """The domain as the claim transaction saw it: everything a command is built from."""

    name: str
    registry_link: str
    expires_at: datetime | None
    nameservers: tuple[str, ...]
    ds: tuple[DsRecord, ...]
    registry_statuses: frozenset[str]
    holds: frozenset[Hold]
    registrant: str | None
    tech: str | None
    # contact:create commands for the contacts this operation links (registries that take
    # contacts); they carry personal data, in memory only.
    contact_creates: tuple[ContactCreate, ...] = ()


@dataclass(frozen=True)
class Exchange:
    command: str
    cl_trid: str | None
    sv_trid: str | None
    code: int
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"command": self.command, "cl_trid": self.cl_trid, "sv_trid": self.sv_trid,
                "code": self.code, "message": self.message}


@dataclass
class Outcome:
    state: State
    exchanges: list[Exchange] = field(default_factory=list)
    info: DomainInfoData | None = None
    secdns: SecDnsInfo | None = None
    values: dict[str, Any] = field(default_factory=dict)  # from the response data
    error: str | None = None  # why nothing could be sent, or why the outcome is unknown
    drift: list[str] = field(default_factory=list)


@dataclass
class Conversation:
    """One EPP session lent to an operation; keeps every exchange for the event."""

    session: EppSession
    exchanges: list[Exchange] = field(default_factory=list)
    # A session on the registry-lock channel, for a DS change inside the DS window.
    lock_session: EppSession | None = None
    # A command handed to the session and not answered yet: it may have reached the registry.
    in_flight: bool = False

    async def send(self, command: Command, extensions: tuple[Extension, ...] = (), *,
                   locked: bool = False) -> EppResponse:
        session = self.lock_session if locked else self.session
        assert session is not None
        self.in_flight = True
        response = await session.execute(command, extensions=extensions)
        self.in_flight = False
        self.exchanges.append(Exchange(
            f"{command.object_type or 'epp'}:{command.verb}", response.cl_trid,
            response.sv_trid, int(response.code), response.message))
        return response

    async def info(self, name: str) -> tuple[DomainInfoData | None, SecDnsInfo | None]:
        """The domain as the registry holds it; (None, None) if it does not exist for us."""
        response = await self.session.execute(DomainInfo(name))
        if not response.succeeded:
            return None, None
        return response.item(DomainInfoData), response.item(SecDnsInfo)


# --- the kinds of operation ----------------------------------------------------------------

Sender = Callable[[Conversation, Snapshot, dict[str, Any], RegistryLink, Secret | None],
                  Awaitable[EppResponse]]
Settled = Callable[[Snapshot, dict[str, Any], DomainInfoData | None, SecDnsInfo | None],
                   bool | None]


@dataclass(frozen=True)
class Kind:
    """How one kind of operation is sent, and how to tell afterwards whether it took effect.

    `settled(snapshot, request, info, secdns)` answers True (the registry shows the change),
    False (it shows the state before: send again) or None (neither: drift)."""

    send: Sender
    settled: Settled
    secret: bool = False
    field: str = "name"  # the request field a refusal is reported on
    lock_channel: bool = False  # sent on the registry-lock credential's session


async def _ensure_contacts(talk: Conversation, snap: Snapshot) -> EppResponse | None:
    """Create the linked contacts at the registry; one that exists already is fine (its
    handle is ours: `RS-` and ten random symbols) and is brought up to date (it may have been
    edited while no domain there used it), and a registry that does not implement
    contact:create is fine too (the domain command then says whether it needs contacts).
    Returns a refusal, or None."""
    for command in snap.contact_creates:
        response = await talk.send(command)
        if response.code == ResultCode.OBJECT_EXISTS:
            # Best effort: the domain command that follows decides the operation.
            await talk.send(contact_update_of(command))
        elif not response.succeeded and response.code != ResultCode.UNIMPLEMENTED_COMMAND:
            return response
    return None


async def _send_create(talk: Conversation, snap: Snapshot, request: dict[str, Any],
                       link: RegistryLink, secret: Secret | None) -> EppResponse:
    refused = await _ensure_contacts(talk, snap)
    if refused is not None:
        return refused
    contacts = (DomainContact("tech", snap.tech),) if link.contacts and snap.tech else ()
    # RFC 9154 section 4.1: a new domain gets an empty authInfo; a code exists only on request.
    return await talk.send(DomainCreate(
        snap.name, auth_info=Secret(""), period=Period(int(request["years"])),
        nameservers=tuple(request["nameservers"]),
        registrant=snap.registrant if link.contacts else None, contacts=contacts))


def _created(snap: Snapshot, request: dict[str, Any], info: DomainInfoData | None,
             secdns: SecDnsInfo | None) -> bool | None:
    if info is None:
        return False
    return True if info.nameservers == tuple(request["nameservers"]) else None


async def _send_renew(talk: Conversation, snap: Snapshot, request: dict[str, Any],
                      link: RegistryLink, secret: Secret | None) -> EppResponse:
    current = date.fromisoformat(request["current_expiry"])
    return await talk.send(DomainRenew(snap.name, current_expiry=current,
                                       period=Period(int(request["years"]))))


def _renewed(snap: Snapshot, request: dict[str, Any], info: DomainInfoData | None,
             secdns: SecDnsInfo | None) -> bool | None:
    if info is None or info.expires is None:
        return None
    expires = info.expires.date().isoformat()
    if expires == request["expected_expiry"]:
        return True
    return False if expires == request["current_expiry"] else None


async def _send_nameservers(talk: Conversation, snap: Snapshot, request: dict[str, Any],
                            link: RegistryLink, secret: Secret | None) -> EppResponse:
    wanted = tuple(request["nameservers"])
    added = tuple(h for h in wanted if h not in snap.nameservers)
    removed = tuple(h for h in snap.nameservers if h not in wanted)
    return await talk.send(DomainUpdate(snap.name, add=DomainChanges(nameservers=added),
                                        remove=DomainChanges(nameservers=removed)))


def _nameservers_set(snap: Snapshot, request: dict[str, Any], info: DomainInfoData | None,
                     secdns: SecDnsInfo | None) -> bool | None:
    if info is None:
        return None
    if set(info.nameservers) == set(request["nameservers"]):
        return True
    return False if set(info.nameservers) == set(snap.nameservers) else None


def ds_records(values: list[dict[str, Any]]) -> tuple[DsRecord, ...]:
    return tuple(DsRecord(**value) for value in values)


async def _send_ds(talk: Conversation, snap: Snapshot, request: dict[str, Any],
                   link: RegistryLink, secret: Secret | None) -> EppResponse:
    wanted = ds_records(request["ds"])
    added = tuple(r for r in wanted if r not in snap.ds)
    removed = tuple(r for r in snap.ds if r not in wanted)
    change = SecDnsUpdate(remove_all=True) if not wanted else \
        SecDnsUpdate(add=added, remove=removed)
    if not request.get("ds_window"):
        return await talk.send(DomainUpdate(snap.name), (change,))
    # The DNSSEC exception of a registry-locked domain (rules/registry_lock.py DS_WINDOW):
    # lift serverUpdateProhibited alone on the lock channel, change the DS records, and set
    # it back whatever the DS update's outcome.
    lifted = await talk.send(_server_statuses(snap.name, DS_WINDOW.lift), locked=True)
    if not lifted.succeeded:
        return lifted
    try:
        answer = await talk.send(DomainUpdate(snap.name), (change,))
    finally:
        restored = await talk.send(_server_statuses(snap.name, DS_WINDOW.restore), locked=True)
    return answer if not answer.succeeded or restored.succeeded else restored


def _server_statuses(name: str, effect: RegistryEffect) -> DomainUpdate:
    return DomainUpdate(name, add=DomainChanges(statuses=tuple(Status(s) for s in effect.add)),
                        remove=DomainChanges(statuses=tuple(Status(s) for s in effect.remove)))


def _ds_set(snap: Snapshot, request: dict[str, Any], info: DomainInfoData | None,
            secdns: SecDnsInfo | None) -> bool | None:
    if info is None:
        return None
    held = set(secdns.ds) if secdns else set()
    if held == set(ds_records(request["ds"])):
        return True
    return False if held == set(snap.ds) else None


async def _send_statuses(talk: Conversation, snap: Snapshot, request: dict[str, Any],
                         link: RegistryLink, secret: Secret | None) -> EppResponse:
    """Bring the registry's client statuses to what the holds ask for, in as many updates as
    clientUpdateProhibited needs (rules/statuses.py)."""
    desired = client_statuses(snap.holds, snap.registry_statuses)
    steps = status_update_steps(snap.registry_statuses & CLIENT_STATUSES, desired)
    response: EppResponse | None = None
    for step in steps:
        response = await talk.send(DomainUpdate(
            snap.name, add=DomainChanges(statuses=tuple(Status(s) for s in sorted(step.add))),
            remove=DomainChanges(statuses=tuple(Status(s) for s in sorted(step.remove)))))
        if not response.succeeded:
            return response
    if response is None:  # nothing to change: read the domain instead
        response = await talk.send(DomainInfo(snap.name))
    return response


def _statuses_set(snap: Snapshot, request: dict[str, Any], info: DomainInfoData | None,
                  secdns: SecDnsInfo | None) -> bool | None:
    if info is None:
        return None
    held = {s.value for s in info.statuses} & CLIENT_STATUSES
    return held == set(client_statuses(snap.holds, snap.registry_statuses)) & CLIENT_STATUSES


async def _send_delete(talk: Conversation, snap: Snapshot, request: dict[str, Any],
                       link: RegistryLink, secret: Secret | None) -> EppResponse:
    return await talk.send(DomainDelete(snap.name))


def _deleted(snap: Snapshot, request: dict[str, Any], info: DomainInfoData | None,
             secdns: SecDnsInfo | None) -> bool | None:
    return info is None or "pendingDelete" in {s.value for s in info.statuses}


async def _send_restore(talk: Conversation, snap: Snapshot, request: dict[str, Any],
                        link: RegistryLink, secret: Secret | None) -> EppResponse:
    return await talk.send(DomainUpdate(snap.name), (RgpRestoreRequest(),))


def _restored(snap: Snapshot, request: dict[str, Any], info: DomainInfoData | None,
              secdns: SecDnsInfo | None) -> bool | None:
    if info is None:
        return None
    return "pendingDelete" not in {s.value for s in info.statuses}


async def _send_transfer_code(talk: Conversation, snap: Snapshot, request: dict[str, Any],
                              link: RegistryLink, secret: Secret | None) -> EppResponse:
    assert secret is not None
    return await talk.send(DomainUpdate(snap.name, auth_info=secret))


async def _send_transfer_code_clear(talk: Conversation, snap: Snapshot,
                                    request: dict[str, Any], link: RegistryLink,
                                    secret: Secret | None) -> EppResponse:
    return await talk.send(DomainUpdate(snap.name, remove_auth_info=True))


def _never_known(snap: Snapshot, request: dict[str, Any], info: DomainInfoData | None,
                 secdns: SecDnsInfo | None) -> bool | None:
    """A secret cannot be read back: an unanswered code change is given up (the code was
    never shown, so a code the registry may hold is one nobody knows)."""
    return None


async def _send_transfer_request(talk: Conversation, snap: Snapshot, request: dict[str, Any],
                                 link: RegistryLink, secret: Secret | None) -> EppResponse:
    assert secret is not None
    response = await talk.send(DomainTransfer(snap.name, op="request", auth_info=secret))
    if response.code != ResultCode.OBJECT_PENDING_TRANSFER:
        return response
    # A transfer is pending already: ours, when an earlier request whose answer was lost
    # reached the registry (its outcome could not be read back without the code). The query,
    # with the code the holder gave again, tells; then this request takes it over.
    query = await talk.send(DomainTransfer(snap.name, op="query", auth_info=secret))
    data = query.item(DomainTransferData) if query.succeeded else None
    ours = data is not None and data.status == "pending" and \
        data.requesting_client == link.endpoint.client_id
    return query if ours else response


async def _send_transfer_decision(talk: Conversation, snap: Snapshot, request: dict[str, Any],
                                  link: RegistryLink, secret: Secret | None) -> EppResponse:
    return await talk.send(DomainTransfer(snap.name, op=request["decision"]))


def _transfer_decided(snap: Snapshot, request: dict[str, Any], info: DomainInfoData | None,
                      secdns: SecDnsInfo | None) -> bool | None:
    if info is None:
        return bool(request["decision"] == "approve")
    return "pendingTransfer" not in {s.value for s in info.statuses}


async def _send_registrant(talk: Conversation, snap: Snapshot, request: dict[str, Any],
                           link: RegistryLink, secret: Secret | None) -> EppResponse:
    refused = await _ensure_contacts(talk, snap)
    if refused is not None:
        return refused
    return await talk.send(DomainUpdate(snap.name, registrant=request["registrant"]))


async def _send_contacts(talk: Conversation, snap: Snapshot, request: dict[str, Any],
                         link: RegistryLink, secret: Secret | None) -> EppResponse:
    refused = await _ensure_contacts(talk, snap)
    if refused is not None:
        return refused
    added = (DomainContact("tech", request["tech"]),) if request["tech"] else ()
    removed = (DomainContact("tech", snap.tech),) if snap.tech else ()
    return await talk.send(DomainUpdate(snap.name, add=DomainChanges(contacts=added),
                                        remove=DomainChanges(contacts=removed)))


def _contacts_set(snap: Snapshot, request: dict[str, Any], info: DomainInfoData | None,
                  secdns: SecDnsInfo | None) -> bool | None:
    if info is None:
        return None
    tech = {c.id for c in info.contacts if c.type == "tech"}
    if tech == ({request["tech"]} if request["tech"] else set()):
        return True
    return False if tech == ({snap.tech} if snap.tech else set()) else None


def _registrant_set(snap: Snapshot, request: dict[str, Any], info: DomainInfoData | None,
                    secdns: SecDnsInfo | None) -> bool | None:
    if info is None:
        return None
    if info.registrant == request["registrant"]:
        return True
    return False if info.registrant == request.get("previous") else None


async def _send_registry_lock(talk: Conversation, snap: Snapshot, request: dict[str, Any],
                              link: RegistryLink, secret: Secret | None) -> EppResponse:
    added = tuple(Status(s) for s in sorted(request["add"]) if s not in snap.registry_statuses)
    removed = tuple(Status(s) for s in sorted(request["remove"])
                    if s in snap.registry_statuses)
    if not added and not removed:
        return await talk.send(DomainInfo(snap.name))
    return await talk.send(DomainUpdate(snap.name, add=DomainChanges(statuses=added),
                                        remove=DomainChanges(statuses=removed)))


def _registry_lock_set(snap: Snapshot, request: dict[str, Any], info: DomainInfoData | None,
                       secdns: SecDnsInfo | None) -> bool | None:
    if info is None:
        return None
    held = {s.value for s in info.statuses}
    return set(request["add"]) <= held and not set(request["remove"]) & held


def contact_update_of(create: ContactCreate) -> ContactUpdate:
    """The contact:update that makes the registry's copy of a contact equal to `create`:
    every postal info form, voice, fax and email given whole (RFC 5733 section 3.2.5). An
    empty `org` removes an organization the registry still holds."""
    return ContactUpdate(create.id, postal_info=tuple(
        PostalInfoChange(info.type, name=info.name, org=info.org or "", street=info.street,
                         city=info.city, sp=info.sp, pc=info.pc, cc=info.cc)
        for info in create.postal_info), voice=create.voice, fax=create.fax,
        email=create.email)


async def _send_contact_update(talk: Conversation, snap: Snapshot, request: dict[str, Any],
                               link: RegistryLink, secret: Secret | None) -> EppResponse:
    """Push a contact's data to a registry that holds contact objects; one it does not hold
    (yet) is created instead."""
    [create] = snap.contact_creates
    response = await talk.send(contact_update_of(create))
    if response.code == ResultCode.OBJECT_DOES_NOT_EXIST:
        return await talk.send(create)
    return response


def _contact_pushed(snap: Snapshot, request: dict[str, Any], info: DomainInfoData | None,
                    secdns: SecDnsInfo | None) -> bool | None:
    """A domain:info cannot show a contact's data: an unanswered update is sent again (the
    whole data each time, so a second one changes nothing)."""
    return False


KINDS: dict[str, Kind] = {
    "create": Kind(_send_create, _created, field="name"),
    "renew": Kind(_send_renew, _renewed, field="years"),
    "nameservers": Kind(_send_nameservers, _nameservers_set, field="nameservers"),
    "ds": Kind(_send_ds, _ds_set, field="ds"),
    "statuses": Kind(_send_statuses, _statuses_set, field="statuses"),
    "delete": Kind(_send_delete, _deleted),
    "restore": Kind(_send_restore, _restored),
    "transfer_code": Kind(_send_transfer_code, _never_known, secret=True),
    # Clearing a code cannot be read back either; sending it again is harmless.
    "transfer_code_clear": Kind(_send_transfer_code_clear,
                                lambda snap, request, info, secdns: False),
    "transfer_request": Kind(_send_transfer_request, _never_known, secret=True,
                             field="auth_code"),
    "transfer_decision": Kind(_send_transfer_decision, _transfer_decided),
    "registry_lock": Kind(_send_registry_lock, _registry_lock_set, lock_channel=True),
    "registrant": Kind(_send_registrant, _registrant_set, field="registrant"),
    "contacts": Kind(_send_contacts, _contacts_set, field="tech"),
    # The data of a contact (registrant or tech) changed here; sent to each registry that
    # holds the contact, as an operation of one of its domains there (`push_contact`).
    "contact_update": Kind(_send_contact_update, _contact_pushed, field="contact"),
}


# --- recording an operation (inside a domain flow's transaction) ----------------------------


def new_operation(tx: Tx, domain: Domain, kind: str, request: dict[str, Any]
                  ) -> DomainOperation:
    """Add the operation to the flow's transaction and queue it. One that carries a secret
    runs only in the request that holds it: its job waits for the request's lease to end,
    then settles whatever the request left open (never sent: failed, as without the secret;
    claimed by a request that died: reconciled), so that nothing stays pending or running."""
    # Where the change came from, for the notices sent once the registry confirms it.
    origin = {"channel": tx.context.channel, "source_address": tx.context.source_address}
    operation = DomainOperation(
        public_id=new_public_id("op"), domain_id=domain.id, kind=kind, state="pending",
        request={**request, "_origin": origin}, attempts=0, actor=tx.actor.label,
        request_id=tx.context.request_id, created_at=tx.now)
    tx.session.add(operation)
    tx.enqueue(OUTBOX_KIND, {"operation": operation.public_id},
               dedupe_key=f"operation:{operation.public_id}",
               delay=LEASE if KINDS[kind].secret else timedelta(0))
    return operation


async def push_contact(tx: Tx, handle: str, account: str) -> list[DomainOperation]:
    """Queue a `contact_update` of the contact `handle` for every registry that holds it:
    those taking contact objects (not the minimum-data ones, registry/links.py) where a live
    domain using it (registrant or tech) is registered. One operation per registry, carried
    by the first such domain by name; it reads the contact's data when it is sent, so the
    outbox holds only the handle. Returns the operations, each recorded as
    `domains:contact_update:requested`."""
    contact = await contact_by_handle(tx.session, handle)
    if contact is None:
        return []
    carriers: dict[str, Domain] = {}
    for domain in await domains_using_contact(tx.session, contact.id):
        if domain.registry_link not in carriers and \
                tx.services.registries.link(domain.registry_link).contacts:
            carriers[domain.registry_link] = domain
    started: list[DomainOperation] = []
    for domain in carriers.values():
        operation = new_operation(tx, domain, "contact_update", {"contact": handle})
        tx.record("domains:contact_update:requested", account=account, domain=domain.name,
                  operation=operation.public_id, contact=handle,
                  registry=domain.registry_link)
        started.append(operation)
    return started


# --- running one ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    public_id: str
    kind: str
    attempts: int
    request: dict[str, Any]
    snapshot: Snapshot
    reconcile: bool


async def execute(services: Services, public_id: str, *,
                  secret: Secret | None = None) -> DomainOperation:
    """Run the operation now and return it as settled (or pending again).

    Raises OperationBusy when another worker holds it."""
    claim = await _claim(services, public_id)
    if claim is not None:
        kind = KINDS[claim.kind]
        if claim.reconcile:
            outcome = await _reconcile(services, claim)
        elif kind.secret and secret is None:
            outcome = Outcome("failed", error="the secret was not kept; ask again")
        else:
            outcome = await _send(services, claim, secret)
        origin = claim.request.get("_origin") or {}
        context = RequestContext(origin.get("channel", "system"),
                                 source_address=origin.get("source_address"),
                                 request_id=_request_id(claim))
        await run_flow(services, system_actor("registry"), context, _Settle(claim, outcome))
    async with services.store.read() as session:
        operation = await operation_by_public_id(session, public_id)
        assert operation is not None
        return operation


def _request_id(claim: Claim) -> str:
    return str(claim.request.get("_request_id") or f"req_{claim.public_id}")


async def _claim(services: Services, public_id: str) -> Claim | None:
    now = services.clock.now()
    async with services.store.write() as session:
        operation = await operation_by_public_id(session, public_id)
        if operation is None or operation.state in SETTLED:
            return None
        expired = operation.lease_until is None or operation.lease_until <= now
        if operation.state == "running" and not expired and not (
                operation.claimed_by and await services.life.gone(operation.claimed_by)):
            raise OperationBusy(f"operation {public_id} is running")
        reconcile = operation.state in ("running", "unknown")
        operation.state, operation.lease_until = "running", now + LEASE
        operation.claimed_by = services.life.identity
        operation.attempts += 1
        domain = await session.get(Domain, operation.domain_id)
        assert domain is not None
        snapshot = await _snapshot(session, domain)
        link = services.registries.link(domain.registry_link)
        if operation.kind == "contact_update":
            snapshot = replace(snapshot, contact_creates=(
                await registry_contact(session, services, operation.request["contact"]),))
        elif link.contacts and operation.kind in ("create", "registrant", "contacts"):
            handles = [h for h in (operation.request.get("registrant") or snapshot.registrant,
                                   operation.request.get("tech") or snapshot.tech) if h]
            snapshot = replace(snapshot, contact_creates=tuple(
                [await registry_contact(session, services, handle) for handle in handles]))
        request = dict(operation.request)
        request["_request_id"] = operation.request_id
        return Claim(public_id, operation.kind, operation.attempts, request, snapshot,
                     reconcile)


async def _snapshot(session: Any, domain: Domain) -> Snapshot:
    handles: dict[int, str] = {}
    for contact_id in (domain.registrant_id, domain.tech_id):
        if contact_id is not None:
            contact = await session.get(Contact, contact_id)
            if contact is not None:
                handles[contact_id] = contact.handle
    return Snapshot(
        name=domain.name, registry_link=domain.registry_link, expires_at=domain.expires_at,
        nameservers=tuple(domain.nameservers), ds=ds_records(domain.ds),
        registry_statuses=frozenset(domain.registry_statuses), holds=holds_of(domain),
        registrant=handles.get(domain.registrant_id or 0),
        tech=handles.get(domain.tech_id or 0))


async def registry_contact(session: Any, services: Services, handle: str) -> ContactCreate:
    """The contact:create for one of our contacts, opened from its sealed record. Its
    authInfo is random and kept nowhere: contacts are never transferred by code."""
    contact = await contact_by_handle(session, handle, include_deleted=True)
    assert contact is not None
    data_key = await services.sealer.data_key(session, contact.data_key_id)
    values = ContactData.from_dict(services.sealer.open_json(
        data_key, contact.data_sealed, contact_binding(handle)))
    postal = PostalInfo(
        type="int" if all(ord(ch) < 128 for ch in values.name + values.city
                          + "".join(values.street) + (values.organization or "")) else "loc",
        name=values.name, org=values.organization, street=values.street, city=values.city,
        sp=values.state, pc=values.postal_code, cc=values.country)
    return ContactCreate(handle, postal_info=(postal,), email=values.email,
                         auth_info=Secret(new_transfer_code()), voice=epp_phone(values.phone),
                         fax=epp_phone(values.fax) if values.fax else None)


def epp_phone(e164: str) -> Phone:
    """`+4930901820` as EPP writes it: `+49.30901820` (RFC 5733 section 2.5)."""
    number = phonenumbers.parse(e164)
    return Phone(f"+{number.country_code}.{number.national_number}")


def holds_of(domain: Domain) -> frozenset[Hold]:
    return frozenset(Hold(HoldReason(h["reason"]), frozenset(h["statuses"]),
                          h.get("reference", "")) for h in domain.holds)


def store_holds(domain: Domain, holds: frozenset[Hold]) -> None:
    domain.holds = sorted(({"reason": str(h.reason), "statuses": sorted(h.statuses),
                            "reference": h.reference} for h in holds),
                          key=lambda h: (h["reason"], h["reference"]))


async def _send(services: Services, claim: Claim, secret: Secret | None) -> Outcome:
    link = services.registries.link(claim.snapshot.registry_link)
    kind = KINDS[claim.kind]
    talk: Conversation | None = None
    try:
        pool = await (services.registries.lock_pool(link) if kind.lock_channel
                      else services.registries.pool(link))
        async with pool.session() as session, _lock_session(services, link, claim) as locked:
            talk = Conversation(session, lock_session=locked)
            response = await kind.send(talk, claim.snapshot, claim.request, link, secret)
            if not response.succeeded:
                return Outcome("refused", talk.exchanges)
            values = _response_values(response)
            info, secdns = await talk.info(claim.snapshot.name)
            return Outcome("confirmed", talk.exchanges, info, secdns, values)
    except (RegistryUnavailable, RegistryLoginRefused) as exc:
        sent = talk.exchanges if talk else []
        if sent:  # the command went through; only the read-back failed
            return Outcome("unknown", sent, error=type(exc).__name__)
        return Outcome("failed" if kind.secret else "pending", error=type(exc).__name__)
    except (RegistryConnectionLost, RegistryProtocolError) as exc:
        return Outcome("unknown", talk.exchanges if talk else [], error=type(exc).__name__)
    except CodecError as exc:
        # The command could not be built (session.execute builds before it sends): this
        # command never left, and building it again would fail the same way.
        log.warning("registry:operation:unbuildable", operation=claim.public_id,
                    kind=claim.kind, error=type(exc).__name__)
        return Outcome("failed", talk.exchanges if talk else [], error=type(exc).__name__)
    except Exception as exc:  # a fault of ours, not a registry answer: never left running
        # The type only: a message or a traceback may carry the values being sent.
        log.error("registry:operation:fault", operation=claim.public_id, kind=claim.kind,
                  error=type(exc).__name__)
        sent = talk.exchanges if talk else []
        if talk is not None and (talk.in_flight or sent):
            # It may have reached the registry: ask it (the outbox reconciles `unknown`).
            return Outcome("unknown", sent, error=type(exc).__name__)
        return Outcome("failed", error=type(exc).__name__)


@contextlib.asynccontextmanager
async def _lock_session(services: Services, link: RegistryLink, claim: Claim
                        ) -> AsyncIterator[EppSession | None]:
    """A lock-channel session when the operation needs one beside its own (the DS window)."""
    if not claim.request.get("ds_window"):
        yield None
        return
    pool = await services.registries.lock_pool(link)
    async with pool.session() as session:
        yield session


def _response_values(response: EppResponse) -> dict[str, Any]:
    values: dict[str, Any] = {"code": int(response.code)}
    created = response.item(DomainCreateData)
    if created is not None and created.expires is not None:
        values["expires"] = created.expires.isoformat()
    renewed = response.item(DomainRenewData)
    if renewed is not None and renewed.expires is not None:
        values["expires"] = renewed.expires.isoformat()
    return values


async def _reconcile(services: Services, claim: Claim) -> Outcome:
    """Ask the registry what became of an operation whose answer was lost."""
    link = services.registries.link(claim.snapshot.registry_link)
    kind = KINDS[claim.kind]
    try:
        pool = await services.registries.pool(link)
        async with pool.session() as session:
            talk = Conversation(session)
            info, secdns = await talk.info(claim.snapshot.name)
    except (RegistryUnavailable, RegistryLoginRefused, RegistryConnectionLost,
            RegistryProtocolError) as exc:
        return Outcome("unknown", error=type(exc).__name__)
    verdict = kind.settled(claim.snapshot, claim.request, info, secdns)
    if verdict is True:
        return Outcome("confirmed", info=info, secdns=secdns, values={"reconciled": True})
    if verdict is False:
        return Outcome("pending", info=info, secdns=secdns, values={"reconciled": True})
    return Outcome("failed", info=info, secdns=secdns, values={"reconciled": True},
                   drift=differences(claim.snapshot, info, secdns))


def differences(snap: Snapshot, info: DomainInfoData | None,
                secdns: SecDnsInfo | None) -> list[str]:
    """What the registry's copy of a domain (`info`, `secdns`) has that differs from
    `snap`: nameservers, ds, statuses, expires_at; one sentence when it has no such domain."""
    if info is None:
        return ["the registry has no such domain for this registrar"]
    found: list[str] = []
    if set(info.nameservers) != set(snap.nameservers):
        found.append("nameservers")
    if set(secdns.ds if secdns else ()) != set(snap.ds):
        found.append("ds")
    if {s.value for s in info.statuses} != set(snap.registry_statuses):
        found.append("statuses")
    if info.expires and snap.expires_at and info.expires != snap.expires_at:
        found.append("expires_at")
    return found


@dataclass(frozen=True)
class _Settle:
    """Write an operation's outcome: the operation, the domain row, the events."""

    claim: Claim
    outcome: Outcome

    async def run(self, tx: Tx) -> None:
        operation = await operation_by_public_id(tx.session, self.claim.public_id)
        assert operation is not None
        if operation.state != "running" or operation.attempts != self.claim.attempts:
            return  # another worker took it over after our lease ended; it settles it
        domain = await tx.session.get(Domain, operation.domain_id)
        assert domain is not None
        account = await tx.session.get(Account, domain.account_id)
        assert account is not None
        outcome = self.outcome
        last = outcome.exchanges[-1] if outcome.exchanges else None
        first = outcome.exchanges[0] if outcome.exchanges else None
        operation.state = outcome.state
        operation.lease_until = operation.claimed_by = None
        if first is not None:
            operation.cl_trid, operation.sv_trid = first.cl_trid, first.sv_trid
        operation.result = {"exchanges": [e.as_dict() for e in outcome.exchanges],
                            **outcome.values,
                            **({"error": outcome.error} if outcome.error else {}),
                            **({"drift": outcome.drift} if outcome.drift else {})}
        if outcome.state in SETTLED:
            operation.completed_at = tx.now
        if outcome.info is not None and outcome.state in ("confirmed", "failed", "pending"):
            adopt(domain, outcome.info, outcome.secdns, tx.now)
        if outcome.state == "confirmed":
            apply_confirmed(domain, operation, outcome, tx.now)
            if operation.kind in ("create", "transfer_request") and domain.state == "active":
                # The name is sponsored here now: nobody else's zone answers for it.
                await suspend_zones_of_others(tx, domain)
            if operation.kind in ("create", "registrant") and statuses_differ(domain):
                # The lock follows as soon as the domain exists: a create carries no client
                # status at most registries.
                new_operation(tx, domain, "statuses", {"after": operation.public_id})
        elif outcome.state in ("refused", "failed") and \
                operation.kind in ("create", "transfer_request"):
            domain.state, domain.ended_at = "ended", tx.now
        domain.updated_at = tx.now
        summary: dict[str, Any] = {
            "domain": domain.name, "operation": operation.public_id,
            "requested_by": operation.actor, "attempt": operation.attempts,
            "exchanges": [e.as_dict() for e in outcome.exchanges],
        }
        if operation.kind == "contact_update":
            summary["contact"] = operation.request["contact"]
        if last is not None:
            summary |= {"cl_trid": last.cl_trid, "sv_trid": last.sv_trid, "code": last.code}
        if outcome.error:
            summary["error"] = outcome.error
        tx.record(f"domains:{operation.kind}:{outcome.state}", account=account.public_id,
                  **summary)
        if outcome.state == "confirmed":
            await _notify(tx, operation, domain, account, self.claim.snapshot)
            await _verify_registrant(tx, operation, domain)
        if operation.request.get("ds_window") and outcome.exchanges:
            for exchange, tag in ((outcome.exchanges[0], DS_WINDOW.lifted),
                                  (outcome.exchanges[-1], DS_WINDOW.restored)):
                if exchange.command == "domain:update" and exchange.code < 2000:
                    tx.record(str(tag), account=account.public_id, domain=domain.name,
                              operation=operation.public_id, cl_trid=exchange.cl_trid,
                              sv_trid=exchange.sv_trid)
        if outcome.drift:
            tx.record("domains:registry:drift", account=account.public_id,
                      domain=domain.name, operation=operation.public_id,
                      differences=outcome.drift)
        log.info("registry:operation:settled", operation=operation.public_id,
                 kind=operation.kind, state=outcome.state)


async def _notify(tx: Tx, operation: DomainOperation, domain: Domain, account: Account,
                  before: Snapshot) -> None:
    """Tell the registrant and the account's owners of a confirmed sensitive change, naming
    who asked for it and from where (the operation's origin)."""
    request = operation.request
    change: Change | None = None
    details: dict[str, Any] = {}
    if operation.kind == "nameservers":
        change = Change.NAMESERVERS
        details = {"before": list(before.nameservers), "after": list(domain.nameservers)}
    elif operation.kind == "ds":
        change = Change.DS_RECORDS
        details = {"before": [r.to_text() for r in before.ds],
                   "after": [r.to_text() for r in ds_records(domain.ds)]}
    elif operation.kind == "statuses" and "holds" in request:
        locked = HoldReason.REGISTRAR_LOCK in {h.reason for h in holds_of(domain)}
        change, details = Change.REGISTRAR_LOCK, {"locked": locked}
    elif operation.kind == "transfer_code":
        change, details = Change.TRANSFER_CODE, {"expires_at": request["expires_at"]}
    elif operation.kind == "registry_lock":
        change, details = Change.REGISTRY_LOCK, {"locked": bool(request["add"])}
    elif operation.kind == "registrant":
        change = Change.REGISTRANT
        details = {"before": request.get("previous") or "(none)",
                   "after": request["registrant"]}
    if change is None:
        return
    recipients = [to_account_owners(account.public_id)]
    if before.registrant:
        recipients.insert(0, to_contact(before.registrant))
    if operation.kind == "registrant":
        recipients.insert(0, to_contact(request["registrant"]))
    notice(replace(tx, actor=_origin_actor(operation.actor)), change=change,
           recipients=recipients, domain=domain.unicode_name, details=details)


async def _verify_registrant(tx: Tx, operation: DomainOperation, domain: Domain) -> None:
    """The WHOIS Accuracy Program verifies the registrant after a registration, an inbound
    transfer or a change of registrant (flows/accuracy.py)."""
    from regshield.flows.accuracy import verification_after_change  # it imports this module
    from regshield.rules.accuracy import Cause

    cause = {"create": Cause.REGISTRATION, "registrant": Cause.REGISTRANT_CHANGE}.get(
        operation.kind)
    if operation.kind == "transfer_request" and domain.state == "active":
        cause = Cause.TRANSFER_IN
    if cause is not None:
        await verification_after_change(tx, domain, cause)


def _origin_actor(label: str) -> Actor:
    kind, _, identifier = label.partition(":")
    if kind == "user":
        return Actor(kind="customer", user_public_id=identifier)
    return system_actor(identifier or "regshield")


def statuses_differ(domain: Domain) -> bool:
    """Whether the client statuses the holds ask for differ from those the registry shows."""
    current = frozenset(domain.registry_statuses)
    wanted = client_statuses(holds_of(domain), current) & CLIENT_STATUSES
    return wanted != current & CLIENT_STATUSES


def adopt(domain: Domain, info: DomainInfoData, secdns: SecDnsInfo | None,
          now: datetime) -> None:
    """Make the row say what the registry holds."""
    domain.roid = info.roid
    domain.registry_statuses = sorted(s.value for s in info.statuses)
    domain.nameservers = list(info.nameservers)
    domain.ds = [record.as_dict() for record in (secdns.ds if secdns else ())]
    if info.expires is not None:
        domain.expires_at = info.expires
    domain.synced_at = now


def apply_confirmed(domain: Domain, operation: DomainOperation, outcome: Outcome,
                    now: datetime) -> None:
    """What a confirmed operation changes beyond what the registry reports back."""
    request = operation.request
    # EPP keeps nameservers as a set; the holder's order is kept where the sets agree.
    asked = request.get("nameservers")
    if asked is not None and set(asked) == set(domain.nameservers):
        domain.nameservers = list(asked)
    if operation.kind == "create":
        domain.state = "active"
    elif operation.kind == "delete":
        domain.state = "pending_delete" if outcome.info is not None else "ended"
        if domain.state == "ended":
            domain.ended_at = now
    elif operation.kind == "restore":
        domain.state = "active"
    elif operation.kind == "transfer_code":
        domain.transfer_code_hash = request["code_hash"]
        domain.transfer_code_expires_at = datetime.fromisoformat(request["expires_at"])
    elif operation.kind == "transfer_code_clear":
        domain.transfer_code_hash = domain.transfer_code_expires_at = None
    elif operation.kind == "transfer_request":
        pending = outcome.info is None or \
            "pendingTransfer" in {s.value for s in outcome.info.statuses}
        domain.state = "pending_transfer_in" if pending else "active"
    elif operation.kind == "transfer_decision" and request["decision"] == "approve":
        domain.state, domain.ended_at = "ended", now
    elif operation.kind == "contacts":
        domain.tech_id = request["tech_id"]
    elif operation.kind == "registrant":
        domain.registrant_id = int(request["registrant_id"])
        place_registrant_lock(domain, request.get("lock_until"))


def place_registrant_lock(domain: Domain, lock_until: str | None) -> None:
    """Transfer Policy II.C: no inter-registrar transfer for 60 days after a change of
    registrant (a new contact, or a material change of the contact's data), unless the prior
    registrant opted out beforehand (`lock_until` None: no lock)."""
    if lock_until:
        store_holds(domain, place(holds_of(domain), Hold.of(
            HoldReason.CHANGE_OF_REGISTRANT_LOCK, reference=f"until:{lock_until}")))


def refusal_error(operation: DomainOperation) -> RegistryRefused:
    """The problem an API caller gets for a refused operation: the field and the reason."""
    exchanges = (operation.result or {}).get("exchanges", [])
    last = exchanges[-1] if exchanges else {"code": 2400, "message": "refused"}
    code = int(str(last["code"]))
    try:
        label = ResultCode(code).name.lower()
    except ValueError:
        label = "refused"
    return RegistryRefused([FieldError(
        KINDS[operation.kind].field, f"registry_{label}",
        f"the registry refused it ({code} {last['message']})")])


async def execute_all(services: Services, public_id: str, *,
                      secret: Secret | None = None) -> DomainOperation:
    """`execute`, then whatever it queued for the same domain (the lock after a create), so
    that an API caller sees the domain as it will stay. Returns the first operation."""
    first = await execute(services, public_id, secret=secret)
    if first.state != "confirmed":
        return first
    async with services.store.read() as session:
        follow_ups = [o.public_id for o in await open_operations(session, [first.domain_id])
                      if o.state == "pending"]
    for follow_up in follow_ups:
        with contextlib.suppress(OperationBusy):  # the outbox worker has it
            await execute(services, follow_up)
    return first


async def run_queued(services: Services, payload: dict[str, Any]) -> None:
    """The outbox handler of `registry:operation`: done when the operation is settled;
    raises (so that the outbox retries) while it is pending or unknown."""
    operation = await execute(services, str(payload["operation"]))
    if operation.state not in SETTLED:
        raise OperationBusy(f"operation {operation.public_id} is {operation.state}")
