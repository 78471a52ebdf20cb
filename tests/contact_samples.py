"""Helpers shared by the contact, tenancy and field-encryption tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from regshield.services import Services
from regshield.store.models import Account, Base, Contact, DataKey, Event, User

CONTACTS = "/api/v1/contacts"
# A well-formed handle that no contact has (the alphabet has no 0, 1, I or O).
UNKNOWN_HANDLE = "RS-ZZZZZZZZZZ"


def contact_body(**changes: Any) -> dict[str, Any]:
    """A valid contact as a customer would send it; `...` as a value drops the field."""
    body: dict[str, Any] = {
        "name": "Jane Example",
        "organization": "Example GmbH",
        "email": "jane@example.net",
        "phone": "+49 30 12345678",
        "street": ["Invalidenstrasse 116"],
        "city": "Berlin",
        "postal_code": "10115",
        "country": "de",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


async def row_counts(services: Services) -> dict[str, int]:
    """How many rows the tables a contact or user write would touch hold."""
    counts: dict[str, int] = {}
    async with services.store.read() as session:
        model: type[Base]
        for model in (Contact, DataKey, Event, User, Account):
            query = select(func.count()).select_from(model)
            counts[model.__tablename__] = int((await session.execute(query)).scalar_one())
    return counts


async def events_tagged(services: Services, tag: str) -> list[Event]:
    async with services.store.read() as session:
        query = select(Event).where(Event.tag == tag).order_by(Event.seq)
        return list((await session.execute(query)).scalars().all())


def comparable(problem: dict[str, Any]) -> dict[str, Any]:
    """A problem document without the members that name this one request."""
    return {k: v for k, v in problem.items() if k not in ("instance", "request_id")}


def failing_fields(problem: dict[str, Any]) -> dict[str, str]:
    """field -> code of a validation-failed problem; each error names field, code and message."""
    assert problem["type"] == "urn:regshield:problem:validation-failed"
    for error in problem["errors"]:
        assert set(error) == {"field", "code", "message"}
        assert error["message"]
    return {e["field"]: e["code"] for e in problem["errors"]}
