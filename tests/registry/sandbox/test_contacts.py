"""Contact objects at the sandbox registry (RFC 5733), and what a thick session (one that
selected contact-1.0 at login) asks of the domains it creates; a minimum-data session keeps
working without contacts."""

from __future__ import annotations

from registry.sandbox.test_server import AUTH_INFO, PASSWORD_B, Client, Sandbox, create
from regshield.registry.codec import (
    CONTACT_NS,
    DOMAIN_NS,
    Disclose,
    DomainContact,
    Phone,
    PostalInfo,
    ResultCode,
    Secret,
    Status,
)
from regshield.registry.commands import (
    ContactCheck,
    ContactCreate,
    ContactDelete,
    ContactInfo,
    ContactTransfer,
    ContactUpdate,
    DomainChanges,
    DomainCreate,
    DomainDelete,
    DomainInfo,
    DomainUpdate,
    PostalInfoChange,
)
from regshield.registry.responses import (
    ContactCheckData,
    ContactCreateData,
    ContactInfoData,
    DomainInfoData,
)

THICK = (DOMAIN_NS, CONTACT_NS)
CONTACT_AUTH = "C0ntact-Auth-2026!"
POSTAL = PostalInfo("int", "Jane Holder", "Zurich", "CH", street=("1 Example Street",),
                    pc="8001")


def new_contact(handle: str = "holder-1", **changes: object) -> ContactCreate:
    values: dict[str, object] = {"id": handle, "postal_info": (POSTAL,),
                                 "email": "jane@example.net",
                                 "auth_info": Secret(CONTACT_AUTH),
                                 "voice": Phone("+41.441234567")}
    values.update(changes)
    return ContactCreate(**values)  # type: ignore[arg-type]


async def thick(sandbox: Sandbox, client_id: str = "registrar-a") -> Client:
    """A session that manages domains and contacts."""
    if client_id == "registrar-a":
        return await sandbox.session(object_uris=THICK)
    return await sandbox.session(client_id, PASSWORD_B, object_uris=THICK)


async def with_contact(sandbox: Sandbox, handle: str = "holder-1") -> Client:
    client = await thick(sandbox)
    created = await client.send(new_contact(handle))
    assert created.code == ResultCode.COMPLETED, created.message
    return client


async def contact_of(client: Client, handle: str, code: str | None = None) -> ContactInfoData:
    response = await client.send(ContactInfo(handle, None if code is None else Secret(code)))
    data = response.item(ContactInfoData)
    assert data is not None, response.message
    return data


async def test_a_contact_is_created_checked_and_read_back(sandbox: Sandbox) -> None:
    client = await thick(sandbox)

    before = (await client.send(ContactCheck(("holder-1",)))).item(ContactCheckData)
    created = await client.send(new_contact(disclose=Disclose(False, ("voice", "email"))))
    again = await client.send(new_contact())
    after = (await client.send(ContactCheck(("holder-1", "holder-2")))).item(ContactCheckData)
    data = await contact_of(client, "holder-1")
    received = client.last_received

    assert before is not None and before.results[0].available
    assert created.code == ResultCode.COMPLETED and created.item(ContactCreateData)
    assert again.code == ResultCode.OBJECT_EXISTS
    assert after is not None and [(r.name, r.available) for r in after.results] == [
        ("holder-1", False), ("holder-2", True)]
    assert data.postal_info == (POSTAL,) and data.email == "jane@example.net"
    assert data.voice == Phone("+41.441234567") and data.fax is None
    assert data.disclose == Disclose(False, ("voice", "email"))
    assert data.sponsoring_client == "registrar-a" and [s.value for s in data.statuses] == ["ok"]
    # Only a salted hash of the authInfo is kept: it is never returned.
    assert data.auth_info is None and CONTACT_AUTH.encode() not in received


async def test_the_contact_auth_info_is_kept_only_as_a_salted_hash(sandbox: Sandbox) -> None:
    client = await with_contact(sandbox)
    await client.send(ContactUpdate("holder-1", auth_info=Secret("Second-C0ntact-Code")))

    [(hashed,)] = sandbox.sql("SELECT auth_info_hash FROM contacts WHERE handle = 'holder-1'")
    files = [path for path in sandbox.config.directory.iterdir()
             if path.name.startswith("registry.db")]
    stored = b"".join(path.read_bytes() for path in files)

    assert str(hashed).startswith("sha256$")
    assert CONTACT_AUTH.encode() not in stored and b"Second-C0ntact-Code" not in stored


async def test_another_registrar_needs_the_auth_info_and_cannot_change_the_contact(
        sandbox: Sandbox) -> None:
    await with_contact(sandbox)
    other = await thick(sandbox, "registrar-b")

    bare = await other.send(ContactInfo("holder-1"))
    wrong = await other.send(ContactInfo("holder-1", Secret("Wrong-code-123!")))
    right = await contact_of(other, "holder-1", CONTACT_AUTH)
    update = await other.send(ContactUpdate("holder-1", email="thief@example.org"))
    delete = await other.send(ContactDelete("holder-1"))

    assert bare.code == ResultCode.AUTHORIZATION_ERROR
    assert wrong.code == ResultCode.INVALID_AUTHORIZATION_INFORMATION
    assert right.id == "holder-1" and right.auth_info is None
    assert update.code == delete.code == ResultCode.AUTHORIZATION_ERROR


async def test_a_contact_update_replaces_what_it_names(sandbox: Sandbox) -> None:
    client = await with_contact(sandbox)

    updated = await client.send(ContactUpdate(
        "holder-1", add=(Status("clientTransferProhibited"),),
        postal_info=(PostalInfoChange("int", org="Holder AG"),
                     PostalInfoChange("loc", name="Jane Hölder", street=("Bahnhofstr. 1",),
                                      city="Zürich", cc="CH")),
        fax=Phone("+41.441234568"), email="new@example.net"))
    data = await contact_of(client, "holder-1")
    half = await client.send(ContactUpdate(
        "holder-1", postal_info=(PostalInfoChange("loc", org="Only an org"),)))
    nothing = await client.send(ContactUpdate("holder-1"))

    assert updated.code == ResultCode.COMPLETED
    assert data.postal_info == (
        PostalInfo("int", "Jane Holder", "Zurich", "CH", org="Holder AG",
                   street=("1 Example Street",), pc="8001"),
        PostalInfo("loc", "Jane Hölder", "Zürich", "CH", street=("Bahnhofstr. 1",)))
    assert data.fax == Phone("+41.441234568") and data.email == "new@example.net"
    assert data.voice == Phone("+41.441234567")
    assert [s.value for s in data.statuses] == ["clientTransferProhibited"]
    assert data.updated_by == "registrar-a" and data.updated is not None
    assert half.code == ResultCode.COMPLETED  # the loc form exists now: an org alone will do
    assert nothing.code == ResultCode.REQUIRED_PARAMETER_MISSING


async def test_a_new_postal_form_needs_a_name_and_an_address(sandbox: Sandbox) -> None:
    client = await with_contact(sandbox)

    refused = await client.send(ContactUpdate(
        "holder-1", postal_info=(PostalInfoChange("loc", name="Jane Hölder"),)))

    assert refused.code == ResultCode.REQUIRED_PARAMETER_MISSING
    assert 'type="loc"' in refused.message


async def test_contact_statuses_protect_it_and_only_client_statuses_are_the_registrar_s(
        sandbox: Sandbox) -> None:
    client = await with_contact(sandbox)
    lock = Status("clientUpdateProhibited")
    await client.send(ContactUpdate("holder-1", add=(lock, Status("clientDeleteProhibited"))))

    update = await client.send(ContactUpdate("holder-1", email="x@example.net"))
    unlock_and_change = await client.send(ContactUpdate("holder-1", remove=(lock,),
                                                        email="x@example.net"))
    delete = await client.send(ContactDelete("holder-1"))
    unlocked = await client.send(ContactUpdate("holder-1", remove=(lock,)))
    server = await client.send(ContactUpdate("holder-1",
                                             add=(Status("serverUpdateProhibited"),)))
    again = await client.send(ContactUpdate("holder-1", add=(Status("clientDeleteProhibited"),)))

    assert update.code == unlock_and_change.code == ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION
    assert delete.code == ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION
    assert unlocked.code == ResultCode.COMPLETED
    assert server.code == again.code == ResultCode.PARAMETER_VALUE_POLICY_ERROR


async def test_server_statuses_set_by_the_registry_hold_against_the_registrar(
        sandbox: Sandbox) -> None:
    client = await with_contact(sandbox)
    sandbox.sql("UPDATE contacts SET statuses = ? WHERE handle = ?",
                '["serverDeleteProhibited", "serverUpdateProhibited"]', "holder-1")

    update = await client.send(ContactUpdate("holder-1", email="x@example.net"))
    delete = await client.send(ContactDelete("holder-1"))

    assert update.code == delete.code == ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION


async def test_a_thick_session_creates_domains_with_existing_contacts_only(
        sandbox: Sandbox) -> None:
    client = await with_contact(sandbox)

    no_registrant = await client.send(DomainCreate("bare.test", Secret(AUTH_INFO)))
    unknown = await client.send(create("unknown.test", registrant="nobody-1"))
    unknown_tech = await client.send(create(
        "tech.test", contacts=(DomainContact("tech", "nobody-2"),)))
    created = await client.send(create(
        "known.test", contacts=(DomainContact("tech", "holder-1"),)))
    new_registrant = await client.send(DomainUpdate("known.test", registrant="nobody-1"))
    new_contact_ = await client.send(DomainUpdate(
        "known.test", add=DomainChanges(contacts=(DomainContact("admin", "nobody-2"),))))

    assert no_registrant.code == ResultCode.REQUIRED_PARAMETER_MISSING
    assert unknown.code == unknown_tech.code == ResultCode.OBJECT_DOES_NOT_EXIST
    assert "nobody-1" in unknown.message
    assert created.code == ResultCode.COMPLETED
    assert new_registrant.code == new_contact_.code == ResultCode.OBJECT_DOES_NOT_EXIST


async def test_a_minimum_data_session_creates_domains_without_contacts(
        sandbox: Sandbox) -> None:
    client = await sandbox.session()  # domain objects only: no contact-1.0

    bare = await client.send(DomainCreate("bare.test", Secret(AUTH_INFO)))
    given = await client.send(create("given.test", registrant="not-an-object"))
    info = (await client.send(DomainInfo("given.test"))).item(DomainInfoData)
    contact_command = await client.send(ContactCheck(("holder-1",)))

    assert bare.code == given.code == ResultCode.COMPLETED
    assert info is not None and info.registrant == "not-an-object"
    assert contact_command.code == ResultCode.UNIMPLEMENTED_OBJECT_SERVICE


async def test_a_linked_contact_cannot_be_deleted(sandbox: Sandbox) -> None:
    client = await with_contact(sandbox)
    await client.send(new_contact("tech-1"))
    await client.send(create("linked.test", contacts=(DomainContact("tech", "tech-1"),)))

    registrant = await contact_of(client, "holder-1")
    refused = await client.send(ContactDelete("holder-1"))
    tech_refused = await client.send(ContactDelete("tech-1"))
    await client.send(DomainDelete("linked.test"))  # in its add grace period: purged at once
    deleted = await client.send(ContactDelete("holder-1"))
    gone = await client.send(ContactInfo("holder-1"))
    free = (await client.send(ContactCheck(("holder-1",)))).item(ContactCheckData)

    assert sorted(s.value for s in registrant.statuses) == ["linked", "ok"]
    assert refused.code == tech_refused.code \
        == ResultCode.OBJECT_ASSOCIATION_PROHIBITS_OPERATION
    assert "linked.test" in refused.message
    assert deleted.code == ResultCode.COMPLETED
    assert gone.code == ResultCode.OBJECT_DOES_NOT_EXIST
    assert free is not None and free.results[0].available


async def test_contact_transfers_are_not_served(sandbox: Sandbox) -> None:
    await with_contact(sandbox)
    other = await thick(sandbox, "registrar-b")

    refused = await other.send(ContactTransfer("holder-1", Secret(CONTACT_AUTH)))

    assert refused.code == ResultCode.UNIMPLEMENTED_COMMAND
    assert CONTACT_AUTH not in refused.message
