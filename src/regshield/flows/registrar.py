"""The registrar's own record: name, IANA ID, abuse contact."""

from __future__ import annotations

from dataclasses import dataclass

from regshield.errors import FieldError, NotFound, PermissionDenied, ValidationFailed
from regshield.flows.context import Actor
from regshield.flows.runner import Tx
from regshield.rules.contacts import normalize_email, validate_phone
from regshield.services import Services
from regshield.store.models import Registrar
from regshield.store.queries.accounts import registrar


@dataclass(frozen=True)
class RegistrarUpdate:
    """Change the registrar's published identity. Raises PermissionDenied, ValidationFailed."""

    name: str | None = None
    iana_id: int | None = None
    abuse_email: str | None = None
    abuse_phone: str | None = None

    async def run(self, tx: Tx) -> Registrar:
        tx.actor.require("registrar", "write")
        errors: list[FieldError] = []
        if self.name is not None and not 1 <= len(self.name.strip()) <= 255:
            errors.append(FieldError("name", "invalid_length", "must be 1 to 255 characters"))
        if self.iana_id is not None and not 1 <= self.iana_id <= 999_999:
            errors.append(FieldError("iana_id", "out_of_range", "must be an IANA registrar ID"))
        email = (normalize_email(self.abuse_email, errors, "abuse_email")
                 if self.abuse_email is not None else None)
        phone = (validate_phone(self.abuse_phone, "abuse_phone", None, errors)
                 if self.abuse_phone is not None else None)
        if errors:
            raise ValidationFailed(errors)
        record = await registrar(tx.session)
        if record is None:
            raise NotFound("the registrar record is missing; run `regshield init`")
        changed = []
        for field, value in (("name", self.name and self.name.strip()), ("iana_id", self.iana_id),
                             ("abuse_email", email), ("abuse_phone", phone)):
            if value is not None and getattr(record, field) != value:
                setattr(record, field, value)
                changed.append(field)
        if changed:
            record.updated_at = tx.now
            tx.record("registrar:registrar:updated", account=None, fields=changed)
        return record


async def registrar_read(services: Services, actor: Actor) -> Registrar:
    """The registrar record (public facts; any signed-in user may read them)."""
    if actor.kind == "anonymous":
        raise PermissionDenied("sign in first")
    async with services.store.read() as session:
        record = await registrar(session)
    if record is None:
        raise NotFound("the registrar record is missing; run `regshield init`")
    return record
