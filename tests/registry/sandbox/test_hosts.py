"""Host objects at the sandbox registry (RFC 5732), as a registrar meets them over EPP:
internal hosts with glue under domains it sponsors, external hosts by name, the link between
hosts and the domains that use them, and the statuses that protect them."""

from __future__ import annotations

import ipaddress

from registry.sandbox.test_server import AUTH_INFO, PASSWORD_B, Client, Sandbox, create
from regshield.registry.codec import (
    DOMAIN_NS,
    HOST_NS,
    HostAttribute,
    ResultCode,
    Secret,
    Status,
)
from regshield.registry.commands import (
    DomainChanges,
    DomainCreate,
    DomainDelete,
    DomainInfo,
    DomainTransfer,
    DomainUpdate,
    HostChanges,
    HostCheck,
    HostCreate,
    HostDelete,
    HostInfo,
    HostUpdate,
)
from regshield.registry.responses import (
    DomainInfoData,
    EppResponse,
    HostCheckData,
    HostCreateData,
    HostInfoData,
)

OBJECTS = (DOMAIN_NS, HOST_NS)
V4 = ipaddress.ip_address("192.0.2.10")
V4_B = ipaddress.ip_address("192.0.2.11")
V6 = ipaddress.ip_address("2001:db8::10")


async def hosting(sandbox: Sandbox, client_id: str = "registrar-a") -> Client:
    """A session that manages domains and hosts."""
    if client_id == "registrar-a":
        return await sandbox.session(object_uris=OBJECTS)
    return await sandbox.session(client_id, PASSWORD_B, object_uris=OBJECTS)


async def with_glue(sandbox: Sandbox, domain: str = "glue.test",
                    host: str = "ns1.glue.test") -> Client:
    """registrar-a's session with `domain` registered and `host` created under it."""
    client = await hosting(sandbox)
    assert (await client.send(create(domain))).code == ResultCode.COMPLETED
    created = await client.send(HostCreate(host, (V4, V6)))
    assert created.code == ResultCode.COMPLETED, created.message
    return client


async def host_of(client: Client, name: str) -> HostInfoData:
    response = await client.send(HostInfo(name))
    data = response.item(HostInfoData)
    assert data is not None, response.message
    return data


def statuses(data: HostInfoData) -> list[str]:
    return sorted(status.value for status in data.statuses)


async def test_an_internal_host_is_created_with_its_glue_and_read_back(
        sandbox: Sandbox) -> None:
    client = await hosting(sandbox)
    await client.send(create("glue.test"))

    before = (await client.send(HostCheck(("ns1.glue.test",)))).item(HostCheckData)
    created = await client.send(HostCreate("NS1.Glue.TEST", (V6, V4)))
    after = (await client.send(HostCheck(("ns1.glue.test", "ns2.glue.test")))).item(
        HostCheckData)
    data = await host_of(client, "ns1.glue.test")

    assert before is not None and before.results[0].available
    assert created.code == ResultCode.COMPLETED
    assert created.item(HostCreateData) is not None
    assert after is not None and [(r.available, r.reason) for r in after.results] == [
        (False, "In use"), (True, None)]
    assert data.name == "ns1.glue.test" and data.sponsoring_client == "registrar-a"
    assert data.addresses == (V4, V6) and statuses(data) == ["ok"]


async def test_an_internal_host_needs_glue_and_a_domain_of_its_registrar(
        sandbox: Sandbox) -> None:
    owner = await hosting(sandbox)
    other = await hosting(sandbox, "registrar-b")
    await owner.send(create("glue.test"))

    no_glue = await owner.send(HostCreate("ns1.glue.test"))
    no_domain = await owner.send(HostCreate("ns1.nowhere.test", (V4,)))
    not_its_domain = await other.send(HostCreate("ns2.glue.test", (V4,)))
    apex = await owner.send(HostCreate("glue.test", (V4,)))
    twice = await owner.send(HostCreate("ns3.glue.test", (V4, V4)))

    assert no_glue.code == ResultCode.REQUIRED_PARAMETER_MISSING
    assert no_domain.code == ResultCode.OBJECT_DOES_NOT_EXIST
    assert not_its_domain.code == ResultCode.AUTHORIZATION_ERROR
    assert apex.code == twice.code == ResultCode.PARAMETER_VALUE_POLICY_ERROR


async def test_an_external_host_takes_no_glue(sandbox: Sandbox) -> None:
    client = await hosting(sandbox)

    with_glue_refused = await client.send(HostCreate("ns1.example.net", (V4,)))
    created = await client.send(HostCreate("ns1.example.net"))
    again = await client.send(HostCreate("ns1.example.net"))

    assert with_glue_refused.code == ResultCode.PARAMETER_VALUE_POLICY_ERROR
    assert created.code == ResultCode.COMPLETED
    assert again.code == ResultCode.OBJECT_EXISTS
    assert (await host_of(client, "ns1.example.net")).addresses == ()


async def test_a_nameserver_inside_a_served_tld_must_be_a_host_object(
        sandbox: Sandbox) -> None:
    client = await hosting(sandbox)
    await client.send(create("glue.test"))

    before = await client.send(create("user.test", nameservers=("ns1.glue.test",)))
    update_before = await client.send(DomainUpdate(
        "glue.test", add=DomainChanges(nameservers=("ns1.glue.test",))))
    await client.send(HostCreate("ns1.glue.test", (V4,)))
    after = await client.send(create("user.test", nameservers=("ns1.glue.test",
                                                               "ns1.example.net")))
    update_after = await client.send(DomainUpdate(
        "glue.test", add=DomainChanges(nameservers=("ns1.glue.test",))))

    assert before.code == update_before.code == ResultCode.OBJECT_DOES_NOT_EXIST
    assert "ns1.glue.test" in before.message
    # External nameservers (ns1.example.net) need no host object.
    assert after.code == update_after.code == ResultCode.COMPLETED


async def test_host_attributes_are_refused_as_the_registry_keeps_host_objects(
        sandbox: Sandbox) -> None:
    client = await hosting(sandbox)

    refused = await client.send(DomainCreate("attrs.test", Secret(AUTH_INFO), host_attributes=(
        HostAttribute("ns1.example.net"),)))

    assert refused.code == ResultCode.UNIMPLEMENTED_OPTION
    assert "domain:hostObj" in refused.message


async def test_a_host_in_use_is_linked_and_cannot_be_deleted(sandbox: Sandbox) -> None:
    client = await with_glue(sandbox)
    await client.send(create("user.test", nameservers=("ns1.glue.test",)))

    linked = await host_of(client, "ns1.glue.test")
    refused = await client.send(HostDelete("ns1.glue.test"))
    await client.send(DomainDelete("user.test"))  # in its add grace period: purged at once
    unlinked = await host_of(client, "ns1.glue.test")
    deleted = await client.send(HostDelete("ns1.glue.test"))
    gone = await client.send(HostInfo("ns1.glue.test"))

    assert statuses(linked) == ["linked", "ok"]
    assert refused.code == ResultCode.OBJECT_ASSOCIATION_PROHIBITS_OPERATION
    assert "user.test" in refused.message
    assert statuses(unlinked) == ["ok"]
    assert deleted.code == ResultCode.COMPLETED
    assert gone.code == ResultCode.OBJECT_DOES_NOT_EXIST


async def test_a_domain_with_subordinate_hosts_cannot_be_deleted(sandbox: Sandbox) -> None:
    client = await with_glue(sandbox)

    refused = await client.send(DomainDelete("glue.test"))
    await client.send(HostDelete("ns1.glue.test"))
    deleted = await client.send(DomainDelete("glue.test"))

    assert refused.code == ResultCode.OBJECT_ASSOCIATION_PROHIBITS_OPERATION
    assert deleted.code == ResultCode.COMPLETED


async def test_a_domain_info_shows_subordinate_hosts_as_its_hosts_filter_asks(
        sandbox: Sandbox) -> None:
    client = await with_glue(sandbox)

    shown = {}
    for hosts in ("all", "del", "sub", "none"):
        data = (await client.send(DomainInfo("glue.test", hosts=hosts))).item(DomainInfoData)
        assert data is not None
        shown[hosts] = (data.nameservers, data.hosts)

    nameservers = ("ns1.example.net", "ns2.example.net")
    assert shown == {"all": (nameservers, ("ns1.glue.test",)), "del": (nameservers, ()),
                     "sub": ((), ("ns1.glue.test",)), "none": ((), ())}


async def test_host_updates_change_addresses_and_statuses(sandbox: Sandbox) -> None:
    client = await with_glue(sandbox)

    changed = await client.send(HostUpdate(
        "ns1.glue.test", add=HostChanges((V4_B,), (Status("clientDeleteProhibited"),)),
        remove=HostChanges((V6,))))
    data = await host_of(client, "ns1.glue.test")
    delete = await client.send(HostDelete("ns1.glue.test"))
    last_glue = await client.send(HostUpdate("ns1.glue.test",
                                             remove=HostChanges((V4, V4_B))))
    missing = await client.send(HostUpdate("ns1.glue.test", remove=HostChanges((V6,))))
    nothing = await client.send(HostUpdate("ns1.glue.test"))
    server = await client.send(HostUpdate("ns1.glue.test", add=HostChanges(
        statuses=(Status("serverUpdateProhibited"),))))

    assert changed.code == ResultCode.COMPLETED
    assert data.addresses == (V4, V4_B) and statuses(data) == ["clientDeleteProhibited"]
    assert data.updated_by == "registrar-a" and data.updated is not None
    assert delete.code == ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION
    assert last_glue.code == ResultCode.REQUIRED_PARAMETER_MISSING
    assert missing.code == server.code == ResultCode.PARAMETER_VALUE_POLICY_ERROR
    assert nothing.code == ResultCode.REQUIRED_PARAMETER_MISSING


async def test_client_update_prohibited_on_a_host_allows_only_its_own_removal(
        sandbox: Sandbox) -> None:
    client = await with_glue(sandbox)
    lock = Status("clientUpdateProhibited")
    await client.send(HostUpdate("ns1.glue.test", add=HostChanges(statuses=(lock,))))

    refused = await client.send(HostUpdate("ns1.glue.test", add=HostChanges((V4_B,))))
    unlocked = await client.send(HostUpdate("ns1.glue.test",
                                            remove=HostChanges(statuses=(lock,))))
    accepted = await client.send(HostUpdate("ns1.glue.test", add=HostChanges((V4_B,))))

    assert refused.code == ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION
    assert unlocked.code == accepted.code == ResultCode.COMPLETED


async def test_server_statuses_set_by_the_registry_hold_against_the_registrar(
        sandbox: Sandbox) -> None:
    client = await with_glue(sandbox)
    sandbox.sql("UPDATE hosts SET statuses = ? WHERE name = ?",
                '["serverDeleteProhibited", "serverUpdateProhibited"]', "ns1.glue.test")

    update = await client.send(HostUpdate("ns1.glue.test", add=HostChanges((V4_B,))))
    delete = await client.send(HostDelete("ns1.glue.test"))
    data = await host_of(client, "ns1.glue.test")

    assert update.code == delete.code == ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION
    assert statuses(data) == ["serverDeleteProhibited", "serverUpdateProhibited"]


async def test_renaming_a_host_keeps_it_the_nameserver_of_its_domains(
        sandbox: Sandbox) -> None:
    client = await with_glue(sandbox)
    await client.send(create("user.test", nameservers=("ns1.glue.test", "ns1.example.net")))

    renamed = await client.send(HostUpdate("ns1.glue.test", new_name="dns.glue.test"))
    domain = (await client.send(DomainInfo("user.test"))).item(DomainInfoData)
    old = await client.send(HostInfo("ns1.glue.test"))
    outside = await client.send(HostUpdate("dns.glue.test", new_name="dns.example.net"))
    elsewhere = await client.send(HostUpdate("dns.glue.test", new_name="ns1.nowhere.test"))

    assert renamed.code == ResultCode.COMPLETED
    assert domain is not None and domain.nameservers == ("dns.glue.test", "ns1.example.net")
    assert old.code == ResultCode.OBJECT_DOES_NOT_EXIST
    # An external name takes no glue: the addresses would have to go in the same update.
    assert outside.code == ResultCode.PARAMETER_VALUE_POLICY_ERROR
    assert elsewhere.code == ResultCode.OBJECT_DOES_NOT_EXIST


async def test_another_registrar_reads_a_host_but_cannot_change_it(sandbox: Sandbox) -> None:
    await with_glue(sandbox)
    other = await hosting(sandbox, "registrar-b")

    data = await host_of(other, "ns1.glue.test")
    update = await other.send(HostUpdate("ns1.glue.test", add=HostChanges((V4_B,))))
    delete = await other.send(HostDelete("ns1.glue.test"))
    uses = await other.send(create("other.test", nameservers=("ns1.glue.test",)))

    assert data.sponsoring_client == "registrar-a"
    assert update.code == delete.code == ResultCode.AUTHORIZATION_ERROR
    assert uses.code == ResultCode.COMPLETED  # any registrar may delegate to a host


async def test_subordinate_hosts_move_with_their_domain(sandbox: Sandbox) -> None:
    owner = await with_glue(sandbox)
    gaining = await hosting(sandbox, "registrar-b")

    await gaining.send(DomainTransfer("glue.test", "request", auth_info=Secret(AUTH_INFO)))
    approved = await owner.send(DomainTransfer("glue.test", "approve"))
    data = await host_of(gaining, "ns1.glue.test")
    update = await gaining.send(HostUpdate("ns1.glue.test", add=HostChanges((V4_B,))))
    lost = await owner.send(HostUpdate("ns1.glue.test", remove=HostChanges((V4_B,))))

    assert approved.code == ResultCode.COMPLETED
    assert data.sponsoring_client == "registrar-b" and data.transferred is not None
    assert update.code == ResultCode.COMPLETED
    assert lost.code == ResultCode.AUTHORIZATION_ERROR


async def test_host_commands_need_the_host_service_selected_at_login(
        sandbox: Sandbox) -> None:
    client = await sandbox.session()  # domain objects only

    refused: list[EppResponse] = [
        await client.send(HostCheck(("ns1.glue.test",))),
        await client.send(HostCreate("ns1.example.net")),
    ]

    assert [r.code for r in refused] == [ResultCode.UNIMPLEMENTED_OBJECT_SERVICE] * 2
    assert "host" in refused[0].message
