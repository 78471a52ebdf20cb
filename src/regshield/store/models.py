"""ORM models. Personal values are never columns of their own: they live in `*_sealed` blobs,
encrypted per record (see security/fields.py), with keyed-hash columns where equality lookups
are needed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from regshield.clock import as_utc

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcTimestamp(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on the way in and out (SQLite drops the zone on reads)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return as_utc(value) if value is not None else None


Timestamp = UtcTimestamp()
# SQLite only autoincrements INTEGER primary keys; PostgreSQL gets BIGINT.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Registrar(Base):
    """The one registrar this installation serves (a single row, id 1)."""

    __tablename__ = "registrar"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    iana_id: Mapped[int | None] = mapped_column(Integer)
    # Role addresses published in RDAP, not personal data.
    abuse_email: Mapped[str | None] = mapped_column(String(320))
    abuse_phone: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class DataKey(Base):
    """A per-record data key, wrapped (AES-256-GCM) by the master key `master_key_id`."""

    __tablename__ = "data_keys"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    master_key_id: Mapped[str] = mapped_column(String(64), index=True)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class Account(Base):
    """A customer account (tenant) of the registrar."""

    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    closed_at: Mapped[datetime | None] = mapped_column(Timestamp)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    email_index: Mapped[str] = mapped_column(String(64), unique=True)
    email_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    data_key_id: Mapped[int] = mapped_column(ForeignKey("data_keys.id"))
    kind: Mapped[str] = mapped_column(String(16))  # staff | customer
    role: Mapped[str] = mapped_column(String(32))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    totp_secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_pending_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_last_counter: Mapped[int | None] = mapped_column(BigInteger)
    totp_enabled_at: Mapped[datetime | None] = mapped_column(Timestamp)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    disabled_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_login_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # The separate registry-lock credential: its own password (argon2id) and the address its
    # verification codes go to (sealed like the login address).
    lock_password_hash: Mapped[str | None] = mapped_column(String(255))
    lock_email_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)


class RecoveryCode(Base):
    __tablename__ = "recovery_codes"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    used_at: Mapped[datetime | None] = mapped_column(Timestamp)


class ApiToken(Base):
    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))  # api | login
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    expires_at: Mapped[datetime] = mapped_column(Timestamp)
    revoked_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_used_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # When the holder last proved a second factor for this credential (step-up checks).
    second_factor_at: Mapped[datetime | None] = mapped_column(Timestamp)


class ConsoleSession(Base):
    """Browser sessions of the console: separate credentials from API tokens."""

    __tablename__ = "console_sessions"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    session_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    last_seen_at: Mapped[datetime] = mapped_column(Timestamp)
    expires_at: Mapped[datetime] = mapped_column(Timestamp)
    ended_at: Mapped[datetime | None] = mapped_column(Timestamp)
    second_factor_at: Mapped[datetime | None] = mapped_column(Timestamp)


class ThrottleCounter(Base):
    """Failure counters shared by every API instance (keys are keyed hashes, never raw values)."""

    __tablename__ = "throttle_counters"
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(Timestamp)
    failures: Mapped[int] = mapped_column(Integer)
    blocked_until: Mapped[datetime | None] = mapped_column(Timestamp)


class LoginSource(Base):
    """A source address a user has signed in from, as a keyed hash (never the address): a
    sign-in from an address not seen before sends the user a notice."""

    __tablename__ = "login_sources"
    __table_args__ = (
        Index("uq_login_sources_user_address", "user_id", "address_hash", unique=True),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    address_hash: Mapped[str] = mapped_column(String(64))
    first_seen_at: Mapped[datetime] = mapped_column(Timestamp)
    last_seen_at: Mapped[datetime] = mapped_column(Timestamp)


class UserInvitation(Base):
    """An invitation to become a user of an account: the invited address is sealed, found by
    its keyed hash; the emailed link's token is kept only as its SHA-256 digest, valid once
    and until `expires_at`. The user is created when the invited person accepts it."""

    __tablename__ = "user_invitations"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    role: Mapped[str] = mapped_column(String(32))
    email_index: Mapped[str] = mapped_column(String(64), index=True)
    email_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    data_key_id: Mapped[int] = mapped_column(ForeignKey("data_keys.id"))
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    invited_by: Mapped[str] = mapped_column(String(96))
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    expires_at: Mapped[datetime] = mapped_column(Timestamp)
    accepted_at: Mapped[datetime | None] = mapped_column(Timestamp)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class Contact(Base):
    __tablename__ = "contacts"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    handle: Mapped[str] = mapped_column(String(16), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    data_key_id: Mapped[int] = mapped_column(ForeignKey("data_keys.id"))
    data_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)
    deleted_at: Mapped[datetime | None] = mapped_column(Timestamp)


class Event(Base):
    """One entry of the append-only, hash-chained event log (see eventlog/chain.py)."""

    __tablename__ = "events"
    seq: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=False)
    tag: Mapped[str] = mapped_column(String(96), index=True)
    actor: Mapped[str] = mapped_column(String(96))
    account: Mapped[str | None] = mapped_column(String(32), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    source_address: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(Timestamp, index=True)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class EventChainHead(Base):
    """The chain's head (one row). Locking it serializes appends across processes."""

    __tablename__ = "event_chain"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))


class OutboxItem(Base):
    """A side effect queued in the same transaction as the change that caused it."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "completed_at", "available_at"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    dedupe_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    available_at: Mapped[datetime] = mapped_column(Timestamp)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    completed_at: Mapped[datetime | None] = mapped_column(Timestamp)
    failed: Mapped[bool] = mapped_column(Boolean, default=False)
    # The process whose lease the row is under (store/life.py), until the row is settled.
    claimed_by: Mapped[str | None] = mapped_column(String(32))


class Domain(Base):
    """A domain the registrar sponsors (or is registering, or transferring in).

    The row holds what the registry has confirmed; a change the registry has not answered yet
    is a `DomainOperation` beside it, so a refused command leaves the row as it was. `holds`
    are the status authority's reasons for client statuses (rules/statuses.py);
    `registry_statuses` is the full status set the registry last reported. The transfer code
    is never stored: only its salted hash and expiry (security/transfer_codes.py)."""

    __tablename__ = "domains"
    __table_args__ = (
        # One live row per name; deleted and transferred-away rows stay as history.
        Index("uq_domains_live_name", "name", unique=True,
              sqlite_where=text("ended_at IS NULL"), postgresql_where=text("ended_at IS NULL")),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(253), index=True)  # A-label form
    unicode_name: Mapped[str] = mapped_column(String(253))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    registry_link: Mapped[str] = mapped_column(String(64))
    # pending_create | active | pending_transfer_in | pending_delete | ended
    state: Mapped[str] = mapped_column(String(32))
    roid: Mapped[str | None] = mapped_column(String(89))
    registrant_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    tech_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    nameservers: Mapped[list[str]] = mapped_column(JSON, default=list)
    ds: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    holds: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    registry_statuses: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Indexed: the expiry notices (flows/notices.py) select domains by an expiry range.
    expires_at: Mapped[datetime | None] = mapped_column(Timestamp, index=True)
    transfer_code_hash: Mapped[str | None] = mapped_column(String(128))
    transfer_code_expires_at: Mapped[datetime | None] = mapped_column(Timestamp)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)
    synced_at: Mapped[datetime | None] = mapped_column(Timestamp)
    ended_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # The registry lock as regshield decided it (rules/registry_lock.py); the registry's
    # server* statuses are what it has applied.
    registry_locked: Mapped[bool] = mapped_column(Boolean, default=False)
    registry_lock_revision: Mapped[int] = mapped_column(Integer, default=0)
    # The registrant's consent to publish contact fields that are otherwise redacted (RDP §9,
    # RP 2.7.9): field name -> when consent was given (ISO 8601). rules/redaction.py reads it.
    publish_consent: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)


class DomainOperation(Base):
    """One command for the registry, from request to outcome.

    `state`: pending (not sent, or to be sent again), running (claimed; `lease_until` says
    until when), confirmed, refused (the registry said no; nothing changed), unknown (sent, no
    answer: reconciled by asking the registry), failed (could not be sent, given up).
    `request` holds what is asked (never a secret); `result` what the registry answered."""

    __tablename__ = "domain_operations"
    __table_args__ = (Index("ix_domain_operations_open", "domain_id", "state"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None] = mapped_column(Timestamp)
    # The process that holds the lease (store/life.py): released at once if it has died.
    claimed_by: Mapped[str | None] = mapped_column(String(32))
    cl_trid: Mapped[str | None] = mapped_column(String(64))
    sv_trid: Mapped[str | None] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(96))
    request_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    completed_at: Mapped[datetime | None] = mapped_column(Timestamp)


class RegistryLockRequest(Base):
    """One registry-lock request (rules/registry_lock.py `LockRequest`), as saved. The
    verification code is never stored: only its SHA-256 digest."""

    __tablename__ = "registry_lock_requests"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id"), index=True)
    action: Mapped[str] = mapped_column(String(8))
    requested_by: Mapped[str] = mapped_column(String(48))
    requested_at: Mapped[datetime] = mapped_column(Timestamp)
    expires_at: Mapped[datetime] = mapped_column(Timestamp)
    revision: Mapped[int] = mapped_column(Integer)
    code_digest: Mapped[str | None] = mapped_column(String(64), index=True)
    needs_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    relock_after_seconds: Mapped[int | None] = mapped_column(Integer)
    relock_of: Mapped[str | None] = mapped_column(String(32))
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    verified_at: Mapped[datetime | None] = mapped_column(Timestamp)
    approved_by: Mapped[str | None] = mapped_column(String(48))
    approved_at: Mapped[datetime | None] = mapped_column(Timestamp)
    completed_at: Mapped[datetime | None] = mapped_column(Timestamp)
    cancelled_at: Mapped[datetime | None] = mapped_column(Timestamp)
    cancelled_by: Mapped[str | None] = mapped_column(String(48))
    expired_at: Mapped[datetime | None] = mapped_column(Timestamp)
    superseded_at: Mapped[datetime | None] = mapped_column(Timestamp)
    relock_settled_at: Mapped[datetime | None] = mapped_column(Timestamp)
    relock_id: Mapped[str | None] = mapped_column(String(32))


class RegistryMessage(Base):
    """A registry's poll message that regshield has recorded, by link and message id. The
    acknowledgement goes to the registry only after the record commits, so a message can come
    back (a crash or a lost connection in between); this row keeps it from being applied and
    recorded twice (flows/poll.py)."""

    __tablename__ = "registry_messages"
    link: Mapped[str] = mapped_column(String(64), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    queued_at: Mapped[datetime | None] = mapped_column(Timestamp)
    received_at: Mapped[datetime] = mapped_column(Timestamp)


class Zone(Base):
    """A hosted DNS zone: regshield is its (hidden) primary and, when `dnssec`, its signer.

    `serial` is the SOA serial of the last change, advanced by `serial_scheme`
    (rules/zones.py `next_serial`); the RRsets are `ZoneRRset` rows, the signing keys
    `ZoneKey` rows. The signed form is rebuilt from these by the publisher (dns/publisher.py)."""

    __tablename__ = "zones"
    __table_args__ = (
        Index("uq_zones_live_name", "name", unique=True,
              sqlite_where=text("deleted_at IS NULL"), postgresql_where=text("deleted_at IS NULL")),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(253), index=True)  # absolute, A-label, lower case
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    dnssec: Mapped[bool] = mapped_column(Boolean, default=True)
    denial: Mapped[str] = mapped_column(String(8), default="nsec")  # nsec | nsec3
    policy: Mapped[str] = mapped_column(String(64), default="default")
    serial: Mapped[int] = mapped_column(BigInteger)
    serial_scheme: Mapped[str] = mapped_column(String(16), default="unixtime")
    # The last key plan (rules/kasp.py) as the publisher signs by it: which keys are in the
    # DNSKEY RRset, which sign it and the data, the CDS to publish, when to plan again.
    key_plan: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Counts edits; each RRset row carries the revision that last changed it, so the
    # publisher reads only what changed since it last looked.
    revision: Mapped[int] = mapped_column(BigInteger, default=0)
    keys_due_at: Mapped[datetime | None] = mapped_column(Timestamp, index=True)
    parent_checked_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # active: served | unverified: stored, not served, until the proof-of-control challenge
    # is seen (flows/zones.py `ZoneVerify`) | suspended: the name was registered here by
    # another account; kept, not served (rules/zones.py ZONE_STATES).
    state: Mapped[str] = mapped_column(String(16), default="active")
    verified_at: Mapped[datetime | None] = mapped_column(Timestamp)
    suspended_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # The DS records (presentation text) regshield put at the parent for this zone: only
    # those may be replaced by a key rollover without the owner's stepped-up confirmation.
    ds_owned: Mapped[list[str]] = mapped_column(JSON, default=list)
    # DS records at the parent that regshield did not put there, last seen by the key sweep
    # (they hold the DS submission until the owner confirms, `ZoneDsTakeover`).
    ds_held: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)
    deleted_at: Mapped[datetime | None] = mapped_column(Timestamp)


class ZoneRRset(Base):
    """One RRset of a hosted zone, unsigned, in presentation text with absolute names. A
    deleted RRset stays as a row without records until the name and type are used again, so
    that the publisher learns of the deletion by its revision."""

    __tablename__ = "zone_rrsets"
    __table_args__ = (
        Index("uq_zone_rrsets_owner_type", "zone_id", "owner", "rtype", unique=True),
        Index("ix_zone_rrsets_revision", "zone_id", "revision"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    zone_id: Mapped[int] = mapped_column(ForeignKey("zones.id"))
    owner: Mapped[str] = mapped_column(String(255))  # absolute, lower case
    rtype: Mapped[str] = mapped_column(String(16))
    ttl: Mapped[int] = mapped_column(Integer)
    records: Mapped[list[str]] = mapped_column(JSON)
    revision: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class PublishedZone(Base):
    """What the publisher last served of a zone (dns/publisher.py): the signed zone as a base
    snapshot (`base`, every RRset at `base_serial`, dns/wireform.py) and the `ZoneJournal`
    rows after `base_journal_id` that lead from it to `serial`. Written before the snapshot is
    swapped in, so that a restart serves what was served, at once, and carries on signing
    from it; `revision`, `signing` and `denial` say which edits and which keys it reflects."""

    __tablename__ = "published_zones"
    zone_id: Mapped[int] = mapped_column(ForeignKey("zones.id"), primary_key=True)
    serial: Mapped[int] = mapped_column(BigInteger)
    revision: Mapped[int] = mapped_column(BigInteger)
    dnssec: Mapped[bool] = mapped_column(Boolean)
    denial: Mapped[str] = mapped_column(String(8))
    signing: Mapped[list[str]] = mapped_column(JSON)  # the key plan signed by (key ids)
    # The zone at `serial` counted, checked after the base and the journal are read back: a
    # damaged base that the journal would otherwise patch into a zone is refused.
    rrset_count: Mapped[int] = mapped_column(BigInteger)
    record_count: Mapped[int] = mapped_column(BigInteger)
    base_serial: Mapped[int] = mapped_column(BigInteger)
    base_journal_id: Mapped[int] = mapped_column(BigInteger)  # 0: no journal row in the base
    base: Mapped[bytes] = mapped_column(LargeBinary)
    # A digest of what the publication read besides the RRsets (the zone's row, its keys and
    # secondaries, the SOA settings; None: not known): equal, with no edit since, a queued
    # publication has nothing to do.
    inputs: Mapped[str | None] = mapped_column(String(64))
    published_at: Mapped[datetime] = mapped_column(Timestamp)


class ZoneJournal(Base):
    """One difference between two published serials of a zone (IXFR, RFC 1995): the RRsets
    removed and added, each in dns/wireform.py's form. The newest ones are kept (the
    publisher's `JOURNAL_LIMIT`), across restarts."""

    __tablename__ = "zone_journal"
    __table_args__ = (Index("ix_zone_journal_zone", "zone_id", "id"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    zone_id: Mapped[int] = mapped_column(ForeignKey("zones.id"))
    from_serial: Mapped[int] = mapped_column(BigInteger)
    to_serial: Mapped[int] = mapped_column(BigInteger)
    removed: Mapped[bytes] = mapped_column(LargeBinary)
    added: Mapped[bytes] = mapped_column(LargeBinary)
    published_at: Mapped[datetime] = mapped_column(Timestamp)


class ZoneKey(Base):
    """A DNSSEC key of a zone. The private key is sealed like personal data (per-record data
    key, security/fields.py) or, with `hsm_label`, never leaves the PKCS#11 token. `timers`
    holds the key's lifecycle times (rules/kasp.py), each change an event."""

    __tablename__ = "zone_keys"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    zone_id: Mapped[int] = mapped_column(ForeignKey("zones.id"), index=True)
    role: Mapped[str] = mapped_column(String(8))  # ksk | zsk | csk
    algorithm: Mapped[int] = mapped_column(Integer)
    key_tag: Mapped[int] = mapped_column(Integer)
    dnskey: Mapped[str] = mapped_column(Text)  # DNSKEY rdata, presentation text
    data_key_id: Mapped[int | None] = mapped_column(ForeignKey("data_keys.id"))
    private_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    hsm_label: Mapped[str | None] = mapped_column(String(64))
    timers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    removed_at: Mapped[datetime | None] = mapped_column(Timestamp)


class TsigKey(Base):
    """A TSIG key (hmac-sha256) that secondaries use to transfer zones. The secret is sealed
    and shown once, when it is made."""

    __tablename__ = "tsig_keys"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)  # absolute key name
    algorithm: Mapped[str] = mapped_column(String(32))
    data_key_id: Mapped[int] = mapped_column(ForeignKey("data_keys.id"))
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class Secondary(Base):
    """A secondary server that transfers a zone from regshield and is sent NOTIFY on every
    new serial; its status (serial served, last transfer, last NOTIFY) is what it showed."""

    __tablename__ = "secondaries"
    __table_args__ = (
        Index("uq_secondaries_zone_address", "zone_id", "address", "port", unique=True,
              sqlite_where=text("deleted_at IS NULL"), postgresql_where=text("deleted_at IS NULL")),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    zone_id: Mapped[int] = mapped_column(ForeignKey("zones.id"), index=True)
    address: Mapped[str] = mapped_column(String(64))
    port: Mapped[int] = mapped_column(Integer)
    tsig_key_id: Mapped[int] = mapped_column(ForeignKey("tsig_keys.id"))
    served_serial: Mapped[int | None] = mapped_column(BigInteger)
    served_checked_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_transfer_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_transfer_kind: Mapped[str | None] = mapped_column(String(8))
    last_transfer_serial: Mapped[int | None] = mapped_column(BigInteger)
    last_notify_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_notify_result: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    deleted_at: Mapped[datetime | None] = mapped_column(Timestamp)


class DisclosureRequest(Base):
    """A request for non-public registration data (rules/disclosure.py). The requester's
    name, email, organization and free text live in `requester_sealed`, the decision's
    rationale in `rationale_sealed`, both under the row's data key. A request filed by a
    signed-in user names that user: only such a request can be approved, and its approval
    is what RDAP and WHOIS find when the same user asks."""

    __tablename__ = "disclosure_requests"
    __table_args__ = (Index("ix_disclosure_requests_open", "state", "ack_due_at"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id"), index=True)
    requester_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    data_key_id: Mapped[int] = mapped_column(ForeignKey("data_keys.id"))
    requester_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    purpose: Mapped[str] = mapped_column(String(32))
    roles: Mapped[list[str]] = mapped_column(JSON)
    fields: Mapped[list[str]] = mapped_column(JSON)
    # received | acknowledged | approved | denied | withdrawn
    state: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(Timestamp)
    ack_due_at: Mapped[datetime] = mapped_column(Timestamp)
    decision_due_at: Mapped[datetime] = mapped_column(Timestamp)
    acknowledged_at: Mapped[datetime | None] = mapped_column(Timestamp)
    acknowledged_by: Mapped[str | None] = mapped_column(String(96))
    decided_at: Mapped[datetime | None] = mapped_column(Timestamp)
    decided_by: Mapped[str | None] = mapped_column(String(96))
    rationale_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    granted_roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The fields the approval opens, of the roles granted: never more than the request asked.
    granted_fields: Mapped[list[str]] = mapped_column(JSON, default=list)
    expires_at: Mapped[datetime | None] = mapped_column(Timestamp)
    withdrawn_at: Mapped[datetime | None] = mapped_column(Timestamp)
    withdrawn_by: Mapped[str | None] = mapped_column(String(96))


class ContactVerification(Base):
    """One verification of a registrant contact under the WHOIS Accuracy Program
    (rules/accuracy.py). `fingerprint` is a keyed hash of the contact's normalized data at the
    start, never the data: a contact whose identical data was verified before is exempt.
    Links live in `verification_tokens`, as SHA-256 digests only."""

    __tablename__ = "contact_verifications"
    __table_args__ = (Index("ix_contact_verifications_open", "state", "started_at"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    # registration | transfer_in | registrant_change | complaint | bounce
    cause: Mapped[str] = mapped_column(String(32))
    domain: Mapped[str | None] = mapped_column(String(253))  # the domain that caused it
    # pending | verified | exempt | superseded
    state: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(Timestamp)
    reminders_sent: Mapped[int] = mapped_column(Integer, default=0)
    verified_at: Mapped[datetime | None] = mapped_column(Timestamp)
    suspended_at: Mapped[datetime | None] = mapped_column(Timestamp)
    ended_at: Mapped[datetime | None] = mapped_column(Timestamp)


class VerificationToken(Base):
    """One emailed verification link: the SHA-256 digest of its token, one per mail of a
    verification (`mail`: initial, reminder-1, ...). A mail sent again gets a new token in
    the same row, so an unsent token never stays valid."""

    __tablename__ = "verification_tokens"
    __table_args__ = (
        Index("uq_verification_tokens_mail", "verification_id", "mail", unique=True),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    verification_id: Mapped[int] = mapped_column(ForeignKey("contact_verifications.id"))
    mail: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    expires_at: Mapped[datetime] = mapped_column(Timestamp)
    used_at: Mapped[datetime | None] = mapped_column(Timestamp)


class NotificationLedger(Base):
    """One registrant notice required by ICANN policy (WDRP reminder, ERRP expiry notice), as
    evidence that it was sent: which domain, which kind and cycle (rules/notices.py), to whom
    (recipient roles and references, never addresses), when it was queued and through which
    outbox row. The unique index makes a notice once per cycle, however many sweeps run."""

    __tablename__ = "notification_ledger"
    __table_args__ = (
        Index("uq_notification_ledger_cycle", "domain_id", "kind", "cycle", unique=True),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id"))
    # wdrp | errp-30 | errp-7 | errp-post
    kind: Mapped[str] = mapped_column(String(16))
    # The expiry date (ERRP) or anniversary date (WDRP) the notice is about.
    cycle: Mapped[str] = mapped_column(String(32))
    about: Mapped[datetime] = mapped_column(Timestamp)
    # [{"role": "registrant" | "account_holder", "recipient": "contact:..." | ...}]
    recipients: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    queued_at: Mapped[datetime] = mapped_column(Timestamp)
    # The dedupe key of the `notify:email` outbox row that carries the message.
    outbox_key: Mapped[str | None] = mapped_column(String(128))
    bounced_at: Mapped[datetime | None] = mapped_column(Timestamp)


class RateBucket(Base):
    """One rate-limit bucket shared by every process and instance (security/limits.py): the
    theoretical arrival time of GCRA, in Unix seconds. Keys are keyed hashes of the service and
    the source network, token or user, never the raw value; a row past its time is idle and
    is deleted by the limiter now and then."""

    __tablename__ = "rate_buckets"
    key: Mapped[str] = mapped_column(String(96), primary_key=True)
    tat: Mapped[float] = mapped_column(Float)


class RdapDocument(Base):
    """A sponsored domain's anonymous RDAP answer as served, rendered when the domain, one of
    its contacts or the registrar changes (rdds/documents.py). `site` is a digest of the
    settings the document links to; a row rendered under other settings is not served."""

    __tablename__ = "rdap_documents"
    name: Mapped[str] = mapped_column(String(253), primary_key=True)  # A-label
    domain_id: Mapped[int] = mapped_column(Id, index=True)
    registrant_id: Mapped[int | None] = mapped_column(Id, index=True)
    tech_id: Mapped[int | None] = mapped_column(Id, index=True)
    site: Mapped[str] = mapped_column(String(64))
    etag: Mapped[str] = mapped_column(String(64))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    rendered_at: Mapped[datetime] = mapped_column(Timestamp)


class RdapGeneration(Base):
    """One counter (a single row, id 1) that each transaction changing what an RDAP document
    shows advances; its row lock orders those transactions with the writes of documents."""

    __tablename__ = "rdap_generation"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger)


class RdapChange(Base):
    """What one generation changed: a domain, a contact (every domain naming it), or, with
    neither, everything (the registrar's record)."""

    __tablename__ = "rdap_changes"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    generation: Mapped[int] = mapped_column(BigInteger, index=True)
    domain_id: Mapped[int | None] = mapped_column(Id)
    contact_id: Mapped[int | None] = mapped_column(Id)
