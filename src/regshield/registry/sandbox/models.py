"""The sandbox registry's tables. They have their own MetaData, apart from the registrar's
schema: the two never share a database, and the sandbox is a stand-in for someone else's
system.

Statuses, nameservers, contacts and DS records are JSON lists, so that a test (or an operator
playing the registry) can still set a server status with plain SQL. The one query inside them
finds the domains that use a host or a contact (SQLite's json_each, in hosts.py and
contacts.py): a domain names its nameservers and contacts as EPP does, by name and identifier.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, MetaData, String, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from regshield.store.models import NAMING, UtcTimestamp


class SandboxBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class SandboxRegistrar(SandboxBase):
    """A registrar accredited with the sandbox: its EPP client identifier (clID), its password
    as an argon2id hash, and optionally the client certificate it must present.

    `lock_password_hash` is the registry-lock credential, handed over out of band: a login with
    it may only set or lift the server statuses of a registry lock (see sessions.py)."""

    __tablename__ = "registrars"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    lock_password_hash: Mapped[str | None] = mapped_column(String(255), default=None)
    # SHA-256 of the certificate's DER, lower-case hex; the PEM itself is kept so that the TLS
    # layer can accept a self-signed certificate as its own trust anchor.
    certificate_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    certificate_pem: Mapped[str | None] = mapped_column(String(16_384), default=None)
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp())


class SandboxDomain(SandboxBase):
    """A registered domain. Deletion is soft (`deleted_at`, set when the name is purged); only
    live names are unique, so a name in redemption is still taken.

    `auth_info_hash` is the salted SHA-256 of RFC 9154 section 4.3 (see
    security/transfer_codes.py): the plaintext is never stored, and never returned.

    `ds_records` are the RFC 5910 DS data, as `DsRecord.as_dict()` gives them. `rgp_status` is
    the RFC 3915 state of a deleted domain (redemptionPeriod, pendingRestore, pendingDelete),
    which ends at `rgp_ends_at`."""

    __tablename__ = "domains"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(253))  # lower-case A-label form
    roid: Mapped[str] = mapped_column(String(89), unique=True)
    sponsor_id: Mapped[str] = mapped_column(ForeignKey("registrars.id"))
    creator_id: Mapped[str] = mapped_column(String(16))
    updater_id: Mapped[str | None] = mapped_column(String(16), default=None)
    statuses: Mapped[list[str]] = mapped_column(JSON, default=list)
    registrant: Mapped[str | None] = mapped_column(String(16), default=None)
    contacts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    nameservers: Mapped[list[str]] = mapped_column(JSON, default=list)
    auth_info_hash: Mapped[str | None] = mapped_column(String(128), default=None)
    ds_records: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    rgp_status: Mapped[str | None] = mapped_column(String(32), default=None)
    rgp_ends_at: Mapped[datetime | None] = mapped_column(UtcTimestamp(), default=None)
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp())
    updated_at: Mapped[datetime | None] = mapped_column(UtcTimestamp(), default=None)
    expires_at: Mapped[datetime] = mapped_column(UtcTimestamp())
    transferred_at: Mapped[datetime | None] = mapped_column(UtcTimestamp(), default=None)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcTimestamp(), default=None)

    __table_args__ = (
        Index("ix_domains_live_name", "name", unique=True,
              sqlite_where=text("deleted_at IS NULL"),
              postgresql_where=text("deleted_at IS NULL")),
        Index("ix_domains_rgp_due", "rgp_ends_at",
              sqlite_where=text("rgp_status IS NOT NULL"),
              postgresql_where=text("rgp_status IS NOT NULL")),
    )


class SandboxTransfer(SandboxBase):
    """One inter-registrar transfer of a domain, kept after it ends: a transfer query answers
    with the most recent one (RFC 5731 section 3.1.3), whatever its outcome.

    `expires_at` is the expiry the domain gets if the transfer is approved (reported as
    exDate); `period_years` is what the gaining registrar asked for."""

    __tablename__ = "transfers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id"), index=True)
    status: Mapped[str] = mapped_column(String(32))  # an RFC 5731 trStatus value
    requesting_id: Mapped[str] = mapped_column(ForeignKey("registrars.id"))  # reID, gaining
    requested_at: Mapped[datetime] = mapped_column(UtcTimestamp())
    acting_id: Mapped[str] = mapped_column(ForeignKey("registrars.id"))  # acID, losing
    act_by: Mapped[datetime] = mapped_column(UtcTimestamp())  # auto-approval when pending
    period_years: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(UtcTimestamp())
    resolved_at: Mapped[datetime | None] = mapped_column(UtcTimestamp(), default=None)


class SandboxMessage(SandboxBase):
    """A service message waiting in a registrar's poll queue. An acknowledged message is kept
    (`acknowledged_at`) and never shown again.

    `transfer` is the trnData as it stood when the message was queued (JSON, datetimes in ISO
    8601): a later change of the transfer must not rewrite what the message said."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    registrar_id: Mapped[str] = mapped_column(ForeignKey("registrars.id"))
    queued_at: Mapped[datetime] = mapped_column(UtcTimestamp())
    summary: Mapped[str] = mapped_column(String(255))  # the msgQ <msg>
    # None for a message that is only its summary (a deleted domain restored or purged).
    transfer: Mapped[dict[str, str] | None] = mapped_column(JSON, default=None)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcTimestamp(), default=None)

    __table_args__ = (
        Index("ix_messages_waiting", "registrar_id", "id",
              sqlite_where=text("acknowledged_at IS NULL"),
              postgresql_where=text("acknowledged_at IS NULL")),
    )


class SandboxHost(SandboxBase):
    """A host object (RFC 5732). A host inside the served TLDs is subordinate to a registered
    domain, carries its glue `addresses` and is sponsored by that domain's sponsor; an
    external host has none. Deletion is soft (`deleted_at`); only live names are unique.

    `statuses` are the ones set by the registrar or the registry; "linked" is not stored but
    found when the host is shown, from the domains that name it."""

    __tablename__ = "hosts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(253))  # lower-case A-label form
    roid: Mapped[str] = mapped_column(String(89), unique=True)
    sponsor_id: Mapped[str] = mapped_column(ForeignKey("registrars.id"))
    creator_id: Mapped[str] = mapped_column(String(16))
    updater_id: Mapped[str | None] = mapped_column(String(16), default=None)
    statuses: Mapped[list[str]] = mapped_column(JSON, default=list)
    addresses: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp())
    updated_at: Mapped[datetime | None] = mapped_column(UtcTimestamp(), default=None)
    transferred_at: Mapped[datetime | None] = mapped_column(UtcTimestamp(), default=None)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcTimestamp(), default=None)

    __table_args__ = (
        Index("ix_hosts_live_name", "name", unique=True,
              sqlite_where=text("deleted_at IS NULL"),
              postgresql_where=text("deleted_at IS NULL")),
    )


class SandboxContact(SandboxBase):
    """A contact object (RFC 5733), found by its identifier (`handle`, the contact:id).
    Deletion is soft (`deleted_at`); only live identifiers are unique.

    `auth_info_hash` is salted as the domains' is: the plaintext is never stored. The postal
    info, phones and disclosure preferences are JSON, as the codec's values give them."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    handle: Mapped[str] = mapped_column(String(16))
    roid: Mapped[str] = mapped_column(String(89), unique=True)
    sponsor_id: Mapped[str] = mapped_column(ForeignKey("registrars.id"))
    creator_id: Mapped[str] = mapped_column(String(16))
    updater_id: Mapped[str | None] = mapped_column(String(16), default=None)
    statuses: Mapped[list[str]] = mapped_column(JSON, default=list)
    postal_info: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    voice: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    fax: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    email: Mapped[str] = mapped_column(String(320))
    auth_info_hash: Mapped[str | None] = mapped_column(String(128), default=None)
    disclose: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp())
    updated_at: Mapped[datetime | None] = mapped_column(UtcTimestamp(), default=None)
    transferred_at: Mapped[datetime | None] = mapped_column(UtcTimestamp(), default=None)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcTimestamp(), default=None)

    __table_args__ = (
        Index("ix_contacts_live_handle", "handle", unique=True,
              sqlite_where=text("deleted_at IS NULL"),
              postgresql_where=text("deleted_at IS NULL")),
    )
