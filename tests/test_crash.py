"""Crash at any moment, lose nothing: `regshield serve` killed with SIGKILL (a real process, its
whole process group), then started again on the same data.

- Killed while it signs and publishes a zone: the zone answers at once, signed and valid, with
  the last serial published before the kill, then with the change that was being published.
- Killed while registry commands are out (registrations through the API, to the sandbox
  registry over EPP): the commands the dead process had claimed are taken over at once and
  settled by asking the registry, and each domain ends as the registry has it.

Each time the event chain verifies, no outbox row is lost, doubled or failed, and what the
killed process had claimed runs again within seconds, not after its lease."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

ZONE = dns.name.from_text("crash.example.")
STARTUP_TIMEOUT = 60.0
SETTLED_STATES = {"confirmed", "refused", "failed"}


@dataclass
class Serve:
    home: Path
    http_port: int
    dns_port: int
    process: asyncio.subprocess.Process | None = None

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
    query = dns.message.make_query(name, rdtype, want_dnssec=True)
    try:
        return await dns.asyncquery.udp(query, "127.0.0.1", port=port, timeout=1)
    except (dns.exception.Timeout, OSError):
        return None


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


async def served_state(port: int) -> tuple[int, str]:
    """The SOA serial and the addresses of h7, every RRset read checked against the keys."""
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


def rows(database: Path, statement: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(database, timeout=10)) as db:
        return list(db.execute(statement))


async def test_a_kill_during_registry_commands_leaves_each_domain_as_the_registry_has_it(
        serve: Serve) -> None:
    home = serve.home
    assert (await cli(home, "init"))[0] == 0
    assert (await cli(home, "account", "create", "crash"))[0] == 0
    code, _, err = await cli(home, "user", "create", "owner@example.net", "--role", "owner",
                             "--account", "crash", "--password-stdin",
                             stdin="a long and unusual passphrase 7\n")
    assert code == 0, err
    code, out, err = await cli(home, "token", "create", "owner@example.net")
    assert code == 0, err
    headers = {"Authorization": f"Bearer {out.strip().splitlines()[-1]}"}
    database, registry = home / "regshield.db", home / "sandbox-registry" / "registry.db"

    await serve.start()
    base = f"http://127.0.0.1:{serve.http_port}/api/v1"
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as api:
        await listening(api)
        contact = await api.post("/contacts", json=contact_body())
        assert contact.status_code == 201, contact.text
        names = [f"crash{index}.test" for index in range(40)]

        async def register(name: str) -> None:
            with contextlib.suppress(httpx.HTTPError):  # the kill cuts some off
                await api.post("/domains", json={
                    "name": name, "registrant": contact.json()["handle"], "years": 1,
                    "nameservers": ["ns1.example.org", "ns2.example.org"]})

        sending = [asyncio.create_task(register(name)) for name in names]
        # The kill lands while a registry command is out: an operation is claimed (committed
        # before the command is sent, settled after the registry's answer is recorded).
        deadline = asyncio.get_running_loop().time() + 60
        while not rows(database, "SELECT 1 FROM domain_operations WHERE state = 'running'"):
            assert asyncio.get_running_loop().time() < deadline, "no command was sent"
            await asyncio.sleep(0.002)
        await serve.kill()
        await asyncio.gather(*sending)
    interrupted = rows(database, "SELECT public_id FROM domain_operations "
                                 "WHERE state = 'running'")
    assert interrupted, "the kill came after every command had settled"

    await serve.start()
    # The dead process's claims are taken over at once (not after their lease, 3 minutes):
    # each is settled by asking the registry what it did, never by sending it again.
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        open_operations = rows(database, "SELECT public_id, state FROM domain_operations "
                                         "WHERE state IN ('pending', 'running', 'unknown')")
        if not open_operations:
            break
        assert asyncio.get_running_loop().time() < deadline, open_operations
        await asyncio.sleep(0.2)
    await serve.kill()

    # Each domain is here as the registry has it: registered at both with the same
    # nameservers, or at neither.
    here = {name: json.loads(nameservers) for name, nameservers in rows(
        database, "SELECT name, nameservers FROM domains WHERE ended_at IS NULL "
                  "AND state = 'active'")}
    there = {name: json.loads(nameservers) for name, nameservers in rows(
        registry, "SELECT name, nameservers FROM domains WHERE deleted_at IS NULL")}
    assert here == there and here, (here, there)
    settled = dict(rows(database, "SELECT public_id, state FROM domain_operations"))
    assert {settled[public_id] for (public_id,) in interrupted} <= SETTLED_STATES
    code, out, err = await cli(home, "events", "verify")
    assert code == 0, out + err
    assert not rows(database, "SELECT id FROM outbox WHERE failed")


async def listening(api: httpx.AsyncClient) -> None:
    deadline = asyncio.get_running_loop().time() + STARTUP_TIMEOUT
    while True:
        with contextlib.suppress(httpx.TransportError):
            if (await api.get("/openapi.json")).status_code == 200:
                return
        assert asyncio.get_running_loop().time() < deadline, "HTTP never answered"
        await asyncio.sleep(0.1)
