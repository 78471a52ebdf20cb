"""Request and response bodies as the API documents them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any, cast

from pydantic import BaseModel, ConfigDict, Field, JsonValue, with_config
from typing_extensions import TypedDict

from regshield.flows.contacts import ContactView
from regshield.flows.domains import DENIAL_REASONS, MAX_DS, MAX_YEARS, DomainView, OperationView
from regshield.flows.registry_lock import MAX_RELOCK_HOURS
from regshield.flows.zone_keys import POLICIES
from regshield.flows.zones import DENIAL_KINDS
from regshield.rules.contacts import MAX_EMAIL, MAX_POSTAL_CODE, MAX_STREET_LINES, MAX_TEXT
from regshield.rules.ds import MAX_DS_TEXT
from regshield.rules.names import MAX_INPUT, MAX_NAMESERVERS
from regshield.rules.zones import (
    MAX_RECORD_TEXT,
    MAX_RECORDS,
    MAX_TTL,
    MIN_TTL,
    SERIAL_SCHEMES,
)
from regshield.security.permissions import CUSTOMER_ROLES, STAFF_ROLES
from regshield.store.models import Account, Event, User

# Every request field has its exact JSON type: a value of another type (an object for a
# string, `true` for a number, a string for a boolean) is a 422 naming the field, never
# coerced and never handed to a flow (tests/api/test_request_types.py walks every body).
# Strings and lists are bounded by the rule's own limit where the rule has one. What the rules
# check of a value of the right type (enumerations, ranges such as years and TTLs, list lengths
# a rule reports) is documented here and refused by the rule, so that a request learns every
# such reason at once; the integer itself is bounded by what the store can hold. A wrong type
# is refused here, with every other wrong type, before any rule runs.
# The largest integer both stores hold (a signed 64-bit column): every integer query parameter
# and body field is bounded by it, so none reaches SQL as a value the driver cannot send.
MAX_SEQUENCE = 2**63 - 1
MAX_HANDLE = 64  # a contact handle, `RS-` and ten symbols, with room to spare
MAX_ACCOUNT = 100  # an account's public id
MAX_CHOICE = 64  # a string naming one of a few choices (longer than any of them)


def text(limit: int, **extra: Any) -> Any:
    """A required string field of at most `limit` characters."""
    return Field(max_length=limit, **extra)


def optional_text(limit: int, **extra: Any) -> Any:
    """An optional string field (null or absent: none) of at most `limit` characters."""
    return Field(default=None, max_length=limit, **extra)


def choice(choices: Iterable[str], **extra: Any) -> Any:
    """A string that names one of `choices`: documented as an enum, checked by the flow with
    the request's other reasons (a string of another value is no wrong type)."""
    listed = sorted(choices)
    # An optional choice (default None) takes null too: the enum covers the whole field.
    enum = cast(list[JsonValue], listed + ([None] if extra.get("default", ...) is None else []))
    return Field(max_length=MAX_CHOICE, json_schema_extra={"enum": enum}, **extra)


def number(minimum: int, maximum: int | None, **extra: Any) -> Any:
    """A whole number (never a boolean, a float or a string of digits) that the store can
    hold; `minimum` and `maximum` are the range the flow accepts, documented here and checked
    there with the request's other reasons."""
    schema: dict[str, JsonValue] = {"minimum": minimum}
    if maximum is not None:
        schema["maximum"] = maximum
    return Field(strict=True, ge=-MAX_SEQUENCE - 1, le=MAX_SEQUENCE,
                 json_schema_extra=schema, **extra)


Flag = Annotated[bool, Field(strict=True)]
Name = Annotated[str, Field(max_length=MAX_INPUT)]  # a domain or host name (rules/names.py)
ContactText = Annotated[str, Field(max_length=MAX_TEXT)]


def country() -> Any:
    """Two letters, as documented; a longer string is still an unknown country to the rule."""
    return Field(default=None, max_length=8, description="ISO 3166-1 alpha-2",
                 json_schema_extra={"minLength": 2, "maxLength": 2})


StreetLines = Annotated[list[ContactText] | None, Field(
    default=None, max_length=4 * MAX_STREET_LINES,
    json_schema_extra={"maxItems": MAX_STREET_LINES})]


class LoginIn(BaseModel):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)
    otp: str | None = Field(default=None, max_length=64,
                            description="TOTP code or a recovery code, when enrolled")


class TokenOut(BaseModel):
    token: str = Field(description="Shown once; send as `Authorization: Bearer ...`")
    token_id: str
    expires_at: datetime


class TotpEnrollOut(BaseModel):
    secret: str
    uri: str


class OtpIn(BaseModel):
    otp: str = Field(max_length=64)


class ProofIn(BaseModel):
    """Managing second factors needs the password again and, when a one-time code generator
    is enrolled, a current code or a recovery code."""

    model_config = ConfigDict(extra="forbid")
    password: str = Field(max_length=1024)
    otp: str | None = Field(default=None, max_length=64,
                            description="TOTP code or a recovery code, when enrolled")


class PasswordChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024)
    otp: str | None = Field(default=None, max_length=64,
                            description="TOTP code or a recovery code, when enrolled")


class RecoveryCodesOut(BaseModel):
    recovery_codes: list[str] = Field(description="Shown once; each works once")


class TokenCreateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="api", max_length=100)
    expires_days: int | None = number(1, None, default=None, description=(
        "At most the policy's longest token lifetime (366 days)"))
    scopes: list[Annotated[str, Field(max_length=100)]] = Field(
        default_factory=lambda: ["*"], max_length=50)


class TokenInfoOut(BaseModel):
    token_id: str
    name: str
    kind: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class ContactFields(BaseModel):
    """The contact's data as a body carries it, in both a creation and an edit."""

    # Unknown fields are reported by rules/contacts.py with the other reasons.
    model_config = ConfigDict(extra="allow")
    name: ContactText | None = None
    organization: ContactText | None = None
    email: str | None = optional_text(MAX_EMAIL)
    phone: str | None = optional_text(64)
    fax: str | None = optional_text(64)
    street: StreetLines
    city: ContactText | None = None
    state: ContactText | None = None
    postal_code: str | None = optional_text(MAX_POSTAL_CODE)
    country: str | None = country()


class ContactIn(ContactFields):
    account: str | None = optional_text(
        MAX_ACCOUNT, description="Staff only: the account the contact belongs to")


class ContactPatch(ContactFields):
    # Not a contact field: for a change of registrant (name, organization or email of a
    # live domain's registrant), the prior registrant opts out of the 60-day transfer lock.
    opt_out_of_transfer_lock: Flag = False


class ContactOut(BaseModel):
    handle: str
    account: str
    name: str
    organization: str | None
    email: str
    phone: str
    fax: str | None
    street: list[str]
    city: str
    state: str | None
    postal_code: str
    country: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, view: ContactView) -> ContactOut:
        return cls(handle=view.handle, account=view.account, created_at=view.created_at,
                   updated_at=view.updated_at, **view.data.as_dict())


class ContactUpdateOut(ContactOut):
    registry_operations: list[OperationOut] = Field(description=(
        "What the edit started at the registries (the contact sent as contact:update, a "
        "transfer lock), as they stand when the answer is sent: `pending` ones are finished "
        "by the outbox; a `refused` one names the registry's reason in the domain's events"))


class ContactListOut(BaseModel):
    items: list[ContactOut]
    next_after: str | None = Field(description="Pass as `after` for the next page")


class EventOut(BaseModel):
    seq: int
    tag: str
    actor: str
    account: str | None
    channel: str
    source_address: str | None
    request_id: str | None
    occurred_at: datetime
    summary: dict[str, Any]
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, event: Event) -> EventOut:
        return cls.model_validate(event, from_attributes=True)


class EventListOut(BaseModel):
    items: list[EventOut]
    next_after: int | None


class AccountIn(BaseModel):
    name: str = Field(max_length=200)


class AccountOut(BaseModel):
    account_id: str
    name: str
    created_at: datetime

    @classmethod
    def of(cls, account: Account) -> AccountOut:
        return cls(account_id=account.public_id, name=account.name, created_at=account.created_at)


class UserIn(BaseModel):
    email: str = Field(max_length=320)
    password: str | None = Field(default=None, max_length=1024, description=(
        "For users created by staff; a customer's invitation carries none (the invited "
        "person chooses it)"))
    role: str = choice(STAFF_ROLES + CUSTOMER_ROLES)
    account: str | None = optional_text(MAX_ACCOUNT)


class InvitationOut(BaseModel):
    invitation_id: str
    email: str
    role: str
    account: str
    expires_at: datetime


class InvitationAcceptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(max_length=128)
    password: str = Field(max_length=1024)


class UserOut(BaseModel):
    user_id: str
    email: str | None = None
    kind: str
    role: str
    account: str | None
    totp_enabled: bool
    created_at: datetime

    @classmethod
    def of(cls, user: User, account: str | None, email: str | None = None) -> UserOut:
        return cls(user_id=user.public_id, email=email, kind=user.kind, role=user.role,
                   account=account, totp_enabled=user.totp_enabled_at is not None,
                   created_at=user.created_at)


class RegistrarOut(BaseModel):
    name: str
    iana_id: int | None
    abuse_email: str | None
    abuse_phone: str | None


class RegistrarPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = optional_text(200)
    iana_id: int | None = number(1, 999_999, default=None)
    abuse_email: str | None = optional_text(MAX_EMAIL)
    abuse_phone: str | None = optional_text(64)


# --- domains -----------------------------------------------------------------------------------
# Names, hosts and DS records are checked by rules/names.py and rules/ds.py, which report every
# failing field at once (`nameservers.3`, `ds.0.digest`).


Nameservers = Annotated[list[Name], Field(max_length=4 * MAX_NAMESERVERS,
                                           json_schema_extra={"maxItems": MAX_NAMESERVERS})]


class DomainIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    registrant: str = text(MAX_HANDLE)
    tech: str | None = optional_text(MAX_HANDLE)
    years: int = number(1, MAX_YEARS, default=1)
    nameservers: Nameservers = Field(default_factory=list)
    account: str | None = optional_text(MAX_ACCOUNT)


class NameserversIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    nameservers: Nameservers


# A number or its text (digits, or an algorithm's mnemonic): rules/ds.py reads both.
DsNumber = Annotated[int, Field(strict=True, ge=-MAX_SEQUENCE - 1, le=MAX_SEQUENCE)] | \
    Annotated[str, Field(max_length=64)]


@with_config(ConfigDict(extra="allow"))  # an unknown key is reported by rules/ds.py
class DsRecordIn(TypedDict, total=False):
    key_tag: DsNumber
    algorithm: DsNumber
    digest_type: DsNumber
    digest: Annotated[str, Field(max_length=MAX_DS_TEXT)]


class DsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ds: list[DsRecordIn | Annotated[str, Field(max_length=MAX_DS_TEXT)]] = Field(
        max_length=4 * MAX_DS, json_schema_extra={"maxItems": MAX_DS},
        description="Objects {key_tag, algorithm, digest_type, digest} or "
                    "presentation text; an empty list removes every DS record")
    force: Flag = Field(default=False,
                        description="Send the DS records even when they match no key of the "
                                    "DNSKEY RRset the zone serves now, or when it cannot be "
                                    "read; what the algorithm policy refuses stays refused")


class RenewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    years: int = number(1, MAX_YEARS, default=1)


class RegistrarLockIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    update_lock: Flag | None = Field(
        default=None, description="Also clientUpdateProhibited: blocks the holder's own "
                                  "changes until the lock is removed")


class TransferIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    auth_code: str = Field(max_length=255)
    account: str | None = optional_text(MAX_ACCOUNT)
    registrant: str | None = Field(default=None, max_length=MAX_HANDLE, description=(
        "The contact this registrar holds as the registrant once the domain arrives"))


class TransferRejectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = choice(DENIAL_REASONS, description=(
        "One of the Transfer Policy's reasons to deny a transfer"))


class OperationOut(BaseModel):
    id: str
    kind: str
    state: str = Field(description="pending, running, unknown (being reconciled), "
                                   "confirmed, refused or failed")
    created_at: datetime
    completed_at: datetime | None
    cl_trid: str | None
    sv_trid: str | None

    @classmethod
    def of(cls, view: OperationView) -> OperationOut:
        return cls(id=view.id, kind=view.kind, state=view.state, created_at=view.created_at,
                   completed_at=view.completed_at, cl_trid=view.cl_trid, sv_trid=view.sv_trid)


class DomainOut(BaseModel):
    name: str
    unicode_name: str
    account: str
    state: str
    registry: str
    statuses: list[str]
    expires_at: datetime | None
    nameservers: list[str]
    ds: list[dict[str, Any]]
    registrant: str | None
    tech: str | None
    registrar_lock: bool
    update_lock: bool
    holds: list[str]
    transfer_code_expires_at: datetime | None
    created_at: datetime
    pending: list[OperationOut]
    operation: OperationOut | None = Field(
        default=None, description="The operation this request started, as it stands")

    @classmethod
    def of(cls, view: DomainView, operation: OperationView | None = None) -> DomainOut:
        return cls(
            name=view.name, unicode_name=view.unicode_name, account=view.account,
            state=view.state, registry=view.registry, statuses=view.statuses,
            expires_at=view.expires_at, nameservers=view.nameservers, ds=view.ds,
            registrant=view.registrant, tech=view.tech, registrar_lock=view.registrar_lock,
            update_lock=view.update_lock, holds=view.holds,
            transfer_code_expires_at=view.transfer_code_expires_at,
            created_at=view.created_at, pending=[OperationOut.of(o) for o in view.pending],
            operation=OperationOut.of(operation) if operation else None)


class DomainListOut(BaseModel):
    items: list[DomainOut]
    next_after: str | None


class TransferCodeOut(BaseModel):
    code: str = Field(description="Shown once; only its salted hash is kept")
    expires_at: datetime
    operation: OperationOut


class AvailabilityOut(BaseModel):
    name: str
    available: bool
    reason: str | None


class LockCredentialIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lock_email: str = Field(max_length=320, description="Where verification codes go; keep it "
                            "separate from the login address")
    lock_password: str = Field(max_length=1024, description="Not the login password")


class RegistryLockIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: str = choice(("lock", "unlock"))
    lock_password: str = Field(max_length=1024)
    relock_after_hours: int | None = number(1, MAX_RELOCK_HOURS, default=None, description=(
        "unlock only: lock again automatically after this many hours"))


class RegistryLockRequestOut(BaseModel):
    request: str
    domain: str
    action: str
    expires_at: datetime
    needs_approval: bool
    sent_to: str = Field(description="The lock address the code was sent to, masked")


class RegistryLockVerifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(max_length=64)
    request: str | None = Field(default=None, max_length=32)


class RegistrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    registrant: str = text(MAX_HANDLE)
    opt_out_of_transfer_lock: Flag = Field(
        default=False, description="The prior registrant opts out of the 60-day transfer lock "
                                   "that follows a change of registrant")


class ContactsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tech: str | None = optional_text(MAX_HANDLE,
                                     description="A contact handle, or null to remove")


# --- hosted zones --------------------------------------------------------------------------


class ZoneIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    dnssec: Flag = True
    policy: str | None = choice(POLICIES, default=None,
                                description="The key policy; `default` when absent")
    denial: str = choice(DENIAL_KINDS, default="nsec")
    serial_scheme: str | None = choice(SERIAL_SCHEMES, default=None,
                                       description="The server's setting when absent")
    account: str | None = optional_text(MAX_ACCOUNT)


class ZoneKeyOut(BaseModel):
    id: str
    role: str
    algorithm: int
    key_tag: int
    state: str
    dnskey: str
    ds: list[str]
    timers: dict[str, Any]
    created_at: datetime


class SecondaryOut(BaseModel):
    address: str
    port: int
    tsig_key: str
    served_serial: int | None
    served_checked_at: datetime | None
    last_transfer_at: datetime | None
    last_transfer_kind: str | None
    last_transfer_serial: int | None
    last_notify_at: datetime | None
    last_notify_result: str | None
    lag: int | None = Field(description="Serials behind the zone's; null while unknown")


class ZoneChallengeOut(BaseModel):
    owner: str
    type: str
    value: str


class ZoneOut(BaseModel):
    name: str
    account: str
    dnssec: bool
    denial: str
    policy: str
    serial: int
    serial_scheme: str
    rrsets: int
    keys: list[ZoneKeyOut]
    ds: list[str] = Field(description="The DS records the parent zone should publish")
    secondaries: list[SecondaryOut]
    created_at: datetime
    updated_at: datetime
    state: str = Field(description="active (served), unverified (not served until the "
                                   "challenge is seen) or suspended")
    verified_at: datetime | None = None
    challenge: ZoneChallengeOut | None = Field(
        default=None, description="While unverified: the TXT record to publish at the zone's "
                                  "current DNS servers, then POST .../verify")
    ds_held: list[str] = Field(default_factory=list, description=(
        "DS records at the parent that regshield did not put there: kept until the owner "
        "confirms with POST .../ds/takeover (step-up)"))


class RRsetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ttl: int = number(MIN_TTL, MAX_TTL)
    records: list[Annotated[str, Field(max_length=MAX_RECORD_TEXT)]] = Field(
        max_length=4 * MAX_RECORDS, json_schema_extra={"maxItems": MAX_RECORDS},
        description="Presentation format; names relative to the zone unless they end with "
                    "a dot")


class RRsetOut(BaseModel):
    owner: str
    type: str
    ttl: int
    records: list[str]


class RRsetChangeOut(BaseModel):
    zone: str
    serial: int
    rrset: RRsetOut | None
    changed: bool


class ZoneImportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    zone_file: str = Field(max_length=64 * 1024 * 1024)
    force: Flag = Field(default=False, description=(
        "Replace more than 30 % of the zone's RRsets (needs a step-up)"))


class ZoneImportOut(BaseModel):
    zone: str
    serial: int
    rrsets: int
    records: int
    dropped_signer_records: int


class SecondaryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    address: str = text(64, description="An IPv4 or IPv6 address")
    port: int = number(1, 65535, default=53)
    tsig_key: str | None = optional_text(MAX_INPUT, description="The name of a TSIG key "
                                         "this zone's secondaries use already")


class SecondaryAddedOut(BaseModel):
    secondary: SecondaryOut
    tsig_key: str
    tsig_algorithm: str = "hmac-sha256"
    tsig_secret: str | None = Field(description="Shown once, when the key is made")


class RolloverIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str = choice(("ksk", "zsk", "csk"))


class KeysAdvancedOut(BaseModel):
    zone: str
    transitions: list[str] = Field(description="Key steps recorded now, as KEY:STEP")
    generated: list[str]
    ds_submitted: list[str]
    check_parent: bool
    next_event_at: datetime | None
    ds_operation: str | None = Field(description="The registry operation carrying the new DS")
