"""Asking for a notice from inside a flow: `notice(tx, ...)` queues a `notify:email` effect.

The payload names its recipients by reference (a user's public id, a contact handle, the
owners of an account), never by address: addresses are opened from the sealed records only
when the notice is sent (notify/handler.py). The outbox therefore holds no personal data, and a
recipient whose address changes before the notice goes out gets it at the new address.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

from regshield.flows.context import Actor
from regshield.flows.runner import Tx
from regshield.notify.messages import Change, Notice, detail_problems

KIND = "notify:email"
RecipientKind = Literal["user", "contact", "account_owners", "contact_previous"]
RECIPIENT_KINDS: tuple[str, ...] = get_args(RecipientKind)


@dataclass(frozen=True)
class Recipient:
    """Who a notice goes to, by reference: `user` (public id), `contact` (handle),
    `account_owners` (an account's public id: its users with the role `owner`), or
    `contact_previous` (a contact's address before an edit: `<handle>:<sealed address>`,
    sealed under the contact's data key, see `to_previous_address`)."""

    kind: RecipientKind
    reference: str

    @property
    def label(self) -> str:
        """How events name this recipient (`contact:RS-...`), never by address."""
        if self.kind == "contact_previous":
            return f"{self.kind}:{self.reference.partition(':')[0]}"
        return f"{self.kind}:{self.reference}"

    def as_payload(self) -> dict[str, str]:
        return {self.kind: self.reference}

    @classmethod
    def from_payload(cls, value: Any) -> Recipient:
        if not (isinstance(value, dict) and len(value) == 1):
            raise ValueError("a recipient is one {kind: reference} pair")
        [(kind, reference)] = value.items()
        if kind not in RECIPIENT_KINDS or not isinstance(reference, str) or not reference:
            raise ValueError(f"unknown recipient kind {kind!r}")
        return cls(cast(RecipientKind, kind), reference)


def to_user(public_id: str) -> Recipient:
    return Recipient("user", public_id)


def to_contact(handle: str) -> Recipient:
    return Recipient("contact", handle)


def previous_address_binding(handle: str) -> str:
    """The associated data of a contact's previous address sealed into a notice."""
    return f"contacts:{handle}:previous-email"


def to_previous_address(handle: str, sealed: bytes) -> Recipient:
    """The address a contact had before an edit, sealed (AES-256-GCM under the contact's data
    key, `previous_address_binding`): the outbox never holds it in clear, and it opens only
    while the contact's key exists."""
    return Recipient("contact_previous",
                     f"{handle}:{base64.urlsafe_b64encode(sealed).decode('ascii')}")


def to_account_owners(account_public_id: str) -> Recipient:
    return Recipient("account_owners", account_public_id)


def notice(tx: Tx, *, change: Change | str, recipients: Sequence[Recipient],
           domain: str | None = None, details: Mapping[str, Any] | None = None,
           event: str | None = None, actor: Actor | None = None) -> None:
    """Queue a notice of `change` to `recipients`, sent once the flow's transaction commits.

    Actor, channel, source address, request id and time come from the flow's `Tx`. `details`
    hold the non-personal values the kind of change needs (see `TEMPLATES` in
    notify/messages.py); `event` is the tag of the event recording the change (default: the
    last one the flow recorded), so that the message can name its sequence number; `actor`
    names who made the change when it is not the flow's actor (a login). The same
    notice queued twice in one request is one effect. Raises ValueError for details that do
    not fit the kind of change, before anything is written.
    """
    kind = Change(change)
    values = dict(details or {})
    problems = detail_problems(kind, domain, values)
    if not recipients:
        problems.append("a notice needs at least one recipient")
    if problems:
        raise ValueError("; ".join(problems))
    content = Notice(
        change=kind, domain=domain, details=values, actor=(actor or tx.actor).label,
        channel=tx.context.channel, source_address=tx.context.source_address,
        request_id=tx.context.request_id, occurred_at=tx.now,
        event=event if event is not None else (tx.events[-1].tag if tx.events else None),
    )
    targets = list(dict.fromkeys(recipients))
    payload = {**content.as_payload(), "recipients": [r.as_payload() for r in targets]}
    identity = json.dumps([content.key, payload["recipients"]], separators=(",", ":"))
    tx.enqueue(KIND, payload,
               dedupe_key=f"{KIND}:{hashlib.sha256(identity.encode()).hexdigest()[:40]}")
