"""Request and response bodies as the API documents them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from regshield.flows.contacts import ContactView
from regshield.store.models import Account, Event, User

# Contact fields are checked by rules/contacts.py, which reports every failing field at once;
# the schema documents their types without refusing early on the first wrong one.
Text = Annotated[Any, Field(json_schema_extra={"type": "string"})]
OptionalText = Annotated[Any, Field(default=None, json_schema_extra={"type": "string"})]


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
    password: str = Field(max_length=1024)
    role: str
    account: str | None = None


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
