"""DS records at the sandbox registry (RFC 5910, DS data interface), as a registrar sets and
reads them over EPP."""

from __future__ import annotations

import hashlib

from registry.sandbox.test_server import AUTH_INFO, PASSWORD_A, PASSWORD_B, Client, Sandbox, create
from regshield.registry.codec import SECDNS_NS, KeyData, RawElement, ResultCode, Secret, Status
from regshield.registry.commands import (
    DomainChanges,
    DomainInfo,
    DomainUpdate,
    SecDnsCreate,
    SecDnsUpdate,
)
from regshield.registry.responses import EppResponse, SecDnsInfo
from regshield.registry.sandbox.dnssec import MAX_DS_RECORDS
from regshield.rules.ds import DsRecord


def ds(key_tag: int, algorithm: int = 13, digest_type: int = 2) -> DsRecord:
    """A DS record of the right shape: a SHA-256 digest is 32 octets, SHA-1 20."""
    digest = hashlib.sha256(str(key_tag).encode()).hexdigest()
    return DsRecord(key_tag, algorithm, digest_type, digest[:40] if digest_type == 1 else digest)


DS_A, DS_B, DS_C = ds(11111), ds(22222), ds(33333)


async def dnssec_session(sandbox: Sandbox, client_id: str = "registrar-a") -> Client:
    password = {"registrar-a": PASSWORD_A, "registrar-b": PASSWORD_B}[client_id]
    return await sandbox.session(client_id, password, extension_uris=(SECDNS_NS,))


async def signed(client: Client, name: str, *records: DsRecord) -> EppResponse:
    return await client.send(create(name), extensions=(SecDnsCreate(records),))


async def ds_of(client: Client, name: str) -> tuple[DsRecord, ...] | None:
    """The DS records the info shows, or None when it has no secDNS:infData."""
    response = await client.send(DomainInfo(name))
    assert response.code == ResultCode.COMPLETED, response.message
    found = response.item(SecDnsInfo)
    return None if found is None else found.ds


async def update_ds(client: Client, name: str, change: SecDnsUpdate,
                    **domain_changes: object) -> EppResponse:
    return await client.send(DomainUpdate(name, **domain_changes),  # type: ignore[arg-type]
                             extensions=(change,))


async def test_ds_records_given_at_create_are_shown_to_sessions_that_selected_secdns(
        sandbox: Sandbox) -> None:
    client = await dnssec_session(sandbox)
    plain = await sandbox.session()

    created = await signed(client, "signed.test", DS_B, DS_A)
    shown = await ds_of(client, "signed.test")
    hidden = await ds_of(plain, "signed.test")

    assert created.code == ResultCode.COMPLETED
    assert shown == (DS_A, DS_B)
    assert hidden is None and b"secDNS" not in plain.last_received


async def test_a_domain_without_ds_records_has_no_secdns_info(sandbox: Sandbox) -> None:
    client = await dnssec_session(sandbox)
    await client.send(create("unsigned.test"))

    assert await ds_of(client, "unsigned.test") is None
    assert b"secDNS" not in client.last_received


async def test_an_update_removes_first_then_adds(sandbox: Sandbox) -> None:
    client = await dnssec_session(sandbox)
    await signed(client, "roll.test", DS_A, DS_B)

    swapped = await update_ds(client, "roll.test", SecDnsUpdate(add=(DS_C,), remove=(DS_A,)))
    after_swap = await ds_of(client, "roll.test")
    replaced = await update_ds(client, "roll.test", SecDnsUpdate(add=(DS_A,), remove_all=True))
    after_replace = await ds_of(client, "roll.test")
    cleared = await update_ds(client, "roll.test", SecDnsUpdate(remove_all=True))
    after_clear = await ds_of(client, "roll.test")

    assert swapped.code == replaced.code == cleared.code == ResultCode.COMPLETED
    assert after_swap == (DS_B, DS_C)
    assert after_replace == (DS_A,)
    assert after_clear is None


async def test_removing_a_missing_or_adding_a_present_record_is_refused(
        sandbox: Sandbox) -> None:
    client = await dnssec_session(sandbox)
    await signed(client, "exact.test", DS_A)

    missing = await update_ds(client, "exact.test", SecDnsUpdate(remove=(DS_B,)))
    present = await update_ds(client, "exact.test", SecDnsUpdate(add=(DS_A,)))
    twice = await client.send(create("twice.test"), extensions=(SecDnsCreate((DS_A, DS_A)),))

    assert missing.code == present.code == twice.code == ResultCode.PARAMETER_VALUE_POLICY_ERROR
    assert DS_B.to_text() in missing.message
    assert await ds_of(client, "exact.test") == (DS_A,)


async def test_a_domain_holds_at_most_eight_ds_records(sandbox: Sandbox) -> None:
    client = await dnssec_session(sandbox)
    records = tuple(ds(1000 + n) for n in range(MAX_DS_RECORDS + 1))

    too_many = await signed(client, "crowded.test", *records)
    full = await signed(client, "full.test", *records[:MAX_DS_RECORDS])
    one_more = await update_ds(client, "full.test", SecDnsUpdate(add=records[-1:]))

    assert MAX_DS_RECORDS == 8
    assert too_many.code == one_more.code == ResultCode.PARAMETER_VALUE_POLICY_ERROR
    assert full.code == ResultCode.COMPLETED
    shown = await ds_of(client, "full.test")
    assert shown is not None and len(shown) == MAX_DS_RECORDS


async def test_ds_records_the_policy_refuses_are_refused(sandbox: Sandbox) -> None:
    client = await dnssec_session(sandbox)
    await signed(client, "policy.test", DS_A)
    sha1_digest = ds(4444, digest_type=1)
    rsasha1 = ds(5555, algorithm=5)
    short = DsRecord(6666, 13, 2, "ab" * 20)  # a SHA-256 digest is 32 octets

    refused = [await update_ds(client, "policy.test", SecDnsUpdate(add=(record,)))
               for record in (sha1_digest, rsasha1, short)]
    at_create = await signed(client, "weak.test", rsasha1)

    assert [r.code for r in refused] == [ResultCode.PARAMETER_VALUE_POLICY_ERROR] * 3
    assert "SHA-1" in refused[0].message and "RSASHA1" in refused[1].message
    assert "32 octets" in refused[2].message
    assert at_create.code == ResultCode.PARAMETER_VALUE_POLICY_ERROR
    assert await ds_of(client, "policy.test") == (DS_A,)


async def test_max_sig_life_and_urgent_are_unimplemented_options(sandbox: Sandbox) -> None:
    client = await dnssec_session(sandbox)
    await signed(client, "options.test", DS_A)

    life = await client.send(create("life.test"),
                             extensions=(SecDnsCreate((DS_A,), max_sig_life=86400),))
    urgent = await update_ds(client, "options.test", SecDnsUpdate(add=(DS_B,), urgent=True))
    change_life = await update_ds(client, "options.test", SecDnsUpdate(max_sig_life=3600))

    assert life.code == urgent.code == change_life.code == ResultCode.UNIMPLEMENTED_OPTION


async def test_the_key_data_interface_is_refused_with_2306(sandbox: Sandbox) -> None:
    client = await dnssec_session(sandbox)
    key_data = RawElement.from_xml(
        f'<secDNS:create xmlns:secDNS="{SECDNS_NS}"><secDNS:keyData>'
        "<secDNS:flags>257</secDNS:flags><secDNS:protocol>3</secDNS:protocol>"
        "<secDNS:alg>13</secDNS:alg><secDNS:pubKey>AQID</secDNS:pubKey>"
        "</secDNS:keyData></secDNS:create>".encode())

    refused = await client.send(create("keyed.test"), extensions=(key_data,))
    check = await client.send(DomainInfo("keyed.test"))

    # RFC 5910 section 4: a server answers an interface it does not support with 2306.
    assert refused.code == ResultCode.PARAMETER_VALUE_POLICY_ERROR
    assert "keyData" in refused.message
    assert check.code == ResultCode.OBJECT_DOES_NOT_EXIST


async def test_key_data_in_an_update_is_refused_with_2306_too(sandbox: Sandbox) -> None:
    client = await dnssec_session(sandbox)
    await signed(client, "keyed.test", DS_A)
    key = KeyData(257, 3, 13, "AQID")

    added = await update_ds(client, "keyed.test", SecDnsUpdate(add_keys=(key,)))
    removed = await update_ds(client, "keyed.test", SecDnsUpdate(remove_keys=(key,)))

    assert added.code == removed.code == ResultCode.PARAMETER_VALUE_POLICY_ERROR
    assert "keyData" in added.message
    assert await ds_of(client, "keyed.test") == (DS_A,)


async def test_secdns_not_selected_at_login_is_refused(sandbox: Sandbox) -> None:
    client = await sandbox.session()  # logged in with domain-1.0 and no extension

    refused = await signed(client, "unasked.test", DS_A)

    assert refused.code == ResultCode.UNIMPLEMENTED_EXTENSION
    assert "secDNS" in refused.message


async def test_ds_changes_are_refused_under_update_prohibited_statuses(
        sandbox: Sandbox) -> None:
    client = await dnssec_session(sandbox)
    await signed(client, "frozen.test", DS_A)
    await signed(client, "registry.test", DS_A)
    lock = Status("clientUpdateProhibited")
    await client.send(DomainUpdate("frozen.test", add=DomainChanges(statuses=(lock,))))
    await sandbox.server.state.set_server_statuses("registry.test",
                                                   add={"serverUpdateProhibited"})

    client_locked = await update_ds(client, "frozen.test", SecDnsUpdate(add=(DS_B,)))
    unlock_and_change = await update_ds(client, "frozen.test", SecDnsUpdate(add=(DS_B,)),
                                        remove=DomainChanges(statuses=(lock,)))
    server_locked = await update_ds(client, "registry.test", SecDnsUpdate(remove_all=True))

    assert client_locked.code == unlock_and_change.code == server_locked.code \
        == ResultCode.OBJECT_STATUS_PROHIBITS_OPERATION
    assert "serverUpdateProhibited" in server_locked.message
    assert await ds_of(client, "frozen.test") == (DS_A,)
    assert await ds_of(client, "registry.test") == (DS_A,)


async def test_another_registrar_sees_the_ds_records_only_with_the_auth_info(
        sandbox: Sandbox) -> None:
    owner = await dnssec_session(sandbox)
    other = await dnssec_session(sandbox, "registrar-b")
    await signed(owner, "shared.test", DS_A)

    blind = await other.send(DomainInfo("shared.test"))
    with_code = await other.send(DomainInfo("shared.test", auth_info=Secret(AUTH_INFO)))

    assert blind.code == ResultCode.AUTHORIZATION_ERROR
    assert blind.item(SecDnsInfo) is None
    assert with_code.item(SecDnsInfo) == SecDnsInfo((DS_A,))
