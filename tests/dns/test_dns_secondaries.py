"""Knot DNS and NSD as secondaries of regshield: a TSIG-signed AXFR of the signed zone, NOTIFY of
a new serial and IXFR from the journal, and nothing for a secondary holding the wrong secret."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsig
import pytest
from dns_peers import PeerProcess, build_signed_zone, running_server
from dns_secondaries import (
    LOOPBACK_ALLOWED,
    TransferLog,
    edited,
    knot_secondary,
    nsd_secondary,
    wait_for_serial,
)

from regshield.dns.notify import query_serial, send_notify
from regshield.dns.server import DnsServer
from regshield.dns.transfer import TransferService
from regshield.dns.tsig import generate_secret, make_key
from regshield.dns.zonedata import ServedZone, ZoneTable
from regshield.dnssec import KSK_FLAGS, generate_key

ORIGIN = dns.name.from_text("example.")
WWW = dns.name.from_text("www.example.")
KEY = make_key("secondaries.example.", generate_secret())
KEYS = (generate_key(flags=KSK_FLAGS), generate_key())

Secondary = Callable[[Path, dns.name.Name, int, dns.tsig.Key], AbstractContextManager[PeerProcess]]


class Primary:
    """regshield's side: serial 1 of the signed zone, and the transfers served from it."""

    def __init__(self) -> None:
        self.table = ZoneTable([build_signed_zone("example.", keys=KEYS).served])
        self.log = TransferLog()
        self.service = TransferService(self.table, {ORIGIN: {KEY.name}}, on_transfer=self.log)
        self.port = 0

    @property
    def zone(self) -> ServedZone:
        zone = self.table.get(ORIGIN)
        assert zone is not None
        return zone


@pytest.fixture
def primary() -> Iterator[Primary]:
    state = Primary()
    server = DnsServer(state.table, keyring={KEY.name: KEY}, transfers=state.service)
    with running_server(server):
        state.port = server.port
        yield state


async def signed_answer(port: int, name: dns.name.Name,
                        rdtype: dns.rdatatype.RdataType) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, want_dnssec=True)
    query.flags &= ~dns.flags.RD
    return await dns.asyncquery.udp(query, "127.0.0.1", timeout=2, port=port)


@pytest.mark.parametrize("start_secondary", [knot_secondary, nsd_secondary], ids=["knot", "nsd"])
async def test_secondary_serves_the_signed_zone_and_follows_each_new_serial(
        primary: Primary, tmp_path: Path, start_secondary: Secondary) -> None:
    with start_secondary(tmp_path, ORIGIN, primary.port, KEY) as secondary:
        await wait_for_serial(ORIGIN, secondary, KEY, 1)
        first = primary.log.transfers[0]
        assert (first.kind, first.serial, first.key_name) == ("AXFR", 1, KEY.name)

        # It serves what regshield signed: the same records with the same signatures.
        answer = await signed_answer(secondary.port, WWW, dns.rdatatype.A)
        assert answer.flags & dns.flags.AA
        assert answer.find_rrset(answer.answer, WWW, dns.rdataclass.IN, dns.rdatatype.A) \
            == primary.zone.find(WWW, dns.rdatatype.A)
        assert answer.find_rrset(answer.answer, WWW, dns.rdataclass.IN, dns.rdatatype.RRSIG,
                                 dns.rdatatype.A) \
            == primary.zone.find(WWW, dns.rdatatype.RRSIG, dns.rdatatype.A)

        www = dns.rrset.from_text_list(WWW, 3600, "IN", "A", ["192.0.2.10", "192.0.2.11"])
        primary.table.put(edited(primary.zone, 2, www, KEYS[1]))
        result = await send_notify(ORIGIN, 2, "127.0.0.1", secondary.port, KEY,
                                   allowed=LOOPBACK_ALLOWED)
        assert result.outcome == "answered", result
        assert result.round_trip is not None and result.round_trip < 1

        # Refresh timers are two hours: only the NOTIFY makes it ask this soon.
        lag = await wait_for_serial(ORIGIN, secondary, KEY, 2)
        assert lag < 10
        answer = await signed_answer(secondary.port, WWW, dns.rdatatype.A)
        served_www = answer.find_rrset(answer.answer, WWW, dns.rdataclass.IN, dns.rdatatype.A)
        signature = answer.find_rrset(answer.answer, WWW, dns.rdataclass.IN, dns.rdatatype.RRSIG,
                                      dns.rdatatype.A)
        assert served_www == www
        assert signature == primary.zone.find(WWW, dns.rdatatype.RRSIG, dns.rdatatype.A)
        keys = await signed_answer(secondary.port, ORIGIN, dns.rdatatype.DNSKEY)
        dnskey = keys.find_rrset(keys.answer, ORIGIN, dns.rdataclass.IN, dns.rdatatype.DNSKEY)
        dns.dnssec.validate(served_www, signature, {ORIGIN: dnskey})
        last = primary.log.transfers[-1]
        assert (last.kind, last.serial) == ("IXFR", 2)


@pytest.mark.parametrize(("start_secondary", "complaint"), [
    (knot_secondary, "failed to verify TSIG"),
    (nsd_secondary, "tsig error (Bad Signature)"),
], ids=["knot", "nsd"])
async def test_a_secondary_with_the_wrong_secret_gets_nothing(
        primary: Primary, tmp_path: Path, start_secondary: Secondary, complaint: str) -> None:
    wrong = make_key(KEY.name, generate_secret())
    with start_secondary(tmp_path, ORIGIN, primary.port, wrong) as secondary:
        # It refuses our NOTIFY (the signatures do not match), and we refuse its transfers.
        result = await send_notify(ORIGIN, 1, "127.0.0.1", secondary.port, KEY, timeout=0.5,
                                   retries=1, allowed=LOOPBACK_ALLOWED)
        assert result.outcome == "refused", result
        for _ in range(50):
            if complaint in secondary.output():
                break
            await asyncio.sleep(0.1)
        assert complaint in secondary.output()
        assert await query_serial(ORIGIN, "127.0.0.1", secondary.port, wrong,
                                  allowed=LOOPBACK_ALLOWED) is None
        answer = await signed_answer(secondary.port, WWW, dns.rdatatype.A)
        assert answer.answer == []
    assert primary.log.transfers == []


async def test_an_unanswered_notify_is_sent_again_then_reported_as_a_timeout() -> None:
    received: list[bytes] = []

    class Silent(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
            received.append(data)

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Silent, local_addr=("127.0.0.1", 0))
    try:
        port = transport.get_extra_info("sockname")[1]
        result = await send_notify(ORIGIN, 7, "127.0.0.1", port, KEY, timeout=0.05, retries=2,
                                   allowed=LOOPBACK_ALLOWED)
    finally:
        transport.close()

    assert (result.outcome, result.attempts, result.round_trip) == ("timeout", 3, None)
    assert len(received) == 3
    notify = dns.message.from_wire(received[0], keyring={KEY.name: KEY})
    assert notify.opcode() == dns.opcode.NOTIFY and notify.flags & dns.flags.AA
    assert [(r.name, r.rdtype, r[0].serial) for r in notify.answer] == [
        (ORIGIN, dns.rdatatype.SOA, 7)]


async def test_a_server_that_takes_no_notify_is_reported_as_refusing(primary: Primary) -> None:
    result = await send_notify(ORIGIN, 2, "127.0.0.1", primary.port, KEY,
                               allowed=LOOPBACK_ALLOWED)

    assert (result.outcome, result.rcode) == ("refused", dns.rcode.REFUSED)


async def test_the_serial_a_server_serves_is_read_with_the_key(primary: Primary) -> None:
    assert await query_serial(ORIGIN, "127.0.0.1", primary.port, KEY,
                              allowed=LOOPBACK_ALLOWED) == 1
    other = dns.name.from_text("example.org.")
    assert await query_serial(other, "127.0.0.1", primary.port, KEY,
                              allowed=LOOPBACK_ALLOWED) is None
    forged = make_key(KEY.name, generate_secret())
    assert await query_serial(ORIGIN, "127.0.0.1", primary.port, forged,
                              allowed=LOOPBACK_ALLOWED) is None
    # Without the allowance nothing is sent to loopback: no serial, and NOTIFY refused unsent.
    assert await query_serial(ORIGIN, "127.0.0.1", primary.port, KEY) is None
    unsent = await send_notify(ORIGIN, 2, "127.0.0.1", primary.port, KEY)
    assert (unsent.outcome, unsent.attempts) == ("refused", 0)
    assert "loopback" in unsent.detail
