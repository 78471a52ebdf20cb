"""Crash at any moment, lose nothing: `regshield serve` killed with SIGKILL (a real process, its
whole process group), then started again on the same data.

- Killed while it signs and publishes a zone: the zone answers at once, signed and valid, with
  the last serial published before the kill, then with the change that was being published.
- Killed while registry commands are out (registrations through the API, to the sandbox
  registry over EPP; nameserver changes made with a TOTP step-up): the commands the dead
  process had claimed are taken over at once and settled by asking the registry, and each
  domain ends as the registry has it, each change that took effect noticed once.
- Killed during a step of a ZSK rollover (the new key taking over, the zone re-signed): every
  answer validates from the zone's KSK, and the step completes after the restart.

Each time the event chain verifies, no outbox row is lost, doubled or failed, and what the
killed process had claimed runs again within seconds, not after its lease."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import dns.asyncquery
import dns.dnssec
import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import httpx
import pytest
from contact_samples import contact_body
from test_serve import REGSHIELD, clean_env, cli, free_port

from regshield.security.totp import code_at

ZONE = dns.name.from_text("crash.example.")
STARTUP_TIMEOUT = 60.0
SETTLED_STATES = {"confirmed", "refused", "failed"}
_T = TypeVar("_T")


@dataclass
class Serve:
    home: Path
    http_port: int
    dns_port: int
    process: asyncio.subprocess.Process | None = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/api/v1"

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            REGSHIELD, "--home", str(self.home), "serve", "--http",
            f"127.0.0.1:{self.http_port}", "--dns", f"127.0.0.1:{self.dns_port}",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL, start_new_session=True,
            # One DNS process: each query of the checks below comes from a new source port,
            # and with several processes (SO_REUSEPORT) two of them could be answered by two
            # processes a moment apart in their catching up (tests/dns/test_dns_workers.py
            # covers that they do catch up).
            env={**clean_env(), "REGSHIELD_SANDBOX_LISTEN": f"127.0.0.1:{free_port()}",
                 "REGSHIELD_SANDBOX_DNS_LISTEN": "off", "REGSHIELD_DNS_WORKERS": "1"})

    async def kill(self) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        await self.process.wait()


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Serve]:
    running = Serve(tmp_path / "home", free_port(), free_port())
    try:
        yield running
    finally:
        if running.process is not None and running.process.returncode is None:
            await running.kill()


def zone_file(hosts: int, address: str) -> str:
    lines = [f"$ORIGIN {ZONE}", "@ 3600 IN NS ns1.regshield.test.",
             "@ 3600 IN NS ns2.regshield.test."]
    lines += [f"h{index} 300 IN A {address}" for index in range(hosts)]
    return "\n".join(lines) + "\n"


async def ask(port: int, name: dns.name.Name, rdtype: int) -> dns.message.Message | None:
    """The answer, or None while the zone is not served yet: no DNS listening, or a large
    zone still being read at start (SERVFAIL, `ZoneTable.load`)."""
    query = dns.message.make_query(name, rdtype, want_dnssec=True)
    try:
        response = await dns.asyncquery.udp(query, "127.0.0.1", port=port, timeout=1)
    except (dns.exception.Timeout, OSError):
        return None
    return None if response.rcode() == dns.rcode.SERVFAIL else response


class NotListening(Exception):
    pass


async def signed_answer(port: int, name: dns.name.Name, rdtype: int,
                        dnskeys: dns.rrset.RRset) -> dns.rrset.RRset:
    """The RRset at `name`, its signature checked against the zone's DNSKEY RRset."""
    response = await ask(port, name, rdtype)
    if response is None:
        raise NotListening
    assert response.rcode() == dns.rcode.NOERROR, response
    rrset = response.get_rrset(response.answer, name, dns.rdataclass.IN, rdtype)
    rrsigs = response.get_rrset(response.answer, name, dns.rdataclass.IN,
                                dns.rdatatype.RRSIG, rdtype)
    assert rrset is not None and rrsigs is not None, response
    dns.dnssec.validate(rrset, rrsigs, {ZONE: dnskeys})
    return rrset


async def consistent(read: Callable[[], Awaitable[_T]], port: int) -> _T:
    """What `read` finds, with the SOA serial the same before and after it: each question is
    answered from the snapshot served at that moment, and a new serial swapped in between two
    of them would mix two snapshots (a few tries; a zone that never holds still fails)."""
    async def serial() -> int:
        response = await ask(port, ZONE, dns.rdatatype.SOA)
        if response is None:
            raise NotListening
        soa = response.get_rrset(response.answer, ZONE, dns.rdataclass.IN, dns.rdatatype.SOA)
        assert soa is not None, response
        return int(soa[0].serial)

    for _ in range(5):
        before = await serial()
        try:
            found = await read()
        except (AssertionError, dns.dnssec.ValidationFailure):
            if await serial() == before:
                raise  # one snapshot, and wrong
            continue
        if await serial() == before:
            return found
    raise AssertionError("the served serial kept changing")


async def served_state(port: int) -> tuple[int, str]:
    """The SOA serial and the addresses of h7, every RRset read checked against the keys, from
    one snapshot."""
    return await consistent(lambda: _served_state(port), port)


async def _served_state(port: int) -> tuple[int, str]:
    response = await ask(port, ZONE, dns.rdatatype.DNSKEY)
    if response is None:
        raise NotListening
    dnskeys = response.get_rrset(response.answer, ZONE, dns.rdataclass.IN,
                                 dns.rdatatype.DNSKEY)
    assert dnskeys is not None, response
    assert await signed_answer(port, ZONE, dns.rdatatype.DNSKEY, dnskeys) == dnskeys
    soa = await signed_answer(port, ZONE, dns.rdatatype.SOA, dnskeys)
    host = await signed_answer(port, dns.name.from_text("h7", ZONE), dns.rdatatype.A, dnskeys)
    return int(soa[0].serial), ",".join(sorted(rdata.to_text() for rdata in host))


async def until(done: Callable[[tuple[int, str]], bool], port: int, seconds: float, *,
                strict: bool) -> list[tuple[int, str]]:
    """Every state served until `done`; `strict`: from the first answer on, every answer is
    the zone whole and valid (before it, nothing answers)."""
    deadline = asyncio.get_running_loop().time() + seconds
    seen: list[tuple[int, str]] = []
    while True:
        try:
            state = await served_state(port)
        except NotListening:
            assert not seen, "DNS stopped answering"
        except (AssertionError, dns.dnssec.ValidationFailure):
            if strict:
                raise
        else:
            if state not in seen:
                seen.append(state)
            if done(state):
                return seen
        assert asyncio.get_running_loop().time() < deadline, f"not served in time: {seen}"
        await asyncio.sleep(0.05)


def outbox(home: Path) -> list[tuple[str, bool, bool]]:
    with sqlite3.connect(home / "regshield.db") as db:
        return [(kind, completed is not None, bool(failed)) for kind, completed, failed in
                db.execute("SELECT kind, completed_at, failed FROM outbox ORDER BY id")]


def leased(home: Path) -> int:
    """How many rows a worker has claimed and not settled."""
    with sqlite3.connect(home / "regshield.db") as db:
        return int(db.execute("SELECT count(*) FROM outbox WHERE claimed_by IS NOT NULL "
                              "AND completed_at IS NULL").fetchone()[0])


async def test_a_kill_during_publication_serves_the_last_good_serial_then_the_change(
        serve: Serve) -> None:
    home = serve.home
    assert (await cli(home, "init"))[0] == 0
    assert (await cli(home, "account", "create", "crash"))[0] == 0
    code, out, err = await cli(home, "zone", "import", ZONE.to_text(), "-", "--account",
                               "crash", stdin=zone_file(50, "192.0.2.1"))
    assert code == 0, err
    await serve.start()
    first = (await until(lambda state: state[1] == "192.0.2.1", serve.dns_port,
                         STARTUP_TIMEOUT, strict=False))[-1]

    # A change large enough that signing it takes a while; the kill lands while the
    # publisher works on it (the outbox picks it up within a second).
    code, out, err = await cli(home, "zone", "import", ZONE.to_text(), "-", "--force",
                               stdin=zone_file(12_000, "198.51.100.9"))
    assert code == 0, err
    changed = (int(out.split(" serial ")[1].split(":")[0]), "198.51.100.9")
    await asyncio.sleep(2.0)
    before_kill = await served_state(serve.dns_port)
    await serve.kill()
    assert before_kill in (first, changed)
    queued = len(outbox(home))
    assert leased(home) == 1  # the publication the kill interrupted

    await serve.start()
    # From the first answer on: the last serial published before the kill, whole and valid,
    # then the change the kill interrupted, and nothing else in between.
    seen = await until(lambda state: state == changed, serve.dns_port, 120, strict=True)
    assert seen in ([first, changed], [changed]) and seen[0] in (before_kill, changed), seen
    # The dead process's lease is released at the start, not waited out (5 minutes): the
    # publication it had claimed is run again (changing nothing) within seconds.
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        rows = outbox(home)
        if all(completed for _, completed, _ in rows[:queued]):
            break
        assert asyncio.get_running_loop().time() < deadline, rows
        await asyncio.sleep(0.2)
    await serve.kill()
    rows = outbox(home)

    code, out, err = await cli(home, "events", "verify")
    assert code == 0, out + err
    # Nothing queued before the kill was lost, doubled or failed.
    assert len(rows) >= queued and not any(failed for _, _, failed in rows), rows
    assert [kind for kind, _, _ in rows[:queued]] == ["dns:publish"] * queued


async def test_a_kill_during_a_key_rollover_step_keeps_the_zone_valid_from_its_anchor(
        serve: Serve) -> None:
    """A ZSK rollover (pre-publication) is started over the API with a step-up; its next step
    (the new key signs everything, a full re-signing of the zone) is killed midway. From the
    first answer after the restart, every answer validates from the zone's KSK, the trust
    anchor that never changes in a ZSK rollover, and the step completes."""
    home = serve.home
    await owner_with_a_token(home)
    code, _, err = await cli(home, "zone", "import", ZONE.to_text(), "-", "--account",
                             "crash", stdin=zone_file(3_000, "192.0.2.1"))
    assert code == 0, err
    database = home / "regshield.db"
    await serve.start()
    first = (await until(lambda state: state[1] == "192.0.2.1", serve.dns_port,
                         STARTUP_TIMEOUT, strict=False))[-1]
    anchor = await trust_anchor(serve.dns_port)
    old_zsk = await data_signer(serve.dns_port, anchor)
    async with httpx.AsyncClient(base_url=serve.api, timeout=30) as api:
        headers = await stepped_up_session(api)
        started = await api.post(f"/zones/{ZONE.to_text(omit_final_dot=True)}/rollover",
                                 headers=headers, json={"role": "zsk"})
        assert started.status_code == 200, started.text
    (new_zsk_id,) = started.json()["generated"]
    # The new key is published beside the old one; the old one still signs.
    deadline = asyncio.get_running_loop().time() + 60
    while len(await keys_served(serve.dns_port, anchor)) < 3:
        assert asyncio.get_running_loop().time() < deadline, "the new key was not published"
        await asyncio.sleep(0.1)
    assert await data_signer(serve.dns_port, anchor) == old_zsk
    await all_sent(home)
    await serve.kill()

    # The next step waits until the new key is in every cache (Ipub, two hours by default):
    # stopped, the key is made to have been published three hours ago.
    (timers,) = rows(database, "SELECT timers FROM zone_keys WHERE public_id = ?", new_zsk_id)
    published = {**json.loads(timers[0]), "published": (
        datetime.now(UTC) - timedelta(hours=3)).isoformat()}
    with contextlib.closing(sqlite3.connect(database)) as db, db:
        db.execute("UPDATE zone_keys SET timers = ? WHERE public_id = ?",
                   (json.dumps(published), new_zsk_id))
        db.execute("UPDATE zones SET keys_due_at = NULL")
    queued = len(outbox(home))

    # At start the key sweep takes the step; the kill lands while the zone is re-signed.
    await serve.start()
    deadline = asyncio.get_running_loop().time() + STARTUP_TIMEOUT
    while not (rows(database, "SELECT 1 FROM zone_keys WHERE public_id = ? "
                              "AND timers LIKE '%\"active\"%'", new_zsk_id) and leased(home)):
        assert asyncio.get_running_loop().time() < deadline, outbox(home)
        await asyncio.sleep(0.002)
    await serve.kill()
    assert len(outbox(home)) == queued + 1 and leased(home) == 1  # the re-signing, cut off

    await serve.start()
    signers = await until_signed_by_another(old_zsk, serve.dns_port, anchor, 120)
    assert signers in ([old_zsk, signers[-1]], [signers[-1]]), signers
    assert len(await keys_served(serve.dns_port, anchor)) == 3  # the old key stays published
    assert (await served_state(serve.dns_port))[1] == first[1]
    await all_sent(home)
    await serve.kill()
    tags = [tag for (tag,) in rows(database, "SELECT tag FROM events WHERE tag LIKE "
                                             "'dnssec:%' ORDER BY seq")]
    assert tags.count("dnssec:rollover:requested") == 1, tags
    await assert_nothing_lost(home)


async def all_sent(home: Path) -> None:
    """Wait until every outbox row is completed."""
    deadline = asyncio.get_running_loop().time() + 60
    while not all(completed for _, completed, _ in outbox(home)):
        assert asyncio.get_running_loop().time() < deadline, outbox(home)
        await asyncio.sleep(0.1)


async def trust_anchor(port: int) -> dns.rrset.RRset:
    """The zone's KSK (the DNSKEY with the SEP flag), as a resolver configured with it has."""
    response = await ask(port, ZONE, dns.rdatatype.DNSKEY)
    assert response is not None
    dnskeys = response.get_rrset(response.answer, ZONE, dns.rdataclass.IN,
                                 dns.rdatatype.DNSKEY)
    assert dnskeys is not None, response
    ksks = [key for key in dnskeys if key.flags & 1]
    assert len(ksks) == 1, dnskeys
    return dns.rrset.from_rdata_list(ZONE, dnskeys.ttl, ksks)


async def keys_served(port: int, anchor: dns.rrset.RRset) -> dns.rrset.RRset:
    """The DNSKEY RRset, its signature checked against the trust anchor."""
    return await signed_answer(port, ZONE, dns.rdatatype.DNSKEY, anchor)


async def data_signer(port: int, anchor: dns.rrset.RRset) -> int:
    """The key tag that signs the zone's data (the SOA and h7's addresses), each RRset
    validated through the DNSKEY RRset from the trust anchor, from one snapshot."""
    return await consistent(lambda: _data_signer(port, anchor), port)


async def _data_signer(port: int, anchor: dns.rrset.RRset) -> int:
    dnskeys = await keys_served(port, anchor)
    signers = set()
    for name, rdtype in ((ZONE, dns.rdatatype.SOA),
                         (dns.name.from_text("h7", ZONE), dns.rdatatype.A)):
        response = await ask(port, name, rdtype)
        if response is None:
            raise NotListening
        await signed_answer(port, name, rdtype, dnskeys)
        rrsigs = response.get_rrset(response.answer, name, dns.rdataclass.IN,
                                    dns.rdatatype.RRSIG, rdtype)
        assert rrsigs is not None and len(rrsigs) == 1, response
        signers.add(rrsigs[0].key_tag)
    assert len(signers) == 1, signers  # a zone is signed by one ZSK at a time
    return signers.pop()


async def until_signed_by_another(old: int, port: int, anchor: dns.rrset.RRset,
                                  seconds: float) -> list[int]:
    """Every ZSK seen signing the zone until one other than `old` does; from the first answer
    on, every answer validates from the trust anchor."""
    deadline = asyncio.get_running_loop().time() + seconds
    seen: list[int] = []
    while True:
        try:
            signer = await data_signer(port, anchor)
        except NotListening:
            assert not seen, "DNS stopped answering"
        else:
            if signer not in seen:
                seen.append(signer)
            if signer != old:
                return seen
        assert asyncio.get_running_loop().time() < deadline, f"not served in time: {seen}"
        await asyncio.sleep(0.05)


def rows(database: Path, statement: str, *parameters: Any) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(database, timeout=10)) as db:
        return list(db.execute(statement, parameters))


async def test_a_kill_during_registry_commands_leaves_each_domain_as_the_registry_has_it(
        serve: Serve) -> None:
    home = serve.home
    headers = await owner_with_a_token(home)
    await serve.start()
    async with httpx.AsyncClient(base_url=serve.api, headers=headers, timeout=30) as api:
        await listening(api)
        contact = await api.post("/contacts", json=contact_body())
        assert contact.status_code == 201, contact.text
        names = [f"crash{index}.test" for index in range(40)]
        interrupted = await kill_while_commands_run(serve, [
            api.post("/domains", json={
                "name": name, "registrant": contact.json()["handle"], "years": 1,
                "nameservers": ["ns1.example.org", "ns2.example.org"]}) for name in names])

    await serve.start()
    await every_operation_settled(serve, interrupted)
    await serve.kill()
    assert_as_the_registry_has_it(home)
    await assert_nothing_lost(home)


async def test_a_kill_during_stepped_up_updates_leaves_each_delegation_as_the_registry_has_it(
        serve: Serve) -> None:
    """Nameserver changes need a step-up (a second factor proved within minutes): the owner
    enrolls TOTP and signs in with a one-time code over the real API, and the kill lands while
    the changes are out at the registry."""
    home = serve.home
    token = await owner_with_a_token(home)
    await serve.start()
    async with httpx.AsyncClient(base_url=serve.api, timeout=30) as api:
        await listening(api)
        headers = await stepped_up_session(api)
        contact = await api.post("/contacts", json=contact_body(), headers=headers)
        assert contact.status_code == 201, contact.text
        names = [f"moved{index}.test" for index in range(30)]
        for name in names:
            created = await api.post("/domains", headers=headers, json={
                "name": name, "registrant": contact.json()["handle"], "years": 1,
                "nameservers": ["ns1.example.org", "ns2.example.org"]})
            assert created.status_code in (201, 202), created.text
        await every_operation_settled(serve, [])
        # Without the step-up (the owner's API token, no one-time code) the change is
        # refused before anything is sent.
        refused = await api.put(f"/domains/{names[0]}/nameservers", json={
            "nameservers": ["ns9.example.net"]}, headers=token)
        assert refused.status_code == 403, refused.text
        assert refused.json()["type"].endswith("step-up-required"), refused.text
        interrupted = await kill_while_commands_run(serve, [
            api.put(f"/domains/{name}/nameservers", headers=headers,
                    json={"nameservers": ["ns3.example.net", "ns4.example.net"]})
            for name in names])

    await serve.start()
    await every_operation_settled(serve, interrupted)
    await serve.kill()
    as_here = assert_as_the_registry_has_it(home)
    assert set(as_here) == set(names)
    moved = sorted(name for name, nameservers in as_here.items()
                   if set(nameservers) == {"ns3.example.net", "ns4.example.net"})
    assert moved, as_here
    # Each change that took effect, and only those, was noticed once, as a change made
    # without a kill is.
    noticed = [json.loads(payload)["domain"] for (payload,) in rows(
        home / "regshield.db", "SELECT payload FROM outbox WHERE kind = 'notify:email'")
        if json.loads(payload)["change"] == "nameservers"]
    assert sorted(noticed) == moved, (noticed, moved)
    await assert_nothing_lost(home)


PASSWORD = "a long and unusual passphrase 7"


async def owner_with_a_token(home: Path) -> dict[str, str]:
    """An account with an owner, and headers with an API token of the owner."""
    assert (await cli(home, "init"))[0] == 0
    assert (await cli(home, "account", "create", "crash"))[0] == 0
    code, _, err = await cli(home, "user", "create", "owner@example.net", "--role", "owner",
                             "--account", "crash", "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 0, err
    code, out, err = await cli(home, "token", "create", "owner@example.net")
    assert code == 0, err
    return {"Authorization": f"Bearer {out.strip().splitlines()[-1]}"}


async def stepped_up_session(api: httpx.AsyncClient) -> dict[str, str]:
    """The owner enrolls TOTP, then signs in with a one-time code: the session's second factor
    is proved now, and its changes need no code for the step-up window."""
    async def signed_in(otp: str | None = None) -> dict[str, str]:
        login = await api.post("/auth/login", json={
            "email": "owner@example.net", "password": PASSWORD,
            **({"otp": otp} if otp else {})})
        assert login.status_code == 200, login.text
        return {"Authorization": f"Bearer {login.json()['token']}"}

    headers = await signed_in()
    started = await api.post("/auth/mfa/totp", headers=headers, json={"password": PASSWORD})
    assert started.status_code == 200, started.text
    secret, now = started.json()["secret"], datetime.now(UTC)
    confirmed = await api.post("/auth/mfa/totp/confirm", headers=headers,
                               json={"otp": code_at(secret, now)})
    assert confirmed.status_code == 200, confirmed.text
    # A code is accepted once: the sign-in uses the next time step's (within the drift).
    return await signed_in(code_at(secret, now + timedelta(seconds=30)))


async def kill_while_commands_run(serve: Serve, requests: list[Awaitable[httpx.Response]]
                                  ) -> list[str]:
    """Send `requests` at once and kill `serve` while a registry command is out: an operation
    is claimed (committed before the command is sent, settled after the registry's answer is
    recorded). The operations the kill left running."""
    async def send(request: Awaitable[httpx.Response]) -> None:
        with contextlib.suppress(httpx.HTTPError):  # the kill cuts some off
            await request

    database = serve.home / "regshield.db"
    sending = [asyncio.create_task(send(request)) for request in requests]
    deadline = asyncio.get_running_loop().time() + 60
    while not rows(database, "SELECT 1 FROM domain_operations WHERE state = 'running'"):
        assert asyncio.get_running_loop().time() < deadline, "no command was sent"
        await asyncio.sleep(0.002)
    await serve.kill()
    await asyncio.gather(*sending)
    interrupted = [public_id for (public_id,) in rows(
        database, "SELECT public_id FROM domain_operations WHERE state = 'running'")]
    assert interrupted, "the kill came after every command had settled"
    return interrupted


async def every_operation_settled(serve: Serve, interrupted: list[str]) -> None:
    """Wait until no operation is open. The dead process's claims are taken over at once (not
    after their lease, 3 minutes): each is settled by asking the registry what it did, never by
    sending it again."""
    database = serve.home / "regshield.db"
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        open_operations = rows(database, "SELECT public_id, state FROM domain_operations "
                                         "WHERE state IN ('pending', 'running', 'unknown')")
        if not open_operations:
            break
        assert asyncio.get_running_loop().time() < deadline, open_operations
        await asyncio.sleep(0.2)
    settled = dict(rows(database, "SELECT public_id, state FROM domain_operations"))
    assert {settled[public_id] for public_id in interrupted} <= SETTLED_STATES


def assert_as_the_registry_has_it(home: Path) -> dict[str, list[str]]:
    """Each domain is here as the registry has it: registered at both with the same
    nameservers, or at neither. The domains and their nameservers."""
    here = {name: json.loads(nameservers) for name, nameservers in rows(
        home / "regshield.db", "SELECT name, nameservers FROM domains "
                               "WHERE ended_at IS NULL AND state = 'active'")}
    there = {name: json.loads(nameservers) for name, nameservers in rows(
        home / "sandbox-registry" / "registry.db",
        "SELECT name, nameservers FROM domains WHERE deleted_at IS NULL")}
    assert here == there and here, (here, there)
    return here


async def assert_nothing_lost(home: Path) -> None:
    code, out, err = await cli(home, "events", "verify")
    assert code == 0, out + err
    assert not rows(home / "regshield.db", "SELECT id FROM outbox WHERE failed")


async def listening(api: httpx.AsyncClient) -> None:
    deadline = asyncio.get_running_loop().time() + STARTUP_TIMEOUT
    while True:
        with contextlib.suppress(httpx.TransportError):
            if (await api.get("/openapi.json")).status_code == 200:
                return
        assert asyncio.get_running_loop().time() < deadline, "HTTP never answered"
        await asyncio.sleep(0.1)
