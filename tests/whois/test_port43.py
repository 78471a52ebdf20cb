"""WHOIS on port 43: Debian's `whois` client against the real server, redaction as RDAP does
it, and clear one-line refusals for whatever else arrives on the socket."""

from __future__ import annotations

import asyncio
import re
import shutil
from datetime import timedelta

import httpx
import pytest
from domains.conftest import Holder

from regshield.clock import FakeClock
from regshield.rdds.whois import MAX_QUERY_BYTES, QueryError, WhoisServer, parse_query
from regshield.services import Services
from whois.conftest import DOMAIN, REGISTRANT

WHOIS = shutil.which("whois") or "/usr/bin/whois"
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


async def whois_client(server: WhoisServer, query: str) -> str:
    """Run the Debian whois client against the server (asynchronously: the server runs in this
    test's event loop)."""
    process = await asyncio.create_subprocess_exec(
        WHOIS, "-h", "127.0.0.1", "-p", str(server.port), query,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    return out.decode("utf-8")


async def raw_query(server: WhoisServer, payload: bytes, *, close_after: bool = True) -> str:
    """Send bytes as they are and read the whole answer until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(payload)
        await writer.drain()
        if close_after and writer.can_write_eof():
            writer.write_eof()
        return (await asyncio.wait_for(reader.read(), 30)).decode("utf-8")
    finally:
        writer.close()


def fields(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        label, sep, value = line.partition(": ")
        if sep and not line.startswith((">>>", "TERMS", " ")):
            found.setdefault(label.strip(), []).append(value.strip())
        elif line.endswith(":"):
            found.setdefault(line[:-1].strip(), []).append("")
    return found


async def test_the_whois_client_gets_the_record_with_personal_data_redacted(
        registered: str, whois_server: WhoisServer, services: Services) -> None:
    text = await whois_client(whois_server, registered)

    seen = fields(text)
    assert seen["Domain Name"] == [DOMAIN]
    assert seen["Registrar URL"] == [services.settings.registrar_url]
    assert ISO_UTC.fullmatch(seen["Creation Date"][0])
    assert ISO_UTC.fullmatch(seen["Registrar Registration Expiration Date"][0])
    assert seen["Registrar Registration Expiration Date"][0].startswith("2028-11-27")
    assert "clientTransferProhibited https://icann.org/epp#clientTransferProhibited" in \
        seen["Domain Status"]
    assert seen["Name Server"] == ["ns1.example.net", "ns2.example.net"]
    assert seen["DNSSEC"] == ["unsigned"]
    # Published: state and country. Redacted: everything that identifies the registrant.
    assert seen["Registrant State/Province"] == ["BB"]
    assert seen["Registrant Country"] == ["DE"]
    for label in ("Registrant Name", "Registrant Organization", "Registrant Street",
                  "Registrant City", "Registrant Postal Code", "Registrant Phone",
                  "Registry Registrant ID", "Tech Name", "Tech Phone", "Registry Tech ID"):
        assert seen[label] == ["REDACTED FOR PRIVACY"], label
    form = f"{services.settings.public_url}/contact/{DOMAIN}/registrant"
    assert form in seen["Registrant Email"][0]
    assert f"{services.settings.public_url}/contact/{DOMAIN}/technical" in seen["Tech Email"][0]
    assert "URL of the ICANN Whois Inaccuracy Complaint Form: https://www.icann.org/wicf/" \
        in text
    assert re.search(r">>> Last update of WHOIS database: \S+Z <<<", text)
    assert "TERMS OF USE" in text
    for secret in ("Jane", "Registrant Holding", "Invalidenstrasse", "Hinterhaus", "Potsdam",
                   "14467", "98765432", "jane.registrant", "@example.net",
                   "Invalidenstrasse 116"):
        assert secret not in text, secret
    assert REGISTRANT["email"] not in text


async def test_fields_the_registrant_consented_to_publish_are_shown(
        api: httpx.AsyncClient, holder: Holder, registered: str,
        whois_server: WhoisServer) -> None:
    consent = await api.put(f"/api/v1/domains/{DOMAIN}/publish-consent", headers=holder.otp(),
                            json={"fields": ["organization"]})
    assert consent.status_code == 200, consent.text

    seen = fields(await whois_client(whois_server, DOMAIN))

    assert seen["Registrant Organization"] == [REGISTRANT["organization"]]
    assert seen["Registrant Name"] == ["REDACTED FOR PRIVACY"]
    assert ISO_UTC.fullmatch(seen["Updated Date"][0])


async def test_a_u_label_query_finds_the_same_record_as_the_a_label(
        registered: str, whois_server: WhoisServer) -> None:
    upper = await raw_query(whois_server, b"EXAMPLE.TEST.\r\n")
    assert fields(upper)["Domain Name"] == [DOMAIN]


async def test_an_unknown_domain_is_no_match(
        registered: str, whois_server: WhoisServer) -> None:
    text = await whois_client(whois_server, "unknown.test")
    assert 'No match for "unknown.test".' in text
    assert "REDACTED" not in text


@pytest.mark.parametrize(("payload", "reason"), [
    (b"\r\n", "empty query"),
    (b"\n", "empty query"),
    (b"x" * 10_000 + b"\r\n", f"longer than {MAX_QUERY_BYTES} bytes"),
    (b"\xff\xfe\x00\x81garbage\x00\r\n", "not UTF-8"),
    (b"exa\x01mple.test\r\n", "control characters"),
    (b"-v example.test\r\n", "one domain name per query"),
    (b"bad..test\r\n", "malformed domain name"),
    ("xn--bcher-kva.тест\r\n".encode(), "mixes A-labels and U-labels"),
    (b"xn--zz.test\r\n", "malformed domain name"),
    (b"192.0.2.1\r\n", "malformed domain name"),
])
async def test_bad_queries_get_one_error_line_and_the_server_keeps_answering(
        registered: str, whois_server: WhoisServer, payload: bytes, reason: str) -> None:
    answer = await raw_query(whois_server, payload)

    assert answer.startswith("Error: ") and answer.endswith("\r\n"), answer
    assert reason in answer
    assert answer.count("\r\n") == 1
    assert "Traceback" not in answer
    after = await whois_client(whois_server, DOMAIN)
    assert fields(after)["Domain Name"] == [DOMAIN]


async def test_a_query_without_a_line_end_is_answered_when_the_client_closes(
        registered: str, whois_server: WhoisServer) -> None:
    answer = await raw_query(whois_server, DOMAIN.encode())
    assert fields(answer)["Domain Name"] == [DOMAIN]


async def test_a_silent_client_is_told_and_disconnected(
        whois_server: WhoisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("regshield.rdds.whois.READ_TIMEOUT_SECONDS", 0.2)
    answer = await raw_query(whois_server, b"", close_after=False)
    assert answer.startswith("Error: no query received within")


async def test_a_source_over_its_limit_is_refused_until_its_bucket_refills(
        registered: str, whois_server: WhoisServer, services: Services,
        clock: FakeClock) -> None:
    burst = services.settings.rdds.burst
    for _ in range(burst):
        assert not (await raw_query(whois_server, b"unknown.test\r\n")).startswith("Error")

    refused = await raw_query(whois_server, b"example.test\r\n")

    match = re.fullmatch(r"Error: query rate exceeded; try again in (\d+) seconds\.\r\n",
                         refused)
    assert match is not None, refused
    assert services.limiter("whois").refused["anonymous"] == 1
    clock.advance(timedelta(seconds=int(match.group(1))))
    assert fields(await raw_query(whois_server, b"example.test\r\n"))["Domain Name"] == [DOMAIN]


@pytest.mark.parametrize(("query", "expected"), [
    ("Example.Test", "example.test"),
    ("example.test.", "example.test"),
    ("bücher.test", "xn--bcher-kva.test"),
    ("XN--BCHER-KVA.test", "xn--bcher-kva.test"),
])
def test_queries_are_case_folded_and_read_in_either_label_form(query: str,
                                                              expected: str) -> None:
    assert parse_query(query.encode() + b"\r\n").ascii == expected


def test_a_query_of_exactly_the_limit_is_read_but_one_byte_more_is_not() -> None:
    with pytest.raises(QueryError, match="malformed"):
        parse_query(b"a" * MAX_QUERY_BYTES + b"\r\n")
    with pytest.raises(QueryError, match="longer than"):
        parse_query(b"a" * (MAX_QUERY_BYTES + 1) + b"\r\n")


async def connect_from(server: WhoisServer,
                       address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.port, local_addr=(address, 0))


async def query_from(server: WhoisServer, address: str, line: bytes) -> str:
    reader, writer = await connect_from(server, address)
    writer.write(line)
    answer = (await asyncio.wait_for(reader.read(), 30)).decode()
    writer.close()
    return answer


async def test_many_idle_sockets_from_one_address_leave_the_port_to_others(
        registered: str, services: Services) -> None:
    per_source = services.settings.limits.whois_connections_per_source
    server = WhoisServer(services)
    await server.start("127.0.0.1", 0)
    held = []
    try:
        for _ in range(per_source):
            held.append(await connect_from(server, "127.0.0.1"))
        await asyncio.sleep(0.05)
        refused = [await query_from(server, "127.0.0.1", b"example.test\r\n")
                   for _ in range(30)]
        answered = await query_from(server, "127.0.0.2", b"example.test\r\n")
        # The held connections are still served once they ask.
        reader, writer = held[0]
        writer.write(b"example.test\r\n")
        first = (await asyncio.wait_for(reader.read(), 30)).decode()
    finally:
        for _, writer in held:
            writer.close()
        await server.close()
    assert set(refused) == {"Error: too many connections from your network; close one and "
                            "try again.\r\n"}
    assert fields(answered)["Domain Name"] == [DOMAIN]
    assert fields(first)["Domain Name"] == [DOMAIN]
    assert services.limits.connections_refused["whois", "per_source"] == 30


async def test_when_every_slot_is_taken_a_newcomer_closes_the_oldest_idle_connection(
        registered: str, services: Services) -> None:
    server = WhoisServer(services, max_connections=3, per_source=10)
    await server.start("127.0.0.1", 0)
    held = []
    try:
        for _ in range(3):
            held.append(await connect_from(server, "127.0.0.1"))
            await asyncio.sleep(0.02)  # in this order
        answered = await query_from(server, "127.0.0.2", b"example.test\r\n")
        oldest = await asyncio.wait_for(held[0][0].read(), 5)
        reader, writer = held[1]
        writer.write(b"example.test\r\n")
        second = (await asyncio.wait_for(reader.read(), 30)).decode()
    finally:
        for _, writer in held:
            writer.close()
        await server.close()
    assert fields(answered)["Domain Name"] == [DOMAIN]
    assert oldest == b""  # closed without an answer
    assert fields(second)["Domain Name"] == [DOMAIN]
    assert services.limits.connections_refused["whois", "oldest_idle"] == 1
