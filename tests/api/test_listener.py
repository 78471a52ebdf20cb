"""The HTTP listener under attack, through a real uvicorn socket on loopback: a client that
trickles its headers or its body is cut off after a bounded time, an idle keep-alive
connection is closed, one source cannot hold more than its share of connections while another
is still answered, and the API's rate limit answers 429 with Retry-After per source and per
token (api/listener.py, api/rate_limit.py)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
import uvicorn
import uvloop
from conftest import uvicorn_listening
from uvicorn.server import ServerState

from regshield.api.app import API_PREFIX, create_app
from regshield.api.listener import guarded_protocol, listener_answers
from regshield.api.rdap_memory import ADMITTED, Admitted, Answer, Header
from regshield.config import LimitsSettings, Listen
from regshield.server import http_config
from regshield.services import Services

MISSING = b"GET /api/v1/no-such-thing HTTP/1.1\r\nHost: regshield.test\r\n"
# These tests count the shared buckets; a loaded machine's slow first write to the database
# must not leave the decision to the process's own buckets (tests/security covers that).
STORE_WAIT_MS = 30_000


@pytest.fixture
async def listener(services: Services) -> AsyncIterator[tuple[Services, int]]:
    """A real HTTP listener on 127.0.0.1 with short deadlines, four connections per source
    and an API limit of three requests at once, then one a minute."""
    limits = replace(services.settings.limits, http_header_timeout=1, http_body_timeout=1,
                     http_keep_alive_timeout=1, http_connections_per_source=4,
                     api_per_minute=1, api_burst=3, store_timeout_ms=STORE_WAIT_MS)
    guarded = replace(services, settings=replace(services.settings, limits=limits),
                      _limits=None)
    async with uvicorn_listening(http_config(guarded, Listen("127.0.0.1", 0))) as port:
        yield guarded, port
    await guarded.limits.close()


async def connect(port: int, source: str = "127.0.0.1",
                  ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> float:
    """How long until the server closed the connection (reading what it sent meanwhile)."""
    started = time.monotonic()
    async with asyncio.timeout(seconds):
        while await reader.read(65536):
            pass
    return time.monotonic() - started


async def request(port: int, head: bytes = MISSING, source: str = "127.0.0.1",
                  ) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await connect(port, source)
    writer.write(head + b"Connection: close\r\n\r\n")
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    status_line, _, rest = raw.partition(b"\r\n")
    header_block, _, body = rest.partition(b"\r\n\r\n")
    headers = dict(line.decode().lower().split(": ", 1) for line in header_block.split(b"\r\n"))
    return int(status_line.split()[1]), headers, body


async def test_headers_sent_one_byte_at_a_time_are_cut_off_after_the_header_timeout(
        listener: tuple[Services, int]) -> None:
    services, port = listener
    reader, writer = await connect(port)
    started = time.monotonic()

    async def trickle() -> None:
        for byte in MISSING:
            writer.write(bytes([byte]))
            await asyncio.sleep(0.2)

    sender = asyncio.create_task(trickle())
    try:
        await closed_within(reader, 5)
    finally:
        sender.cancel()
        writer.close()
    assert time.monotonic() - started < 2.5  # the deadline, not the trickle, decided
    assert services.limits.connections_refused["http", "header_timeout"] == 1


async def test_a_silent_connection_is_closed_after_the_header_timeout(
        listener: tuple[Services, int]) -> None:
    _, port = listener
    reader, writer = await connect(port)
    assert await closed_within(reader, 5) < 2.5
    writer.close()


async def test_a_body_sent_slowly_is_cut_off_after_the_body_timeout(
        listener: tuple[Services, int]) -> None:
    services, port = listener
    reader, writer = await connect(port)
    writer.write(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: regshield.test\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{")

    async def trickle() -> None:
        for _ in range(50):
            writer.write(b" ")
            await asyncio.sleep(0.2)

    sender = asyncio.create_task(trickle())
    try:
        assert await closed_within(reader, 5) < 2.5
    finally:
        sender.cancel()
        writer.close()
    assert services.limits.connections_refused["http", "body_timeout"] == 1


async def test_a_pipelined_request_the_application_answers_slowly_is_not_cut_off(
        services: Services) -> None:
    """The header deadline runs while the client owes a request, not while a request it
    pipelined waits for the application's answer (which may take longer than the deadline)."""
    limits = replace(services.settings.limits, http_header_timeout=0.2)

    async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/slow":
            await asyncio.sleep(0.6)
        body = scope["path"].encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    config = uvicorn.Config(
        application, host="127.0.0.1", port=0, lifespan="off", log_config=None,
        http=guarded_protocol(limits, Counter()))
    async with uvicorn_listening(config) as port:
        reader, writer = await connect(port)
        writer.write(b"".join(f"GET {path} HTTP/1.1\r\nHost: regshield.test\r\n\r\n".encode()
                              for path in ("/first", "/slow", "/last")))
        try:
            async with asyncio.timeout(10):
                answered = b""
                while answered.count(b"HTTP/1.1 200") < 3:
                    chunk = await reader.read(65536)
                    assert chunk, f"closed after {answered!r}"
                    answered += chunk
        finally:
            writer.close()
    assert answered.index(b"/first") < answered.index(b"/slow") < answered.index(b"/last")
    # Once the last answer is written, the client owes the next request again.
    assert await closed_within(reader, 5) < 5


async def test_an_idle_keep_alive_connection_is_closed(listener: tuple[Services, int]) -> None:
    _, port = listener
    reader, writer = await connect(port)
    writer.write(MISSING + b"\r\n")
    first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert first.startswith(b"HTTP/1.1 404")
    started = time.monotonic()
    await closed_within(reader, 5)
    writer.close()
    assert time.monotonic() - started < 2.5


async def test_one_source_holds_at_most_its_share_while_another_is_answered(
        listener: tuple[Services, int]) -> None:
    services, port = listener
    held = [await connect(port) for _ in range(4)]
    await asyncio.sleep(0.05)
    extra_reader, extra_writer = await connect(port)
    try:
        assert await closed_within(extra_reader, 1) < 0.5  # closed at once
        status, _, _ = await request(port, source="127.0.0.2")
        assert status == 404
    finally:
        extra_writer.close()
        for _, writer in held:
            writer.close()
    assert services.limits.connections_refused["http", "per_source"] == 1


async def test_the_api_limit_answers_429_per_source_and_per_token(
        listener: tuple[Services, int]) -> None:
    services, port = listener
    assert [(await request(port))[0] for _ in range(3)] == [404, 404, 404]

    status, headers, body = await request(port)

    assert status == 429
    assert headers["content-type"] == "application/problem+json"
    wait = int(headers["retry-after"])
    assert 1 <= wait <= 60
    problem = json.loads(body)
    assert problem["type"] == "urn:regshield:problem:throttled"
    assert problem["retry_after"] == wait
    assert problem["request_id"] == headers["x-request-id"]
    # Another source has a bucket of its own, and paths outside the API are not counted here.
    assert (await request(port, source="127.0.0.3"))[0] == 404
    assert (await request(port, b"GET /rdap/help HTTP/1.1\r\nHost: x\r\n"))[0] == 200

    # One token from many sources: its own bucket holds wherever it comes from.
    token = b"Authorization: Bearer rs_spread_over_many_sources\r\n"
    statuses = [(await request(port, MISSING + token, source=f"127.0.1.{n}"))[0]
                for n in range(1, 5)]
    assert statuses == [404, 404, 404, 429]
    assert services.limiter("api").refused["authenticated"] == 1


@pytest.fixture
async def recorded(services: Services) -> AsyncIterator[tuple[Services, int, list[object]]]:
    """A real HTTP listener whose own answers are recorded, with an API limit of 40 requests
    at once (leases of four), then one a minute."""
    limits = replace(services.settings.limits, api_per_minute=1, api_burst=40,
                     store_timeout_ms=STORE_WAIT_MS)
    limited = replace(services, settings=replace(services.settings, limits=limits),
                      _limits=None)
    config = http_config(limited, Listen("127.0.0.1", 0))
    answer = listener_answers(limited, API_PREFIX)
    answers: list[object] = []

    def recording(method: bytes, url: bytes, headers: list[Header],
                  source: str | None) -> Answer | Admitted | None:
        answers.append(answer(method, url, headers, source))
        return answers[-1]  # type: ignore[return-value]

    config.http = guarded_protocol(limits, limited.limits.connections_refused, recording)
    async with uvicorn_listening(config) as port:
        yield limited, port, answers
    await limited.limits.close()


async def test_the_listener_refuses_a_source_over_the_api_limit_as_the_application_does(
        recorded: tuple[Services, int, list[object]]) -> None:
    services, port, answers = recorded
    same_id = b"X-Request-ID: req_0123456789abcdef\r\n"
    statuses = [(await request(port, MISSING + same_id))[0] for _ in range(50)]
    allowed = statuses.count(404)
    # Each request took one token, whoever took it: the listener when a lease had requests
    # left (it admitted those), the application otherwise. Up to a lease early.
    assert 40 - 4 <= allowed <= 40, statuses
    assert statuses == [404] * allowed + [429] * (50 - allowed)
    assert ADMITTED in answers
    assert services.limiter("api").answered["anonymous"] == allowed
    refusals = [answer for answer in answers if isinstance(answer, Answer)]
    assert refusals, "the listener refused none itself"

    # Its 429 is the application's, header for header and byte for byte but for the wait
    # (the same source asks the application directly, through ASGI).
    on_wire = await request(port, MISSING + same_id)
    assert isinstance(answers[-1], Answer)
    transport = httpx.ASGITransport(app=create_app(services), client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://regshield.test") as api:
        asgi = await api.get("/api/v1/no-such-thing",
                             headers={"X-Request-ID": "req_0123456789abcdef"})
    status, headers, body = on_wire
    assert (status, asgi.status_code) == (429, 429)
    waits = int(headers.pop("retry-after")), int(asgi.headers["retry-after"])
    assert abs(waits[0] - waits[1]) <= 1
    expected = {key: value for key, value in asgi.headers.items()
                if key not in ("date", "retry-after", "content-length", "connection")}
    assert {key: value for key, value in headers.items()
            if key not in ("date", "content-length", "connection")} == expected
    mine, theirs = json.loads(body), asgi.json()
    for problem in (mine, theirs):
        del problem["retry_after"], problem["detail"]
    assert mine == theirs
    assert mine["instance"] == "/api/v1/no-such-thing"


async def test_a_request_the_listener_admits_still_meets_its_tokens_limit(
        recorded: tuple[Services, int, list[object]]) -> None:
    services, port, answers = recorded
    token = b"Authorization: Bearer rs_one_token_from_many_sources\r\n"
    # From fresh sources the listener admits nothing at first (no lease yet): keep asking
    # from each until it does, then the token's own bucket must still be counted.
    statuses = [(await request(port, MISSING + token, source=f"127.0.2.{n % 5 + 1}"))[0]
                for n in range(45)]
    assert ADMITTED in answers
    assert statuses.count(404) <= 40 and statuses[-1] == 429, statuses
    assert services.limiter("api").refused["authenticated"] >= 1


def test_an_answer_written_after_the_connection_was_closed_is_dropped_quietly() -> None:
    """A client sends a request and, behind it, the head of another whose body never comes:
    the second's body deadline closes the connection while the first is being answered.
    uvicorn marks only the second as disconnected, so the first one's answer met a closed
    transport, which under uvloop raised (an error and a traceback in the log per client).
    The answer must be dropped quietly."""
    raised: list[BaseException] = []
    refused: Counter[tuple[str, str]] = Counter()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/first":
            return
        for _ in range(500):  # until the second request's deadline has closed the connection
            if refused:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"late"})
        except BaseException as error:  # recorded, and checked below
            raised.append(error)
        answered.set()

    async def scenario() -> None:
        config = uvicorn.Config(app, lifespan="off", log_config=None)
        config.load()
        protocol_class = guarded_protocol(LimitsSettings(http_body_timeout=0.1), refused)
        protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
        ours, theirs = socket.socketpair()
        loop = asyncio.get_running_loop()
        await loop.connect_accepted_socket(lambda: protocol, ours)
        theirs.sendall(b"GET /first HTTP/1.1\r\nHost: regshield.test\r\n\r\n"
                       b"POST /second HTTP/1.1\r\nHost: regshield.test\r\n"
                       b"Content-Length: 10\r\n\r\n")
        await asyncio.wait_for(answered.wait(), 5)
        theirs.close()

    answered = asyncio.Event()
    uvloop.run(scenario())
    assert refused == {("http", "body_timeout"): 1}
    assert raised == []
