"""A registry's poll messages as events, and what they mean for the local domain rows.

A registry tells a registrar through its message queue what happened without the registrar
asking in that moment: another registrar asks for one of our domains, the registry approves a
transfer when the losing registrar let its time pass, the registrar that holds a domain we
asked for approves or rejects the transfer, a deleted domain is purged.

`poll_registry` reads one link's queue on one pooled session. For each message, one flow
(`PollMessageRecord`) records it as an event `registry:poll:<kind>` and applies what it means
to the local domain in the same transaction; the message is acknowledged only after that
commits. A crash or a lost connection in between leaves the message in the registry's queue:
read again, it is found in `registry_messages` (by link and message id) and only acknowledged.

What a transfer message means, by its trStatus and whether we are its acID (the losing
registrar) or its reID (the gaining one):

- pending, acID: `domains:transfer-out:requested`. The domain stays active and its statuses
  are read again (pendingTransfer shows the transfer); the registrant and the account's
  owners are told when it completes unless it is rejected.
- clientApproved or serverApproved, acID: `domains:transfer-out:completed`; the domain ends
  here and its holders are told.
- clientRejected or *Cancelled, acID: `domains:transfer-out:rejected`; statuses read again.
- clientApproved or serverApproved, reID: `domains:transfer-in:completed`; the domain waiting
  for the transfer becomes active, its row read from the registry (`domain:info`).
- clientRejected or *Cancelled, reID: `domains:transfer-in:rejected`; the domain waiting for
  the transfer ends (it never became ours).

Any other message (a purge, a registry's own notice) is recorded as `registry:poll:message`.
The poll event's `meaning` names what was applied, or is None when the message concerns no
live domain of ours in the state it speaks about (then nothing but the event is written).
The message text comes from the registry and is not expected to hold personal data; it is
kept, cut to `MAX_TEXT` characters.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from regshield.errors import Conflict, RegshieldError
from regshield.flows.accuracy import verification_after_change
from regshield.flows.context import RequestContext, system_actor
from regshield.flows.operations import (
    Conversation,
    adopt,
    holds_of,
    new_operation,
    store_holds,
)
from regshield.flows.runner import Tx, run_flow
from regshield.flows.zone_control import suspend_zones_of_others
from regshield.notify.messages import Change
from regshield.notify.requests import notice, to_account_owners, to_contact
from regshield.policy.transfer import transfer_policy
from regshield.registry.client import (
    EppSession,
    RegistryConnectionLost,
    RegistryError,
    RegistryUnavailable,
)
from regshield.registry.codec import ResultCode
from regshield.registry.commands import Poll
from regshield.registry.links import RegistryLink
from regshield.registry.responses import (
    DomainInfoData,
    DomainPendingActionData,
    DomainTransferData,
    EppResponse,
    SecDnsInfo,
)
from regshield.rules.accuracy import Cause
from regshield.rules.statuses import Hold, HoldReason, place
from regshield.services import Services
from regshield.store.models import Account, Contact, Domain, RegistryMessage
from regshield.store.queries.domains import live_domain

MAX_TEXT = 200  # characters of a message's text kept in its event
MAX_KEY = 128  # longer message ids are kept as their SHA-256
APPROVED = frozenset({"clientApproved", "serverApproved"})
NOT_TRANSFERRED = frozenset({"clientRejected", "clientCancelled", "serverCancelled"})
KIND_OF_STATUS = {
    "pending": "transfer-requested",
    "clientApproved": "transfer-approved",
    "serverApproved": "transfer-approved",
    "clientRejected": "transfer-rejected",
    "clientCancelled": "transfer-cancelled",
    "serverCancelled": "transfer-cancelled",
}
# Meanings after which the domain is read again from the registry (it is ours then).
READ_AGAIN = frozenset({"transfer-out:requested", "transfer-out:rejected",
                        "transfer-in:completed"})

log = structlog.get_logger("regshield.registry")


class PollFailed(RegistryError):
    """The registry answered a poll request or acknowledgement with an error, or handed out
    the same message again after it was acknowledged."""

    type_slug = "registry-poll-failed"
    title = "The registry's message queue could not be read"


# --- one message ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """One poll message as regshield keeps it."""

    link: str
    id: str
    queued_at: datetime | None
    text: str
    sv_trid: str
    transfer: DomainTransferData | None = None
    pending_action: DomainPendingActionData | None = None

    @classmethod
    def of(cls, link: str, response: EppResponse) -> Message:
        queue = response.message_queue
        if queue is None:
            raise PollFailed(f"{link}: a 1301 answer without its message (no msgQ)")
        return cls(link, queue.id, queue.queued, (queue.message or "")[:MAX_TEXT],
                   response.sv_trid, response.item(DomainTransferData),
                   response.item(DomainPendingActionData))

    @property
    def key(self) -> str:
        """The message id as stored (ids longer than the column: their SHA-256)."""
        if len(self.id) <= MAX_KEY:
            return self.id
        return "sha256:" + hashlib.sha256(self.id.encode()).hexdigest()

    @property
    def kind(self) -> str:
        if self.transfer is not None:
            return KIND_OF_STATUS.get(self.transfer.status, "message")
        return "message"

    @property
    def domain(self) -> str | None:
        if self.transfer is not None:
            return self.transfer.name
        if self.pending_action is not None:
            return self.pending_action.name
        return None

    def meaning(self, client_id: str) -> str | None:
        """What the message means for a domain of ours (see the module's table), or None."""
        transfer = self.transfer
        if transfer is None:
            return None
        status = transfer.status
        if transfer.acting_client == client_id:
            if status == "pending":
                return "transfer-out:requested"
            if status in APPROVED:
                return "transfer-out:completed"
            if status in NOT_TRANSFERRED:
                return "transfer-out:rejected"
        elif transfer.requesting_client == client_id:
            if status in APPROVED:
                return "transfer-in:completed"
            if status in NOT_TRANSFERRED:
                return "transfer-in:rejected"
        return None

    def summary(self) -> dict[str, Any]:
        """The event's summary: identifiers and outcomes as the registry gave them."""
        summary: dict[str, Any] = {
            "link": self.link, "message_id": self.id,
            "queued_at": self.queued_at.isoformat() if self.queued_at else None,
            "text": self.text, "domain": self.domain, "sv_trid": self.sv_trid}
        if self.transfer is not None:
            summary |= {"tr_status": self.transfer.status,
                        "re_id": self.transfer.requesting_client,
                        "ac_id": self.transfer.acting_client,
                        "act_by": self.transfer.act_by.isoformat()}
        if self.pending_action is not None:
            summary |= {"pending_action_succeeded": self.pending_action.succeeded,
                        "pending_action_sv_trid": self.pending_action.sv_trid}
        return summary


# --- recording it --------------------------------------------------------------------------


@dataclass(frozen=True)
class PollMessageRecord:
    """Record one poll message as an event and apply what it means to the local domain;
    returns False (and writes nothing) when the message was recorded before. `info` and
    `secdns` are the domain as the registry holds it now, read when the meaning needs it.

    Raises Conflict when another poller recorded the same message at the same moment."""

    message: Message
    client_id: str
    info: DomainInfoData | None = None
    secdns: SecDnsInfo | None = None

    async def run(self, tx: Tx) -> bool:
        message = self.message
        if await tx.session.get(RegistryMessage, (message.link, message.key)) is not None:
            return False
        tx.session.add(RegistryMessage(link=message.link, message_id=message.key,
                                       kind=message.kind, queued_at=message.queued_at,
                                       received_at=tx.now))
        domain = await _local_domain(tx, message)
        account = None if domain is None else await tx.session.get(Account, domain.account_id)
        meaning = message.meaning(self.client_id)
        applies = domain is not None and account is not None and meaning is not None \
            and _applies(meaning, domain)
        tx.record(f"registry:poll:{message.kind}",
                  account=account.public_id if account is not None else None,
                  **message.summary(), meaning=meaning if applies else None)
        if applies:
            assert domain is not None and account is not None and meaning is not None
            await self._apply(tx, meaning, domain, account)
        log.info("registry:poll:recorded", link=message.link, message_id=message.id,
                 kind=message.kind, meaning=meaning if applies else None)
        return True

    async def _apply(self, tx: Tx, meaning: str, domain: Domain, account: Account) -> None:
        message, transfer = self.message, self.message.transfer
        assert transfer is not None
        summary: dict[str, Any] = {"domain": domain.name, "message_id": message.id,
                                   "link": message.link, "tr_status": transfer.status}
        info = self.info if self.info is not None \
            and self.info.sponsoring_client == self.client_id else None
        if info is not None and meaning in READ_AGAIN:
            adopt(domain, info, self.secdns, tx.now)
        if meaning == "transfer-out:requested":
            completes_at = transfer.act_by.isoformat()
            tx.record("domains:transfer-out:requested", account=account.public_id,
                      **summary, gaining_registrar=transfer.requesting_client,
                      completes_at=completes_at)
            await _tell_holders(tx, domain, account, Change.TRANSFER_REQUESTED,
                                {"completes_at": completes_at,
                                 "gaining_registrar": transfer.requesting_client})
        elif meaning == "transfer-out:completed":
            domain.state, domain.ended_at = "ended", tx.now
            completed = (message.queued_at or tx.now).isoformat()
            tx.record("domains:transfer-out:completed", account=account.public_id, **summary,
                      gaining_registrar=transfer.requesting_client, completed_at=completed)
            await _tell_holders(tx, domain, account, Change.TRANSFER_APPROVED,
                                {"completes_at": completed})
        elif meaning == "transfer-out:rejected":
            tx.record("domains:transfer-out:rejected", account=account.public_id, **summary)
        elif meaning == "transfer-in:completed":
            domain.state = "active"
            await suspend_zones_of_others(tx, domain)  # nobody else's zone answers for it
            tx.record("domains:transfer-in:completed", account=account.public_id, **summary,
                      losing_registrar=transfer.acting_client, read_back=info is not None)
            _lock_arrived(tx, domain)
            await verification_after_change(tx, domain, Cause.TRANSFER_IN)
        elif meaning == "transfer-in:rejected":
            domain.state, domain.ended_at = "ended", tx.now
            tx.record("domains:transfer-in:rejected", account=account.public_id, **summary)
        domain.updated_at = tx.now


def _lock_arrived(tx: Tx, domain: Domain) -> None:
    """A domain that arrives by transfer gets the registrar lock (on by default, SAC044) and,
    where the Transfer Policy makes it mandatory, the post-transfer restriction window; the
    statuses follow at the registry."""
    holds = place(holds_of(domain), Hold.of(HoldReason.REGISTRAR_LOCK))
    policy = transfer_policy(tx.now, tx.services.settings.tpr_effective)
    if policy.restriction_mandatory:
        until = tx.now + policy.after_transfer_restriction
        holds = place(holds, Hold.of(HoldReason.TRANSFER_LOCK_AFTER_TRANSFER,
                                     reference=f"until:{until.isoformat()}"))
    store_holds(domain, holds)
    new_operation(tx, domain, "statuses", {"after": "transfer-in"})


def _applies(meaning: str, domain: Domain) -> bool:
    """Whether the local row is in a state the message speaks about: a transfer in concerns
    the row that waits for it; a transfer out, a domain that is ours."""
    if meaning.startswith("transfer-in:"):
        return domain.state == "pending_transfer_in"
    return domain.state != "pending_transfer_in"


async def _local_domain(tx: Tx, message: Message) -> Domain | None:
    name = message.domain
    if name is None:
        return None
    domain = await live_domain(tx.session, name.lower())
    if domain is None or domain.registry_link != message.link:
        return None
    return domain


async def _tell_holders(tx: Tx, domain: Domain, account: Account, change: Change,
                        details: dict[str, Any]) -> None:
    """A notice to the registrant contact (when the domain has one) and the account's
    owners, named by reference: the outbox never holds an address."""
    recipients = [to_account_owners(account.public_id)]
    if domain.registrant_id is not None:
        contact = await tx.session.get(Contact, domain.registrant_id)
        if contact is not None:
            recipients.insert(0, to_contact(contact.handle))
    notice(tx, change=change, recipients=recipients, domain=domain.unicode_name,
           details=details)


# --- reading the queue ---------------------------------------------------------------------


async def poll_registry(services: Services, link_name: str) -> int:
    """Read the message queue of one registry link until it is empty; returns how many
    messages were acknowledged (a message read again after a lost acknowledgement counts,
    but is recorded once).

    A session that turns out to be dead when the poll is sent (the registry restarted) is
    replaced once: polling is safe to repeat, since a message is recorded once and
    acknowledged until the registry drops it.

    Raises ConfigurationError (no such link), RegistryUnavailable, RegistryLoginRefused,
    RegistryConnectionLost, RegistryProtocolError, PollFailed."""
    link = services.registries.link(link_name)
    counter = [0]
    for attempt in (1, 2):
        pool = await services.registries.pool(link)
        try:
            async with pool.session() as session:
                await _drain(services, link, session, counter)
            return counter[0]
        except _SessionDied as died:
            if attempt == 2:
                raise died.cause from None
            log.info("registry:poll:retrying", link=link.name,
                     error_type=type(died.cause).__name__)
    raise AssertionError("unreachable")


class _SessionDied(Exception):
    """The pooled session failed under a poll command: worth one more try on a fresh one."""

    def __init__(self, cause: RegistryError) -> None:
        super().__init__(str(cause))
        self.cause = cause


async def _send(session: EppSession, command: Poll) -> EppResponse:
    try:
        return await session.execute(command)
    except (RegistryUnavailable, RegistryConnectionLost) as exc:
        raise _SessionDied(exc) from exc


async def _drain(services: Services, link: RegistryLink, session: EppSession,
                 counter: list[int]) -> None:
    client_id = link.endpoint.client_id
    acknowledged: set[str] = set()
    while True:
        response = await _send(session, Poll.request())
        if response.code == ResultCode.COMPLETED_NO_MESSAGES:
            return
        if response.code != ResultCode.COMPLETED_ACK_TO_DEQUEUE:
            raise PollFailed(f"{link.name}: poll request answered {int(response.code)} "
                             f"{response.message}")
        message = Message.of(link.name, response)
        if message.id in acknowledged:
            raise PollFailed(f"{link.name}: message {message.id[:64]} came back after its "
                             "acknowledgement")
        if not await _recorded(services, message):
            info, secdns = await _read_again(session, message, client_id)
            await _record(services, message, client_id, info, secdns)
        answer = await _send(session, Poll.acknowledge(message.id))
        # 2303: another poller acknowledged it first.
        if not answer.succeeded and answer.code != ResultCode.OBJECT_DOES_NOT_EXIST:
            raise PollFailed(f"{link.name}: acknowledging message {message.id[:64]} was "
                             f"answered {int(answer.code)} {answer.message}")
        acknowledged.add(message.id)
        counter[0] += 1


async def _recorded(services: Services, message: Message) -> bool:
    async with services.store.read() as session:
        return await session.get(RegistryMessage, (message.link, message.key)) is not None


async def _read_again(session: EppSession, message: Message, client_id: str
                      ) -> tuple[DomainInfoData | None, SecDnsInfo | None]:
    """The domain as the registry holds it, when the message's meaning needs it."""
    if message.meaning(client_id) not in READ_AGAIN or message.domain is None:
        return None, None
    try:
        return await Conversation(session).info(message.domain)
    except (RegistryUnavailable, RegistryConnectionLost) as exc:
        raise _SessionDied(exc) from exc


async def _record(services: Services, message: Message, client_id: str,
                  info: DomainInfoData | None, secdns: SecDnsInfo | None) -> None:
    try:
        await run_flow(services, system_actor("registry"), RequestContext("system"),
                       PollMessageRecord(message, client_id, info, secdns))
    except Conflict:
        if not await _recorded(services, message):
            raise  # a conflict of another kind


async def poll_forever(services: Services, interval: float) -> None:
    """Poll every configured link, then again every `interval` seconds, until cancelled. A
    failed pass is logged; the next one comes as usual."""
    while True:
        for name in sorted(services.registries.links):
            try:
                count = await poll_registry(services, name)
            except RegshieldError as exc:
                log.warning("registry:poll:failed", link=name, error_type=type(exc).__name__,
                            detail=exc.detail)
            except Exception:
                log.exception("registry:poll:crashed", link=name)
            else:
                if count:
                    log.info("registry:poll:done", link=name, messages=count)
        await asyncio.sleep(interval)


__all__ = ["Message", "PollFailed", "PollMessageRecord", "poll_forever", "poll_registry"]
