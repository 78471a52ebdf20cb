"""The contact relay: a message from anyone to a domain's registrant or technical contact,
passed on without showing the sender the contact's address (RDP publication: the web form that
stands in for a redacted email, `contact_form_url` in rdds/record.py).

`RelayMessageSend` checks the message, counts it against the sender's daily allowance for this
domain (the sender is their source network: `[limits] contact_sender_per_day`, so one sender
cannot use up the domain's day for everyone else) and against the domain's daily allowance,
all senders together (so the form cannot be used to flood one holder), and queues
`relay:message` in the outbox. The
message is personal data (the sender's name and address, and whatever they wrote), so the
payload carries it sealed under a data key of its own (AES-256-GCM, security/fields.py, bound
to the relay id); the contact is named by handle and its address is opened only when the mail
is sent. Once the message is delivered, or can never be, `RelayMessageSettle` deletes that data
key: the sealed copy left in the outbox row no longer opens (crypto-shredding), and nothing of
the message stays readable at rest. A message the outbox gave up on is shredded by the sweep
(`RelayKeysShred`). Events carry the relay id, domain and role, never a name,
an address or the text.

The mail goes to the contact's address with Reply-To set to the sender, so that answering is
the contact's own choice. It is marked as automatic, so that vacation responders do not
answer the sender and reveal the address.
"""

from __future__ import annotations

import base64
import binascii
import math
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any

import structlog
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from regshield.clock import as_utc
from regshield.errors import FieldError, NotFound, Throttled, ValidationFailed
from regshield.flows.contacts import open_contact
from regshield.flows.context import RequestContext, system_actor
from regshield.flows.runner import Tx, run_flow
from regshield.notify.delivery import MessageRefused, open_transport
from regshield.outbox.worker import Handler
from regshield.rdds.record import SPONSORED_STATES
from regshield.rules.contacts import normalize_email
from regshield.rules.redaction import ContactRole
from regshield.security.fields import Sealer
from regshield.security.limits import network_of
from regshield.services import Services
from regshield.store.models import Contact, DataKey, Domain, OutboxItem
from regshield.store.queries.accounts import public_ids, registrar
from regshield.store.queries.contacts import contact_by_handle
from regshield.store.queries.domains import live_domain
from regshield.store.queries.users import throttle_counters

KIND = "relay:message"
MAX_SENDER_NAME = 100
MAX_MESSAGE = 4000
MIN_MESSAGE = 10
# How many messages one domain's contacts receive through the form in a day, all senders
# together (each sender has a smaller allowance of their own, `[limits]
# contact_sender_per_day`); a per-source rate limit (services.limiter("contact")) comes first
# in the adapter.
MESSAGES_PER_DOMAIN_PER_DAY = 20
DAY = timedelta(days=1)
log = structlog.get_logger("regshield.relay")


@dataclass(frozen=True)
class RelayMessage:
    """What a sender wrote, checked. Personal data: never logged, stored only sealed."""

    sender_name: str = field(repr=False)
    sender_email: str = field(repr=False)
    text: str = field(repr=False)

    @classmethod
    def parse(cls, sender_name: Any, sender_email: Any, text: Any) -> RelayMessage:
        """Check every field at once; raises ValidationFailed naming each bad field."""
        errors: list[FieldError] = []
        name = _line(sender_name, "sender_name", MAX_SENDER_NAME, errors)
        email = normalize_email(sender_email.strip() if isinstance(sender_email, str)
                                else sender_email, errors, "sender_email")
        body = _body(text, errors)
        if errors:
            raise ValidationFailed(errors)
        assert name is not None and email is not None and body is not None
        return cls(name, email, body)


def _line(value: Any, field_name: str, limit: int, errors: list[FieldError]) -> str | None:
    if not isinstance(value, str) or not value.strip():
        errors.append(FieldError(field_name, "required", "is required"))
        return None
    line = str(value).strip()
    if len(line) > limit:
        errors.append(FieldError(field_name, "too_long",
                                 f"must be at most {limit} characters, not {len(line)}"))
        return None
    if not line.isprintable():
        errors.append(FieldError(field_name, "invalid_characters",
                                 "must be one line of printable text"))
        return None
    return line


def _body(value: Any, errors: list[FieldError]) -> str | None:
    if not isinstance(value, str) or not value.strip():
        errors.append(FieldError("message", "required", "is required"))
        return None
    text = value.replace("\r\n", "\n").replace("\r", "\n").strip()
    if len(text) > MAX_MESSAGE:
        errors.append(FieldError("message", "too_long",
                                 f"must be at most {MAX_MESSAGE} characters, not {len(text)}"))
        return None
    if len(text) < MIN_MESSAGE:
        errors.append(FieldError("message", "too_short",
                                 f"must be at least {MIN_MESSAGE} characters"))
        return None
    if any(not (ch.isprintable() or ch in "\n\t") for ch in text):
        errors.append(FieldError("message", "invalid_characters",
                                 "must be text without control characters"))
        return None
    return text


def parse_role(value: str) -> ContactRole:
    """The contact role of a relay address; anything else is not found (404)."""
    try:
        return ContactRole(value)
    except ValueError:
        raise NotFound("no such contact: the role is registrant or technical") from None


async def _target(session: AsyncSession, domain: str,
                  role: ContactRole) -> tuple[Domain, int] | None:
    row = await live_domain(session, domain)
    if row is None or row.state not in SPONSORED_STATES:
        return None
    contact_id = row.registrant_id if role is ContactRole.REGISTRANT else row.tech_id
    return (row, contact_id) if contact_id is not None else None


async def relay_target_exists(services: Services, domain: str, role: ContactRole) -> bool:
    """Whether `domain` (A-label) is sponsored here and has a contact in `role`: the form is
    shown only then."""
    async with services.store.read() as session:
        return await _target(session, domain, role) is not None


@dataclass(frozen=True)
class RelayMessageSend:
    """Queue `message` for the `role` contact of `domain` (A-label). Returns the relay id.

    Raises NotFound (the domain is not sponsored here, or has no such contact) and Throttled
    (this sender, or all senders together, sent the domain's contacts their day's share of
    messages; the refusal is an event).
    """

    domain: str
    role: ContactRole
    message: RelayMessage

    async def run(self, tx: Tx) -> str:
        found = await _target(tx.session, self.domain, self.role)
        if found is None:
            raise NotFound("no such domain or contact")
        row, contact_id = found
        contact = await tx.session.get(Contact, contact_id)
        assert contact is not None
        account = (await public_ids(tx.session, {row.account_id}))[row.account_id]
        keyring = tx.services.keyring
        domain_key = "relay:domain:" + keyring.index("relay-domain", self.domain)
        sender = network_of(tx.context.source_address)
        sender_key = "relay:sender:" + keyring.index("relay-sender", f"{self.domain} {sender}")
        counters = await throttle_counters(tx.session, [domain_key, sender_key], tx.now)
        # Each counter's `failures` column counts messages here: one window per day. The
        # sender's own allowance comes first, so that a sender over it takes nothing from
        # the domain's.
        for key, allowance, reason, detail in (
                (sender_key, tx.services.settings.limits.contact_sender_per_day,
                 "sender_daily_limit", "you have sent this domain's contacts as many messages "
                                       "through the form as one sender may today; try later"),
                (domain_key, MESSAGES_PER_DOMAIN_PER_DAY, "domain_daily_limit",
                 "this domain's contacts have received as many messages through the form as "
                 "they accept today; try later")):
            counter = counters[key]
            window_start = as_utc(counter.window_start)
            if window_start + DAY <= tx.now:
                counter.window_start, counter.failures = tx.now, 0
                window_start = tx.now
            if counter.failures >= allowance:
                wait = max(1, math.ceil((window_start + DAY - tx.now).total_seconds()))
                tx.record("relay:message:refused", account=account, domain=self.domain,
                          role=str(self.role), reason=reason)
                tx.refuse(Throttled(wait, detail))
                return ""
        for counter in counters.values():
            counter.failures += 1

        relay_id = "rl_" + secrets.token_hex(12)
        data_key_id, data_key = await tx.sealer.new_data_key(tx.session, tx.now)
        sealed = Sealer.seal_json(data_key, {"sender_name": self.message.sender_name,
                                             "sender_email": self.message.sender_email,
                                             "text": self.message.text}, _binding(relay_id))
        tx.record("relay:message:queued", account=account, relay=relay_id, domain=self.domain,
                  role=str(self.role))
        tx.enqueue(KIND, {"relay": relay_id, "domain": self.domain, "role": str(self.role),
                          "contact": contact.handle, "account": account,
                          "data_key": data_key_id,
                          "sealed": base64.b64encode(sealed).decode("ascii")},
                   dedupe_key=f"{KIND}:{relay_id}")
        return relay_id


def _binding(relay_id: str) -> str:
    return f"relay:{relay_id}"


@dataclass(frozen=True)
class RelayMessageSettle:
    """Record what became of a relayed message and delete its data key, so that the sealed
    copy in the outbox never opens again. Raises nothing of its own."""

    relay_id: str
    data_key_id: int
    outcome: str  # sent | undeliverable
    account: str | None
    summary: dict[str, Any]

    async def run(self, tx: Tx) -> None:
        await tx.session.execute(delete(DataKey).where(DataKey.id == self.data_key_id))
        tx.record(f"relay:message:{self.outcome}", account=self.account, relay=self.relay_id,
                  **self.summary)


@dataclass(frozen=True)
class RelayKeysShred:
    """Delete the data keys of relayed messages the outbox gave up on (every attempt deferred):
    what is left of them at rest stops opening, as for a delivered one. Run by the sweep;
    returns the relay ids it shredded. Raises nothing of its own."""

    async def run(self, tx: Tx) -> list[str]:
        rows = await tx.session.execute(select(OutboxItem.payload).where(
            OutboxItem.kind == KIND, OutboxItem.failed.is_(True)))
        shredded = []
        for (payload,) in rows.all():
            key_id = payload.get("data_key") if isinstance(payload, dict) else None
            if not isinstance(key_id, int):
                continue
            gone = await tx.session.execute(delete(DataKey).where(DataKey.id == key_id))
            if gone.rowcount:  # type: ignore[attr-defined]
                relay_id = str(payload.get("relay"))
                tx.record("relay:message:abandoned", account=payload.get("account"),
                          relay=relay_id, domain=payload.get("domain"),
                          role=payload.get("role"))
                shredded.append(relay_id)
        return shredded


def handlers() -> dict[str, Handler]:
    """The outbox handler of relayed messages, for the worker `regshield serve` starts."""
    return {KIND: deliver_relayed_message}


async def deliver_relayed_message(services: Services, payload: dict[str, Any]) -> None:
    """Send one queued message to the contact's current address (idempotent: a message whose
    data key is gone was settled already)."""
    try:
        relay_id = str(payload["relay"])
        domain, role = str(payload["domain"]), ContactRole(payload["role"])
        handle, data_key_id = str(payload["contact"]), int(payload["data_key"])
        account = payload.get("account")
        sealed = base64.b64decode(str(payload["sealed"]), validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise ValueError(f"malformed relay payload ({type(exc).__name__})") from None
    summary = {"domain": domain, "role": str(role)}
    async with services.store.read() as session:
        key_row = await session.get(DataKey, data_key_id)
        if key_row is None:
            return  # settled before: sent, or found undeliverable
        data_key = services.keyring.unwrap(key_row.master_key_id, key_row.wrapped)
        content = Sealer.open_json(data_key, sealed, _binding(relay_id))
        contact = await contact_by_handle(session, handle)
        address = None
        if contact is not None:
            view = await open_contact(session, services.sealer, contact, str(account or ""))
            address = view.data.email
        record = await registrar(session)
    settle = RelayMessageSettle(relay_id, data_key_id, "sent", account, summary)
    if address is None:
        settle = RelayMessageSettle(relay_id, data_key_id, "undeliverable", account,
                                    {**summary, "reason": "contact_unknown"})
    else:
        registrar_name = record.name if record is not None else "regshield"
        message = compose_relayed(relay_id, domain, role, content, address,
                                  registrar_name=registrar_name,
                                  sender=services.settings.smtp.sender,
                                  sent_at=services.clock.now())
        transport = open_transport(services.settings)
        try:
            await transport.send(message, address)
            settle = RelayMessageSettle(relay_id, data_key_id, "sent", account,
                                        {**summary, "via": transport.via})
        except MessageRefused as refused:
            settle = RelayMessageSettle(relay_id, data_key_id, "undeliverable", account,
                                        {**summary, "refusal": refused.reason})
        finally:
            await transport.close()
    await run_flow(services, system_actor("relay"), RequestContext("system"), settle)
    log.info("relay.settled", relay=relay_id, outcome=settle.outcome, domain=domain)


def compose_relayed(relay_id: str, domain: str, role: ContactRole, content: dict[str, Any],
                    recipient: str, *, registrar_name: str, sender: str,
                    sent_at: datetime) -> EmailMessage:
    """The message to the contact. Sender name and address come from the form: the email
    package refuses a header value with a line break, and the form refused them already."""
    message = EmailMessage()
    message["Subject"] = f"[{registrar_name}] A message about {domain} from its contact form"
    message["From"] = formataddr((f"{registrar_name} contact form", sender))
    message["To"] = recipient
    message["Reply-To"] = formataddr((str(content["sender_name"]),
                                      str(content["sender_email"])))
    message["Date"] = format_datetime(sent_at.astimezone(UTC))
    host = sender.rpartition("@")[2] or "regshield.invalid"
    message["Message-ID"] = f"<relay.{relay_id.removeprefix('rl_')}@{host}>"
    # No automatic replies: an out-of-office answer to the Reply-To would reveal the address.
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    who = "registrant" if role is ContactRole.REGISTRANT else "technical contact"
    message.set_content("\n".join([
        f"Someone used the contact form of {registrar_name} to write to the {who} of",
        f"{domain}. Your address was not shown to them.",
        "",
        f"From:  {content['sender_name']} <{content['sender_email']}>",
        "  (as the sender typed it: the address is not verified)",
        "",
        "-" * 60,
        str(content["text"]),
        "-" * 60,
        "",
        "Replying to this message sends your answer, and your address, to the sender.",
        "If this message is abuse, forward it to the registrar and quote the reference.",
        f"Reference: {relay_id}",
    ]) + "\n")
    return message
