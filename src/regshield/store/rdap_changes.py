"""Which anonymous RDAP documents a transaction changes, recorded in that same transaction.

Any session that changes what a domain's RDAP document shows (a domain's published columns, a
contact's sealed data, a confirmed inbound transfer, the registrar's record) advances the one
`rdap_generation` counter just before it commits, writes what it touched to `rdap_changes`
under the new generation, and deletes the documents it made stale. Flows need not remember to
do any of this: the session events below see every ORM change, whichever flow made it.

The counter's row lock is taken at commit time only and is what orders these transactions with
the writes of new documents (rdds/documents.py): a document rendered from data older than a
committed change is never written over that change's deletion. Statements that bypass the ORM
(bulk `update()`) are not seen: no code changes these tables that way (bench seeding aside).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from sqlalchemy import delete, event, insert, or_, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, UOWTransaction
from sqlalchemy.orm.attributes import get_history

from regshield.store.models import (
    Contact,
    Domain,
    DomainOperation,
    RdapChange,
    RdapDocument,
    RdapGeneration,
    Registrar,
)

PENDING: Final = "rdap_changes"  # session.info key: changes flushed, not yet recorded
TRANSFER_KIND: Final = "transfer_request"
# The columns a document shows, per model; a change to any other column changes no document.
SHOWN: Final[dict[type[Any], tuple[str, ...]]] = {
    Domain: ("name", "unicode_name", "state", "ended_at", "roid", "registrant_id", "tech_id",
             "nameservers", "ds", "registry_statuses", "expires_at", "created_at",
             "updated_at", "publish_consent"),
    Contact: ("handle", "data_sealed", "data_key_id"),
    Registrar: ("name", "iana_id", "abuse_email", "abuse_phone"),
    DomainOperation: ("kind", "state", "completed_at", "domain_id"),
}

# A change key: ("domain", id), ("contact", id) or ("all", 0).
Change = tuple[str, int]
_local_commits = 0


def local_commits() -> int:
    """How many transactions of this process changed documents: a process's memory copy
    checks the store at once when this moves, instead of waiting for its next check."""
    return _local_commits


def _changed(obj: Any, new: bool) -> bool:
    return new or any(get_history(obj, column).has_changes() for column in SHOWN[type(obj)])


def changes_of(objects: Iterable[Any], new: frozenset[int]) -> set[Change]:
    found: set[Change] = set()
    for obj in objects:
        kind = type(obj)
        if kind not in SHOWN or not _changed(obj, id(obj) in new):
            continue
        if kind is Domain:
            found.add(("domain", obj.id))
        elif kind is Contact:
            if id(obj) not in new:  # no document names a contact made in this transaction
                found.add(("contact", obj.id))
        elif kind is Registrar:
            found.add(("all", 0))
        elif obj.kind == TRANSFER_KIND and obj.domain_id is not None:
            found.add(("domain", obj.domain_id))
    return found


@event.listens_for(Session, "after_flush")
def _collect(session: Session, _flush: UOWTransaction) -> None:
    new = frozenset(id(obj) for obj in session.new)
    found = changes_of([*session.new, *session.dirty, *session.deleted], new)
    if found:
        session.info.setdefault(PENDING, set()).update(found)


@event.listens_for(Session, "before_commit")
def _record(session: Session) -> None:
    session.flush()  # what is still unflushed is collected too
    changes: set[Change] | None = session.info.pop(PENDING, None)
    if changes:
        record_changes(session.connection(), changes)
        session.info["rdap_recorded"] = True


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    global _local_commits
    if session.info.pop("rdap_recorded", False):
        _local_commits += 1


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    session.info.pop(PENDING, None)
    session.info.pop("rdap_recorded", None)


def advance(connection: Connection) -> int:
    """Take the counter's row lock and advance it; the new generation."""
    generation = connection.execute(
        update(RdapGeneration).where(RdapGeneration.id == 1)
        .values(generation=RdapGeneration.generation + 1)
        .returning(RdapGeneration.generation)).scalar()
    if generation is None:  # the row is made by migration 0014; a truncated table lacks it
        connection.execute(insert(RdapGeneration).values(id=1, generation=1))
        generation = 1
    return int(generation)


def record_changes(connection: Connection, changes: set[Change]) -> int:
    """Advance the generation, say what it changed and delete the documents it made stale."""
    generation = advance(connection)
    everything = ("all", 0) in changes
    domains = sorted(key for kind, key in changes if kind == "domain")
    contacts = sorted(key for kind, key in changes if kind == "contact")
    rows: list[dict[str, Any]] = (
        [{"generation": generation, "domain_id": None, "contact_id": None}] if everything else
        [{"generation": generation, "domain_id": d, "contact_id": None} for d in domains]
        + [{"generation": generation, "domain_id": None, "contact_id": c} for c in contacts])
    connection.execute(insert(RdapChange), rows)
    if everything:
        connection.execute(delete(RdapDocument))
    else:
        connection.execute(delete(RdapDocument).where(or_(
            RdapDocument.domain_id.in_(domains), RdapDocument.registrant_id.in_(contacts),
            RdapDocument.tech_id.in_(contacts))))
    return generation
