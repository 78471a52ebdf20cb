"""Request and response bodies as the API documents them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from regshield.flows.contacts import ContactView
from regshield.flows.domains import DomainView, OperationView
from regshield.store.models import Account, Event, User

# Contact fields are checked by rules/contacts.py, which reports every failing field at once;
# the schema documents their types without refusing early on the first wrong one.
Text = Annotated[Any, Field(json_schema_extra={"type": "string"})]
OptionalText = Annotated[Any, Field(default=None, json_schema_extra={"type": "string"})]
# The largest integer both stores hold (a signed 64-bit column): every integer query parameter
# is bounded by it, so none reaches SQL as a value the driver cannot send.
MAX_SEQUENCE = 2**63 - 1


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
    expires_days: int | None = None
    scopes: list[str] = Field(default_factory=lambda: ["*"], max_length=50)


class TokenInfoOut(BaseModel):
    token_id: str
    name: str
    kind: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class ContactIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: Text = None
    organization: OptionalText
    email: Text = None
    phone: Text = None
    fax: OptionalText
    street: Annotated[Any, Field(default=None, json_schema_extra={
        "type": "array", "items": {"type": "string"}, "maxItems": 3})]
    city: Text = None
    state: OptionalText
    postal_code: Text = None
    country: Text = Field(default=None, description="ISO 3166-1 alpha-2")
    account: str | None = Field(default=None,
                                description="Staff only: the account the contact belongs to")


class ContactPatch(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: OptionalText
    organization: OptionalText
    email: OptionalText
    phone: OptionalText
    fax: OptionalText
    street: Annotated[Any, Field(default=None, json_schema_extra={
        "type": "array", "items": {"type": "string"}})]
    city: OptionalText
    state: OptionalText
    postal_code: OptionalText
    country: OptionalText
    # Not a contact field: for a change of registrant (name, organization or email of a
    # live domain's registrant), the prior registrant opts out of the 60-day transfer lock.
    opt_out_of_transfer_lock: bool = False


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
    role: str
    account: str | None = None


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
    name: str | None = None
    iana_id: int | None = None
    abuse_email: str | None = None
    abuse_phone: str | None = None


# --- domains -----------------------------------------------------------------------------------
# Names, hosts and DS records are checked by rules/names.py and rules/ds.py, which report every
# failing field at once (`nameservers.3`, `ds.0.digest`).


class DomainIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text
    registrant: Text
    tech: OptionalText
    years: Any = Field(default=1, json_schema_extra={"type": "integer"})
    nameservers: Any = Field(default_factory=list,
                             json_schema_extra={"type": "array", "items": {"type": "string"}})
    account: str | None = Field(default=None, max_length=100)


class NameserversIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    nameservers: Any = Field(json_schema_extra={"type": "array", "items": {"type": "string"}})


class DsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ds: Any = Field(json_schema_extra={"type": "array", "items": {"type": "object"}},
                    description="Objects {key_tag, algorithm, digest_type, digest} or "
                                "presentation text; an empty list removes every DS record")
    force: bool = Field(default=False,
                        description="Send the DS records even when they match no key of the "
                                    "DNSKEY RRset the zone serves now, or when it cannot be "
                                    "read; what the algorithm policy refuses stays refused")


class RenewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    years: Any = Field(default=1, json_schema_extra={"type": "integer"})


class RegistrarLockIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    update_lock: bool | None = Field(
        default=None, description="Also clientUpdateProhibited: blocks the holder's own "
                                  "changes until the lock is removed")


class TransferIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text
    auth_code: str = Field(max_length=255)
    account: str | None = Field(default=None, max_length=100)
    registrant: str | None = Field(default=None, max_length=64, description=(
        "The contact this registrar holds as the registrant once the domain arrives"))


class TransferRejectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(max_length=64, description="fraud, dispute, court_order, "
                        "identity_not_confirmed, unpaid_previous_term, express_objection, "
                        "registrar_lock or within_restriction_period")


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
    action: str = Field(description="lock or unlock")
    lock_password: str = Field(max_length=1024)
    relock_after_hours: int | None = Field(default=None, description="unlock only: lock "
                                           "again automatically after this many hours")


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
    registrant: Text
    opt_out_of_transfer_lock: bool = Field(
        default=False, description="The prior registrant opts out of the 60-day transfer lock "
                                   "that follows a change of registrant")


class ContactsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tech: OptionalText = Field(default=None, description="A contact handle, or null to remove")


# --- hosted zones --------------------------------------------------------------------------


class ZoneIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text
    dnssec: Any = Field(default=True, json_schema_extra={"type": "boolean"})
    policy: OptionalText
    denial: Any = Field(default="nsec", json_schema_extra={"type": "string",
                                                          "enum": ["nsec", "nsec3"]})
    serial_scheme: Any = Field(default=None, json_schema_extra={
        "type": "string", "enum": ["unixtime", "increment", "date"]})
    account: str | None = Field(default=None, max_length=100)


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
    ttl: Any = Field(json_schema_extra={"type": "integer"})
    records: Any = Field(json_schema_extra={"type": "array", "items": {"type": "string"}},
                         description="Presentation format; names relative to the zone "
                                     "unless they end with a dot")


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
    force: bool = Field(default=False, description=(
        "Replace more than 30 % of the zone's RRsets (needs a step-up)"))


class ZoneImportOut(BaseModel):
    zone: str
    serial: int
    rrsets: int
    records: int
    dropped_signer_records: int


class SecondaryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    address: Text
    port: Any = Field(default=53, json_schema_extra={"type": "integer"})
    tsig_key: OptionalText


class SecondaryAddedOut(BaseModel):
    secondary: SecondaryOut
    tsig_key: str
    tsig_algorithm: str = "hmac-sha256"
    tsig_secret: str | None = Field(description="Shown once, when the key is made")


class RolloverIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Text = Field(description="ksk, zsk or csk")


class KeysAdvancedOut(BaseModel):
    zone: str
    transitions: list[str] = Field(description="Key steps recorded now, as KEY:STEP")
    generated: list[str]
    ds_submitted: list[str]
    check_parent: bool
    next_event_at: datetime | None
    ds_operation: str | None = Field(description="The registry operation carrying the new DS")
