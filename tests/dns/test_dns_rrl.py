"""Response rate limiting: per-prefix buckets, slip, the allow-list, a flood against the server."""

from __future__ import annotations

import socket
import time

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest
from dns_peers import LOOPBACK, build_signed_zone, running_server

from regshield.dns import rrl, server
from regshield.dns.rrl import RateLimiter, Verdict
from regshield.dns.server import DnsServer
from regshield.dns.udp import native
from regshield.dns.zonedata import ZoneTable

LEGITIMATE_CLIENT = "127.0.1.1"  # another /24 of the loopback network


@pytest.fixture(autouse=True, params=["c", "python"])
def buckets(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test twice: with the buckets and the UDP loop in C, and with those in Python."""
    if request.param == "python":
        monkeypatch.setattr(rrl, "native", None)
        monkeypatch.setattr(server, "native", None)
    else:
        assert native is not None, "regshield.dns._udp was not built"
    return str(request.param)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_prefix_gets_its_burst_then_its_rate_and_every_second_limited_response_slips() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, slip=2, clock=clock)
    first = [limiter.check("192.0.2.7") for _ in range(14)]
    assert first == [Verdict.SEND] * 10 + [Verdict.DROP, Verdict.SLIP] * 2
    clock.now += 0.5  # half a second refills five tokens
    later = [limiter.check("192.0.2.7") for _ in range(6)]
    assert later == [Verdict.SEND] * 5 + [Verdict.DROP]
    assert (limiter.counters.answered, limiter.counters.dropped,
            limiter.counters.slipped) == (15, 3, 2)


def test_addresses_in_one_ipv4_24_or_ipv6_56_share_a_bucket() -> None:
    limiter = RateLimiter(2, slip=0, clock=FakeClock())
    assert [limiter.check(a) for a in ("192.0.2.1", "192.0.2.200", "192.0.2.9")] == [
        Verdict.SEND, Verdict.SEND, Verdict.DROP,
    ]
    assert limiter.check("192.0.3.1") is Verdict.SEND
    assert [limiter.check(a) for a in ("2001:db8:0:1::1", "2001:db8:0:ff::2",
                                        "2001:db8:0:2::3")] == [
        Verdict.SEND, Verdict.SEND, Verdict.DROP,
    ]
    assert limiter.check("2001:db8:0:100::1") is Verdict.SEND  # another /56


def test_slip_zero_drops_every_limited_response_and_slip_one_truncates_each() -> None:
    dropping = RateLimiter(1, slip=0, clock=FakeClock())
    assert [dropping.check("198.51.100.1") for _ in range(4)] == [Verdict.SEND] + [
        Verdict.DROP] * 3
    truncating = RateLimiter(1, slip=1, clock=FakeClock())
    assert [truncating.check("198.51.100.1") for _ in range(4)] == [Verdict.SEND] + [
        Verdict.SLIP] * 3


def test_the_allow_list_is_never_limited() -> None:
    limiter = RateLimiter(1, allow=["203.0.113.0/28", "2001:db8::53"], clock=FakeClock())
    assert all(limiter.check("203.0.113.5") is Verdict.SEND for _ in range(100))
    assert all(limiter.check("2001:db8::53") is Verdict.SEND for _ in range(100))
    assert limiter.check("203.0.113.99") is Verdict.SEND
    assert limiter.check("203.0.113.99") is not Verdict.SEND  # outside the /28
    assert limiter.counters.answered == 201


def test_the_allow_list_can_be_replaced_while_running() -> None:
    limiter = RateLimiter(1, slip=0, allow=["192.0.2.1"], clock=FakeClock())
    assert [limiter.check("192.0.2.1") for _ in range(3)] == [Verdict.SEND] * 3
    limiter.allow_only(["198.51.100.7"])
    assert [limiter.check("192.0.2.1") for _ in range(2)] == [Verdict.SEND, Verdict.DROP]
    assert [limiter.check("198.51.100.7") for _ in range(3)] == [Verdict.SEND] * 3


def test_a_flood_from_more_prefixes_than_the_table_holds_leaves_each_prefix_its_rules() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, slip=0, table_size=64, clock=clock)
    for number in range(20_000):  # 20,000 /24s against a table of 64
        limiter.check(f"10.{number // 256 % 256}.{number % 256}.1")
    assert [limiter.check("192.0.2.1") for _ in range(3)] == [Verdict.SEND] * 2 + [
        Verdict.DROP]
    clock.now += 0.5  # one token back
    assert [limiter.check("192.0.2.77") for _ in range(2)] == [Verdict.SEND, Verdict.DROP]


def test_ipv4_mapped_ipv6_addresses_share_the_bucket_of_their_ipv4_24() -> None:
    limiter = RateLimiter(2, slip=0, clock=FakeClock())
    assert [limiter.check(a) for a in ("192.0.2.1", "::ffff:192.0.2.200", "192.0.2.9")] == [
        Verdict.SEND, Verdict.SEND, Verdict.DROP,
    ]


def test_a_limiter_refuses_a_rate_of_zero() -> None:
    with pytest.raises(ValueError, match="responses_per_second"):
        RateLimiter(0)


def flood(port: int, count: int, seconds: float) -> tuple[int, int]:
    """Send `count` queries from 127.0.0.1 over `seconds`; count full and truncated answers."""
    wire = dns.message.make_query("www.regshield.test.", "A").to_wire()
    counts = [0, 0]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, 0))
        sock.setblocking(False)
        start = time.monotonic()
        for index in range(count):
            sock.sendto(wire, (LOOPBACK, port))
            pause = start + seconds * (index + 1) / count - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            receive_all(sock, counts)
        time.sleep(0.2)
        receive_all(sock, counts)
    return counts[0], counts[1]


def receive_all(sock: socket.socket, counts: list[int]) -> None:
    """Count the responses waiting on `sock`: full ones in counts[0], truncated in counts[1]."""
    while True:
        try:
            response = sock.recv(4096)
        except BlockingIOError:
            return
        counts[1 if response[2] & 0x02 else 0] += 1


def legitimate_query(port: int) -> bool:
    query = dns.message.make_query("www.regshield.test.", "A")
    try:
        response = dns.query.udp(query, LOOPBACK, port=port, timeout=1, source=LEGITIMATE_CLIENT)
    except dns.exception.Timeout:
        return False
    return response.rcode() == dns.rcode.NOERROR and bool(response.answer)


def test_a_spoofed_flood_is_answered_at_a_bounded_rate_while_others_are_served() -> None:
    table = ZoneTable([build_signed_zone().served])
    limiter = RateLimiter(50, slip=2)
    with running_server(DnsServer(table, rrl=limiter)) as server:
        answered, truncated = flood(server.port, 1000, 1.0)
        # One second of flood: the burst (50) plus one second's rate (50), with slack for timing.
        assert answered <= 50 + 50 * 1.5
        assert answered >= 50
        assert truncated > 100  # every second limited response slips (TC=1)
        assert limiter.counters.dropped > 300
        assert all(legitimate_query(server.port) for _ in range(20))
        # TCP cannot be spoofed and is never limited.
        query = dns.message.make_query("www.regshield.test.", "A")
        for _ in range(5):
            assert dns.query.tcp(query, LOOPBACK, port=server.port, timeout=2).answer


def test_an_allow_listed_secondary_is_answered_in_full() -> None:
    table = ZoneTable([build_signed_zone().served])
    limiter = RateLimiter(10, allow=["127.0.0.0/24"])
    with running_server(DnsServer(table, rrl=limiter)) as server:
        answered, truncated = flood(server.port, 300, 0.3)
    assert (answered, truncated) == (300, 0)


def test_a_slipped_response_is_truncated_with_no_answer() -> None:
    table = ZoneTable([build_signed_zone().served])
    limiter = RateLimiter(1, burst=1, slip=1)
    with running_server(DnsServer(table, rrl=limiter)) as server:
        query = dns.message.make_query("www.regshield.test.", "A", want_dnssec=True)
        first = dns.query.udp(query, LOOPBACK, port=server.port, timeout=2)
        second = dns.query.udp(query, LOOPBACK, port=server.port, timeout=2,
                               ignore_trailing=True)
    assert first.answer and not first.flags & dns.flags.TC
    assert second.flags & dns.flags.TC and not second.answer
    assert second.question == query.question and second.edns == 0
