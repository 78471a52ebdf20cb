"""Personal data at rest: sealed per record, never in the database files, rows or logs in clear;
master key rotation keeps every record readable, in this process and in others."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import stat
import sys
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import structlog
from conftest import PASSWORD, World
from contact_samples import CONTACTS, contact_body, events_tagged
from cryptography.exceptions import InvalidTag
from sqlalchemy import select, text, update
from structlog._config import BoundLoggerLazyProxy

import regshield.security.keyring as keyring_module
from regshield.clock import FakeClock
from regshield.config import Settings
from regshield.errors import ConfigurationError
from regshield.flows.contacts import ContactCreate, contact_list, contact_read
from regshield.flows.context import RequestContext, system_actor
from regshield.flows.keys import rotate_master_key
from regshield.flows.runner import run_flow
from regshield.flows.users import user_email
from regshield.logs import mask_sensitive
from regshield.services import Services
from regshield.store.models import Contact, DataKey, User

SYSTEM = system_actor("test")
CLI = RequestContext("cli")

# Stored in clear on purpose (account names are not personal data): proves the scans can see.
CANARY = "Canary Tenant Wombat-7731"

PEOPLE: list[dict[str, Any]] = [
    {"name": "Philippa Quenneville-\u017burawska", "organization": "Zephyrine Widgetworks Ltd",
     "email": "philippa.quenneville@zephyrine-widgets.example", "phone": "+64 21 345 6789",
     "street": ["Quimbleworth Lane 77", "Flat Ostrakon 3"], "city": "Xylobridge",
     "state": "Waikoropupu Province", "postal_code": "QZ-7781-XK", "country": "nz"},
    {"name": "Bartholomew Yxkullington", "organization": "Gr\u00fcngrau Frobnication AG",
     "email": "b.yxkullington@frobnication-gruengrau.example", "phone": "+353 87 946 1732",
     "street": ["Wolkenkratzerweg 4711"], "city": "Zwirbelhausen-on-Quay",
     "postal_code": "T12 QXZ9", "country": "IE", "fax": "+353 1 234 5678"},
    {"name": "Ysolde Marchpane-Vickery", "organization": "Oubliette Logistics Pty",
     "email": "ysolde.vickery@oubliette-logistics.example", "phone": "+44 20 7946 0958",
     "street": ["Lantern Ghyll Cottage"], "city": "Little Snoddington",
     "postal_code": "SW1A 1AA", "country": "GB"},
]
# What contact 0 becomes; the values it had must not linger either.
PATCHED = {"email": "quenneville.new@marmalade-orbit.example", "phone": "+64 21 987 6543",
           "street": ["Kettlewhistle Road 1234"]}
# Sent, but refused: never stored.
REFUSED = {"name": "Ignatius Refusedvalue", "email": "ignatius@@refused-value.example",
           "phone": "+64 21 000", "street": ["Rejectamenta Alley 5"], "city": "Nopeford",
           "postal_code": "NOPE-5150", "country": "NZ"}
STAFF_EMAIL = "operator.quasimodo@bellfry-tower.example"
OWNER_EMAIL = "Ottoline.Vexworth@Quarrelsome-Lighthouse.example"
OWNER_EMAIL_STORED = "Ottoline.Vexworth@quarrelsome-lighthouse.example"  # domain lower-cased
INTRUDER_EMAIL = "intruder.wexford@nowhere-landing.example"
E164 = ["+64213456789", "+353879461732", "+35312345678", "+442079460958", "+64219876543"]


def personal_values() -> list[str]:
    values = [STAFF_EMAIL, OWNER_EMAIL, OWNER_EMAIL_STORED, INTRUDER_EMAIL, *E164]
    for record in [*PEOPLE, PATCHED, REFUSED]:
        for key, value in record.items():
            if key != "country":
                values += value if isinstance(value, list) else [value]
    return values


def spellings(value: str) -> set[str]:
    """How a value could be written: as given, lower-cased, or escaped inside JSON."""
    return {value, value.lower(), json.dumps(value)[1:-1]}


def byte_forms(value: str) -> set[bytes]:
    return {s.encode(encoding) for s in spellings(value)
            for encoding in ("utf-8", "utf-16-le", "utf-16-be")}


def text_forms(value: str) -> set[str]:
    """Spellings, and their hex as PostgreSQL prints bytea."""
    return spellings(value) | {form.hex() for form in byte_forms(value)}


def assert_no_personal_data(haystack: bytes | str, where: str) -> None:
    for value in personal_values():
        forms = byte_forms(value) if isinstance(haystack, bytes) else text_forms(value)
        for form in forms:
            assert form not in haystack, f"{value!r} found in {where} as {form!r}"


async def store_personal_data(api: httpx.AsyncClient, world: World) -> None:
    """Contacts and users created, read, changed, deleted and refused through the API."""
    operator = await world.user("operator", email=STAFF_EMAIL)
    await world.account(CANARY)
    created = await api.post("/api/v1/users", headers=operator.headers, json={
        "email": OWNER_EMAIL, "password": PASSWORD, "role": "owner", "account": CANARY})
    assert created.status_code == 201, created.text
    login = await api.post("/api/v1/auth/login",
                           json={"email": OWNER_EMAIL.lower(), "password": PASSWORD})
    owner = {"Authorization": f"Bearer {login.json()['token']}"}
    handles = []
    for person in PEOPLE:
        response = await api.post(CONTACTS, json=person, headers=owner)
        assert response.status_code == 201, response.text
        handles.append(response.json()["handle"])
    changed = await api.patch(f"{CONTACTS}/{handles[0]}", json=PATCHED, headers=owner)
    assert changed.status_code == 200, changed.text
    assert (await api.get(f"{CONTACTS}/{handles[1]}", headers=owner)).status_code == 200
    assert len((await api.get(CONTACTS, headers=owner)).json()["items"]) == 3
    assert (await api.delete(f"{CONTACTS}/{handles[2]}", headers=owner)).status_code == 204
    assert (await api.post(CONTACTS, json=REFUSED, headers=owner)).status_code == 422
    intruder = await api.post("/api/v1/auth/login",
                              json={"email": INTRUDER_EMAIL, "password": PASSWORD})
    assert intruder.status_code == 401
    assert (await api.get("/api/v1/me", headers=owner)).json()["email"] == OWNER_EMAIL_STORED


# Personal data at rest


async def test_personal_data_never_reaches_the_sqlite_files(
        backend: str, settings: Settings, services: Services, api: httpx.AsyncClient,
        world: World) -> None:
    if backend != "sqlite":
        pytest.skip("the database files are SQLite's")
    await store_personal_data(api, world)
    database = settings.home / "regshield.db"
    companions = [database.with_name(database.name + suffix) for suffix in ("-wal", "-shm")]
    wal = companions[0]
    assert wal.exists() and wal.stat().st_size > 0, "the writes should still sit in the WAL"

    # As the files are while the database is open, nothing checkpointed yet.
    for path in [database, *companions]:
        assert_no_personal_data(path.read_bytes(), path.name)
    assert CANARY.encode() in database.read_bytes() + wal.read_bytes()

    await services.close()

    on_disk = database.read_bytes()
    assert CANARY.encode() in on_disk
    assert_no_personal_data(on_disk, database.name)
    for path in companions:
        if path.exists():
            assert_no_personal_data(path.read_bytes(), path.name)


async def all_rows_as_text(services: Services) -> str:
    """Every row of every table, as the database itself prints it."""
    rows: list[str] = []
    async with services.store.read() as session:
        if services.store.is_sqlite:
            tables = (await session.execute(text(
                "SELECT name FROM sqlite_master WHERE type = 'table'"))).scalars().all()
            for table in tables:
                query = text(f'SELECT * FROM "{table}"')  # noqa: S608 (names from the catalog)
                for row in (await session.execute(query)).all():
                    rows += [v.hex() if isinstance(v, bytes) else str(v) for v in row]
        else:
            tables = (await session.execute(text(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema()"))).scalars().all()
            for table in tables:
                query = text(f'SELECT t::text FROM "{table}" t')  # noqa: S608 (as above)
                rows += (await session.execute(query)).scalars().all()
    assert len(tables) >= 10
    return "\n".join(rows)


async def test_no_row_of_any_table_holds_personal_data_in_clear(
        services: Services, api: httpx.AsyncClient, world: World) -> None:
    await store_personal_data(api, world)

    every_row = await all_rows_as_text(services)

    assert CANARY in every_row
    assert_no_personal_data(every_row, "a row")


async def test_every_record_has_a_data_key_of_its_own(
        services: Services, population: Population) -> None:
    async with services.store.read() as session:
        contact_keys = (await session.execute(select(Contact.data_key_id))).scalars().all()
        user_keys = (await session.execute(select(User.data_key_id))).scalars().all()
        wrapped = (await session.execute(select(DataKey.wrapped))).scalars().all()

    owners = [*contact_keys, *user_keys]
    assert len(owners) == len(set(owners)) == len(population.contacts) + len(population.emails)
    assert len(set(wrapped)) == len(wrapped) == len(owners)


@pytest.fixture
def fresh_loggers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Module loggers that bind anew, so that log capture sees them whatever ran before
    (a logger cached on first use keeps the processors it was first bound with)."""
    for name, module in list(sys.modules.items()):
        logger = getattr(module, "log", None) if name.startswith("regshield") else None
        if isinstance(logger, BoundLoggerLazyProxy):
            monkeypatch.setattr(module, "log",
                                structlog.get_logger(*(logger._logger_factory_args or ())))


@pytest.mark.usefixtures("fresh_loggers")
async def test_logs_of_these_operations_hold_no_personal_data(
        services: Services, api: httpx.AsyncClient, world: World,
        caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)

    with structlog.testing.capture_logs() as entries:
        await store_personal_data(api, world)

    logged = [json.dumps(mask_sensitive(None, "", dict(entry)), default=str)
              for entry in entries]
    out, err = capfd.readouterr()
    everything = "\n".join([*logged, caplog.text, out, err])
    assert sum("flow.done" in line for line in logged) >= 8, "the flows' own log lines"
    assert_no_personal_data(everything, "the logs")


# Sealed values are bound to their record


async def two_contacts(world: World) -> tuple[str, str]:
    account = await world.account("Sealed Ltd")
    first = await world.flow(ContactCreate(contact_body(name="First Person"), account))
    second = await world.flow(ContactCreate(contact_body(name="Second Person"), account))
    return first.handle, second.handle


@pytest.mark.parametrize("with_its_data_key", [False, True])
async def test_sealed_contact_copied_onto_another_row_does_not_open(
        services: Services, world: World, with_its_data_key: bool) -> None:
    first, second = await two_contacts(world)
    async with services.store.write() as session:
        source = (await session.execute(
            select(Contact).where(Contact.handle == first))).scalar_one()
        values: dict[str, Any] = {"data_sealed": source.data_sealed}
        if with_its_data_key:
            values["data_key_id"] = source.data_key_id
        await session.execute(update(Contact).where(Contact.handle == second).values(**values))

    with pytest.raises(InvalidTag):
        await contact_read(services, SYSTEM, second)
    with pytest.raises(InvalidTag):
        await contact_list(services, SYSTEM)
    assert (await contact_read(services, SYSTEM, first)).data.name == "First Person"


@pytest.mark.parametrize("with_its_data_key", [False, True])
async def test_sealed_email_copied_onto_another_user_does_not_open(
        services: Services, world: World, with_its_data_key: bool) -> None:
    first = await world.user("support")
    second = await world.user("auditor")
    async with services.store.write() as session:
        source = (await session.execute(
            select(User).where(User.public_id == first.user_id))).scalar_one()
        values: dict[str, Any] = {"email_sealed": source.email_sealed}
        if with_its_data_key:
            values["data_key_id"] = source.data_key_id
        await session.execute(update(User).where(User.public_id == second.user_id)
                              .values(**values))

    async with services.store.read() as session:
        users = {u.public_id: u for u in (await session.execute(select(User))).scalars()}
        with pytest.raises(InvalidTag):
            await user_email(session, services.sealer, users[second.user_id])
        assert await user_email(session, services.sealer, users[first.user_id]) == first.email


# Master key rotation


@dataclass
class Population:
    contacts: dict[str, dict[str, Any]]  # handle -> contact as the API shows it
    emails: dict[str, str]  # user id -> email
    owner_headers: dict[str, str]


@pytest.fixture
async def population(api: httpx.AsyncClient, world: World) -> Population:
    account = await world.account("Rotating Ltd")
    owner = await world.user("owner", account)
    support = await world.user("support")
    contacts = {}
    for n in range(4):
        response = await api.post(CONTACTS, json=contact_body(name=f"Person {n}"),
                                  headers=owner.headers)
        contacts[response.json()["handle"]] = response.json()
    return Population(contacts, {owner.user_id: owner.email, support.user_id: support.email},
                      owner.headers)


async def readable(services: Services, population: Population) -> None:
    """Every contact and every user's email opens through `services`."""
    views = await contact_list(services, SYSTEM, limit=500)
    opened = {v.handle: v.data.as_dict() for v in views}
    expected = {
        handle: {k: v for k, v in contact.items()
                 if k not in ("handle", "account", "created_at", "updated_at")}
        for handle, contact in population.contacts.items()
    }
    assert {h: opened[h] for h in expected} == expected
    async with services.store.read() as session:
        for user in (await session.execute(select(User))).scalars():
            email = await user_email(session, services.sealer, user)
            if user.public_id in population.emails:
                assert email == population.emails[user.public_id]


async def master_key_ids(services: Services) -> set[str]:
    async with services.store.read() as session:
        return set((await session.execute(select(DataKey.master_key_id))).scalars().all())


async def test_rotation_rewraps_every_data_key_and_retires_the_old_master_key(
        services: Services, settings: Settings, clock: FakeClock, api: httpx.AsyncClient,
        population: Population) -> None:
    old = services.keyring.document
    old_id, old_key = old.primary, old.keys[old.primary]
    data_keys = len(population.contacts) + len(population.emails)
    assert await master_key_ids(services) == {old_id}

    report = await rotate_master_key(services, SYSTEM, CLI, grace_seconds=0)

    assert report.new_key != old_id
    assert (report.retired, report.rewrapped) == ([old_id], data_keys)
    assert await master_key_ids(services) == {report.new_key}
    for handle, contact in population.contacts.items():
        response = await api.get(f"{CONTACTS}/{handle}", headers=population.owner_headers)
        assert response.json() == contact
    me = await api.get("/api/v1/me", headers=population.owner_headers)
    assert me.json()["email"] == population.emails[me.json()["user_id"]]
    await readable(services, population)

    key_file = settings.key_file
    ring = json.loads(key_file.read_text())
    assert ring["primary"] == report.new_key
    assert list(ring["keys"]) == [report.new_key]
    assert [r["id"] for r in ring["retired"]] == [old_id]
    assert base64.b64encode(old_key).decode() not in key_file.read_text()
    assert old_key not in key_file.read_bytes()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert not [p for p in key_file.parent.iterdir() if p != key_file], "no temporary files left"

    [event] = await events_tagged(services, "keys:master:rotated")
    assert event.actor == "system:test"
    assert event.summary == {"new_key": report.new_key, "retired": [old_id],
                             "rewrapped": data_keys, "still_old": 0}


async def test_another_process_opened_after_rotation_reads_everything(
        services: Services, settings: Settings, clock: FakeClock,
        population: Population) -> None:
    report = await rotate_master_key(services, SYSTEM, CLI, grace_seconds=0)

    later = Services.open(settings, clock)
    try:
        assert later.keyring.primary_id == report.new_key
        await readable(later, population)
    finally:
        await later.close()


async def test_process_opened_before_rotation_reads_right_after_it(
        services: Services, settings: Settings, clock: FakeClock,
        population: Population) -> None:
    earlier = Services.open(settings, clock)
    try:
        await readable(earlier, population)
        report = await rotate_master_key(services, SYSTEM, CLI, grace_seconds=0)

        # No waiting: a data key under a master key it does not know makes it re-read the ring.
        await readable(earlier, population)
        created = await run_flow(earlier, SYSTEM, CLI,
                                 ContactCreate(contact_body(name="After Rotation"), "Rotating Ltd"))
        assert await master_key_ids(services) == {report.new_key}
        assert (await contact_read(services, SYSTEM, created.handle)).data.name == "After Rotation"
    finally:
        await earlier.close()


async def test_writes_of_a_process_that_has_not_noticed_the_rotation_stay_readable(
        services: Services, settings: Settings, clock: FakeClock, population: Population,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The other process will not look at the key file again on its own during this test.
    monkeypatch.setattr(keyring_module, "RELOAD_INTERVAL_SECONDS", 3600.0)
    earlier = Services.open(settings, clock)
    old_id = earlier.keyring.primary_id
    try:
        rotation = asyncio.create_task(
            rotate_master_key(services, SYSTEM, CLI, grace_seconds=0.5))
        # The rotation signals nothing; watch the file it writes.
        while json.loads(settings.key_file.read_text())["primary"] == old_id:  # noqa: ASYNC110
            await asyncio.sleep(0.01)

        # In the grace period: the new ring is on disk, the other process still wraps with
        # the old master key.
        written = await run_flow(earlier, SYSTEM, CLI,
                                 ContactCreate(contact_body(name="In The Window"), "Rotating Ltd"))
        assert await master_key_ids(services) == {old_id}
        report = await rotation

        assert report.retired == [old_id]
        assert await master_key_ids(services) == {report.new_key}
        for reader in (earlier, services):
            assert (await contact_read(reader, SYSTEM, written.handle)).data.name == \
                "In The Window"
            await readable(reader, population)
        later = Services.open(settings, clock)
        try:
            assert (await contact_read(later, SYSTEM, written.handle)).data.name == \
                "In The Window"
        finally:
            await later.close()
    finally:
        await earlier.close()


async def test_second_rotation_retires_the_first_rotations_key_too(
        services: Services, population: Population) -> None:
    original = services.keyring.primary_id

    first = await rotate_master_key(services, SYSTEM, CLI, grace_seconds=0)
    second = await rotate_master_key(services, SYSTEM, CLI, grace_seconds=0)

    assert second.retired == [first.new_key]
    assert [r["id"] for r in services.keyring.document.retired] == [original, first.new_key]
    assert set(services.keyring.document.keys) == {second.new_key}
    await readable(services, population)


async def test_key_file_readable_by_others_is_refused(
        services: Services, settings: Settings, clock: FakeClock) -> None:
    os.chmod(settings.key_file, 0o644)

    with pytest.raises(ConfigurationError, match="0600"):
        Services.open(settings, clock)
