"""Notices of sensitive changes and the plain-text email that carries each one.

`TEMPLATES` is the one table of the kinds of change a notice reports: the details each needs
and how they read. A message says what changed, when (UTC), through which channel and from
which address, by whom (an identifier, never an email address), the reference to quote, and
where to report a change the recipient did not make. It neither greets the recipient by name
nor repeats any of their data: a notice that reaches the wrong mailbox discloses nothing but
the change itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from enum import StrEnum
from typing import Any

MAX_DETAIL_TEXT = 255
MAX_DETAIL_ITEMS = 64


class Change(StrEnum):
    """A kind of sensitive change; its value is what the outbox payload carries."""

    NAMESERVERS = "nameservers"
    DS_RECORDS = "ds_records"
    REGISTRANT = "registrant"
    REGISTRANT_DATA = "registrant_data"  # a change of registrant by editing the contact
    CONTACT = "contact"
    REGISTRAR_LOCK = "registrar_lock"
    REGISTRY_LOCK = "registry_lock"
    TRANSFER_CODE = "transfer_code"
    TRANSFER_REQUESTED = "transfer_requested"
    TRANSFER_APPROVED = "transfer_approved"
    SECOND_FACTOR = "second_factor"
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 (a kind of change, not a secret)
    RECOVERY_CODES = "recovery_codes"
    API_TOKEN = "api_token"  # noqa: S105
    LOGIN_ADDRESS = "login_address"
    ACCURACY_VERIFICATION = "accuracy_verification"  # WHOIS Accuracy Program (WAPS)
    ACCURACY_REMINDER = "accuracy_reminder"
    ACCURACY_SUSPENDED = "accuracy_suspended"
    ACCURACY_LIFTED = "accuracy_lifted"
    ZONE_APEX = "zone_apex"  # hosted DNS: the apex of a zone changed, or the zone went
    ZONE_SUSPENDED = "zone_suspended"
    ZONE_DS_HELD = "zone_ds_held"


def _listed(values: Any) -> str:
    return ", ".join(str(v) for v in values) if values else "(none)"


def _when(text: str) -> str:
    return format_utc(parse_utc(text))


def _on_off(value: Any) -> str:
    return "on" if value else "off"


def _nameservers(d: Mapping[str, Any]) -> list[str]:
    return ["The nameservers of the domain changed.",
            f"  before: {_listed(d['before'])}",
            f"  after:  {_listed(d['after'])}"]


def _ds_records(d: Mapping[str, Any]) -> list[str]:
    lines = ["The DS records of the domain (its DNSSEC chain of trust) changed.", "  before:"]
    lines += [f"    {ds}" for ds in d["before"]] or ["    (none)"]
    lines += ["  after:"] + ([f"    {ds}" for ds in d["after"]] or ["    (none)"])
    if d["before"] and not d["after"]:
        lines.append("DNSSEC validation of the domain is now off.")
    return lines


def _registrant(d: Mapping[str, Any]) -> list[str]:
    return [f"The registrant (the holder of the domain) changed from contact {d['before']} "
            f"to contact {d['after']}."]


def _registrant_data(d: Mapping[str, Any]) -> list[str]:
    lines = [f"The registration data of contact {d['contact']}, the registrant (the holder) "
             f"of {_listed(d['domains'])}, changed: {_listed(d['fields'])}.",
             "Under ICANN's Transfer Policy this is a change of registrant. This message goes "
             "to the registrant's previous and new email address."]
    if d.get("transfer_lock_until"):
        lines.append("The domains cannot be transferred to another registrar until "
                     f"{_when(d['transfer_lock_until'])} (the 60-day lock after a change of "
                     "registrant).")
    elif d.get("opted_out"):
        lines.append("The prior registrant opted out of the 60-day transfer lock: the domains "
                     "can be transferred to another registrar.")
    return lines


def _contact(d: Mapping[str, Any]) -> list[str]:
    return [f"The registration data of contact {d['contact']} changed: "
            f"{_listed(d['fields'])}."]


def _registrar_lock(d: Mapping[str, Any]) -> list[str]:
    if d["locked"]:
        return ["The registrar lock was turned on: the domain cannot be transferred, updated "
                "or deleted until it is turned off."]
    return ["The registrar lock was turned off: the domain can now be transferred to another "
            "registrar, updated or deleted."]


def _registry_lock(d: Mapping[str, Any]) -> list[str]:
    if d["locked"]:
        return ["Registry lock was turned on: the registry now refuses changes to the domain "
                "unless they are verified by hand."]
    return ["Registry lock was turned off: the registry now accepts changes to the domain "
            "without verifying them by hand."]


def _transfer_code(d: Mapping[str, Any]) -> list[str]:
    return ["A transfer authorization code (auth code) was issued for the domain. Whoever "
            "holds it can ask another registrar to take the domain over.",
            f"The code expires on {_when(d['expires_at'])}."]


def _transfer_requested(d: Mapping[str, Any]) -> list[str]:
    gaining = d.get("gaining_registrar")
    to = f" ({gaining})" if gaining else ""
    return [f"A transfer of the domain to another registrar{to} was requested.",
            f"Unless it is rejected, it completes on {_when(d['completes_at'])}."]


def _transfer_approved(d: Mapping[str, Any]) -> list[str]:
    return ["The transfer of the domain to another registrar was approved.",
            f"It completes on {_when(d['completes_at'])}."]


def _second_factor(d: Mapping[str, Any]) -> list[str]:
    if d.get("replaced"):
        return [f"The one-time code generator (authenticator app) of user {d['user']} was "
                "replaced by a new one; the previous one and its recovery codes no longer "
                "work."]
    return [f"Two-factor authentication (one-time codes) was turned {_on_off(d['enabled'])} "
            f"for user {d['user']}."]


def _password(d: Mapping[str, Any]) -> list[str]:
    return [f"The password of user {d['user']} was changed; every other API token and "
            "session of the user was revoked."]


def _recovery_codes(d: Mapping[str, Any]) -> list[str]:
    return [f"New recovery codes were generated for user {d['user']}; the previous ones no "
            "longer work."]


def _api_token(d: Mapping[str, Any]) -> list[str]:
    return [f"A new API token {d['token']} was created for user {d['user']}, with the "
            f"scopes {_listed(d['scopes'])}, valid until {_when(d['expires_at'])}.",
            f"It can be revoked with DELETE /api/v1/tokens/{d['token']}."]


def _login_address(d: Mapping[str, Any]) -> list[str]:
    return [f"User {d['user']} signed in ({d['method']}) from an address not used for this "
            "user before (shown below)."]


def _accuracy_verification(d: Mapping[str, Any]) -> list[str]:
    return [f"A verification link was sent to the registrant contact {d['contact']} of "
            f"{_listed(d['domains'])}, as ICANN's WHOIS Accuracy Program requires.",
            f"Unless the registrant follows it by {_when(d['deadline'])}, the domains are "
            "suspended until they do."]


def _accuracy_reminder(d: Mapping[str, Any]) -> list[str]:
    return [f"The registrant contact {d['contact']} of {_listed(d['domains'])} has not yet "
            "confirmed its data; a reminder with a new link was sent.",
            f"Unless the registrant follows it by {_when(d['deadline'])}, the domains are "
            "suspended until they do."]


def _accuracy_suspended(d: Mapping[str, Any]) -> list[str]:
    return [f"The domain is suspended (clientHold: it does not resolve) because its "
            f"registrant contact {d['contact']} did not confirm its data within 15 days.",
            "Following the verification link in the registrant's latest message lifts the "
            "suspension."]


def _accuracy_lifted(d: Mapping[str, Any]) -> list[str]:
    return [f"The registrant contact {d['contact']} confirmed its data: the accuracy "
            "suspension of the domain is lifted and it resolves again."]


def _zone_apex(d: Mapping[str, Any]) -> list[str]:
    if d["action"] == "deleted":
        return [f"The hosted zone {d['zone']} was deleted: regshield no longer answers for it."]
    return [f"The apex of the hosted zone {d['zone']} changed ({d['action']}): "
            f"{_listed(d['types'])}."]


def _zone_suspended(d: Mapping[str, Any]) -> list[str]:
    return [f"The hosted zone {d['zone']} is suspended: its name was registered through this "
            "registrar by another account, so regshield no longer answers for it. The zone "
            "is kept; it can be exported or deleted."]


def _zone_ds_held(d: Mapping[str, Any]) -> list[str]:
    return [f"The parent of the hosted zone {d['zone']} publishes DS records that regshield "
            "did not put there:", *[f"    {ds}" for ds in d["ds"]],
            "regshield will not replace them with the DS of its own keys until the domain's "
            f"owner confirms it with a one-time code (POST /api/v1/zones/{d['zone'].rstrip('.')}"
            "/ds/takeover)."]


@dataclass(frozen=True)
class Template:
    """How one kind of change reads: subject, required and optional details, description."""

    title: str
    required: tuple[str, ...]
    describe: Callable[[Mapping[str, Any]], list[str]]
    optional: tuple[str, ...] = ()
    about_domain: bool = True
    # Details that are UTC times in ISO 8601, checked when the notice is queued.
    times: tuple[str, ...] = ()


TEMPLATES: dict[Change, Template] = {
    Change.NAMESERVERS: Template("Nameservers changed", ("before", "after"), _nameservers),
    Change.DS_RECORDS: Template("DS records changed", ("before", "after"), _ds_records),
    Change.REGISTRANT: Template("Registrant changed", ("before", "after"), _registrant),
    Change.REGISTRANT_DATA: Template(
        "Registrant changed", ("contact", "fields", "domains"), _registrant_data,
        optional=("transfer_lock_until", "opted_out"), about_domain=False),
    Change.CONTACT: Template("Contact data changed", ("contact", "fields"), _contact,
                             about_domain=False),
    Change.REGISTRAR_LOCK: Template("Registrar lock turned {locked}", ("locked",),
                                    _registrar_lock),
    Change.REGISTRY_LOCK: Template("Registry lock turned {locked}", ("locked",), _registry_lock),
    Change.TRANSFER_CODE: Template("Transfer code issued", ("expires_at",), _transfer_code,
                                   times=("expires_at",)),
    Change.TRANSFER_REQUESTED: Template("Transfer requested", ("completes_at",),
                                        _transfer_requested, optional=("gaining_registrar",),
                                        times=("completes_at",)),
    Change.TRANSFER_APPROVED: Template("Transfer approved", ("completes_at",),
                                       _transfer_approved, times=("completes_at",)),
    Change.SECOND_FACTOR: Template("Two-factor authentication turned {enabled}",
                                   ("user", "enabled"), _second_factor, optional=("replaced",),
                                   about_domain=False),
    Change.PASSWORD_CHANGED: Template("Password changed", ("user",), _password, about_domain=False),
    Change.RECOVERY_CODES: Template("Recovery codes replaced", ("user",), _recovery_codes,
                                    about_domain=False),
    Change.API_TOKEN: Template("New API token", ("user", "token", "scopes", "expires_at"),
                               _api_token, about_domain=False, times=("expires_at",)),
    Change.LOGIN_ADDRESS: Template("Sign-in from a new address", ("user", "method"),
                                   _login_address, about_domain=False),
    Change.ACCURACY_VERIFICATION: Template(
        "Registrant verification sent", ("contact", "domains", "deadline"),
        _accuracy_verification, about_domain=False, times=("deadline",)),
    Change.ACCURACY_REMINDER: Template(
        "Registrant verification reminder", ("contact", "domains", "deadline"),
        _accuracy_reminder, about_domain=False, times=("deadline",)),
    Change.ACCURACY_SUSPENDED: Template("Domain suspended: registrant not verified",
                                        ("contact",), _accuracy_suspended),
    Change.ACCURACY_LIFTED: Template("Domain suspension lifted: registrant verified",
                                     ("contact",), _accuracy_lifted),
    Change.ZONE_APEX: Template("Hosted zone changed at its apex", ("zone", "action", "types"),
                               _zone_apex, about_domain=False),
    Change.ZONE_SUSPENDED: Template("Hosted zone suspended", ("zone",), _zone_suspended,
                                    about_domain=False),
    Change.ZONE_DS_HELD: Template("DS records kept: your confirmation is needed",
                                  ("zone", "ds"), _zone_ds_held, about_domain=False),
}

CHANNELS = {"api": "the API", "console": "the web console", "cli": "the command line",
            "system": "regshield itself"}


def parse_utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return moment.astimezone(UTC)


def format_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _plain_text(value: Any) -> bool:
    # An address never belongs in a notice's details: they are stored in the outbox in clear.
    return (isinstance(value, str) and len(value) <= MAX_DETAIL_TEXT and value.isprintable()
            and "@" not in value)


def detail_problems(change: Change, domain: str | None, details: Mapping[str, Any]) -> list[str]:
    """Every reason these details cannot make a notice of `change` (empty when they can)."""
    template = TEMPLATES[change]
    problems = [f"details.{k} is required" for k in template.required if k not in details]
    allowed = template.required + template.optional
    problems += [f"details.{k} is not a detail of {change}" for k in details if k not in allowed]
    for key, value in details.items():
        items = value if isinstance(value, list) else [value]
        if len(items) > MAX_DETAIL_ITEMS or not all(
                v is None or isinstance(v, bool | int) or _plain_text(v) for v in items):
            problems.append(f"details.{key} must be short text, numbers or booleans, "
                            "and never an email address")
    for key in template.times:
        try:
            parse_utc(str(details.get(key)))
        except ValueError:
            problems.append(f"details.{key} must be an ISO 8601 time with a zone")
    if template.about_domain and domain is None:
        problems.append(f"a notice of {change} names its domain")
    if domain is not None and not (_plain_text(domain) and " " not in domain):
        problems.append("domain must be a domain name")
    return problems


@dataclass(frozen=True)
class Notice:
    """One sensitive change as the outbox payload carries it, recipients aside."""

    change: Change
    domain: str | None
    details: Mapping[str, Any]
    actor: str
    channel: str
    source_address: str | None
    request_id: str
    occurred_at: datetime
    # The tag of the event that records the change, to name its sequence number.
    event: str | None = None

    def as_payload(self) -> dict[str, Any]:
        return {
            "change": str(self.change), "domain": self.domain, "details": dict(self.details),
            "actor": self.actor, "channel": self.channel,
            "source_address": self.source_address, "request_id": self.request_id,
            "occurred_at": self.occurred_at.astimezone(UTC).isoformat(timespec="microseconds"),
            "event": self.event,
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Notice:
        """Read a payload back; a malformed one raises ValueError (the worker retries, then
        gives up and keeps the row for inspection)."""
        try:
            notice = cls(
                change=Change(payload["change"]), domain=payload.get("domain"),
                details=dict(payload.get("details") or {}), actor=str(payload["actor"]),
                channel=str(payload["channel"]), source_address=payload.get("source_address"),
                request_id=str(payload["request_id"]),
                occurred_at=parse_utc(str(payload["occurred_at"])), event=payload.get("event"),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed notice payload ({type(exc).__name__}: {exc})") from None
        problems = detail_problems(notice.change, notice.domain, notice.details)
        if problems:
            raise ValueError("malformed notice payload: " + "; ".join(problems))
        return notice

    @property
    def key(self) -> str:
        """A stable identity of this notice: the same payload gives the same key."""
        canonical = json.dumps(self.as_payload(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Letterhead:
    """Who the notice comes from and where a change the recipient did not make is reported."""

    registrar: str
    sender: str
    report_to: str | None = None


def message_id(notice: Notice, recipient: str, sender: str) -> str:
    """The same for every attempt to send this notice to this address, so that a message
    sent again after a retry is recognizable as the same message."""
    material = f"{notice.key}\0{recipient.casefold()}".encode()
    domain = sender.rpartition("@")[2] or "regshield.invalid"
    return f"<notice.{hashlib.sha256(material).hexdigest()[:32]}@{domain}>"


def subject(notice: Notice, registrar: str) -> str:
    template = TEMPLATES[notice.change]
    title = template.title.format(**{k: _on_off(v) for k, v in notice.details.items()
                                     if isinstance(v, bool)})
    return f"[{registrar}] {title}" + (f": {notice.domain}" if notice.domain else "")


def _actor(label: str) -> str:
    kind, _, identifier = label.partition(":")
    if kind == "user":
        return f"user {identifier}"
    if kind == "system":
        return f"regshield ({identifier or 'system'})"
    return label


def body(notice: Notice, letterhead: Letterhead, event_seq: int | None = None) -> str:
    """The text of the message: the same for every recipient of the notice."""
    subject_line = (f"the domain name {notice.domain}" if notice.domain
                    else "an account it holds")
    channel = CHANNELS.get(notice.channel, notice.channel)
    if notice.source_address:
        channel += f", from address {notice.source_address}"
    reference = f"request {notice.request_id}"
    if event_seq is not None:
        reference += f", event #{event_seq}"
    if letterhead.report_to:
        report = (f"reply to this message or write to {letterhead.report_to}, quoting the "
                  "reference above.")
    else:
        report = f"contact {letterhead.registrar}, quoting the reference above."
    lines = [
        f"{letterhead.registrar} records a sensitive change to {subject_line}:",
        "",
        *(f"  {line}" for line in TEMPLATES[notice.change].describe(notice.details)),
        "",
        f"When:       {format_utc(notice.occurred_at)}",
        f"Through:    {channel}",
        f"By:         {_actor(notice.actor)}",
        f"Reference:  {reference}",
        "",
        "If you made or expected this change, there is nothing to do.",
        "",
        "If you did not, report it at once: " + report,
        "Then sign in and check the domain's settings and the account's users and credentials.",
        "",
        "-- ",
        f"An automatic notice from {letterhead.registrar}, sent because this address is on",
        "record for the domain or the account concerned.",
    ]
    return "\n".join(lines) + "\n"


def compose(notice: Notice, recipient: str, letterhead: Letterhead, *, sent_at: datetime,
            event_seq: int | None = None) -> EmailMessage:
    """The message to one recipient: plain text, marked as automatic, with a stable
    Message-ID. A value holding a line break is refused by the email package, so no detail
    can add a header."""
    message = EmailMessage()
    message["Subject"] = subject(notice, letterhead.registrar)
    message["From"] = formataddr((letterhead.registrar, letterhead.sender))
    message["To"] = recipient
    if letterhead.report_to:
        message["Reply-To"] = letterhead.report_to
    message["Date"] = format_datetime(sent_at.astimezone(UTC))
    message["Message-ID"] = message_id(notice, recipient, letterhead.sender)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no automatic replies to it
    message["X-Auto-Response-Suppress"] = "All"
    message.set_content(body(notice, letterhead, event_seq))
    return message
