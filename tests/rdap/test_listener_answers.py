"""Anonymous domain lookups answered by the HTTP listener from memory (api/rdap_memory.py),
through a real uvicorn socket on loopback: the same answer as the application's, validators,
limits, pipelined requests in order, HTTP/1.0, a change shown at once, hostile spellings left
to the application, and the connection guard's deadlines still in force after an answer."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

import httpx
import pytest
from conftest import uvicorn_listening
from domains.test_lifecycle import DOMAINS, register

from rdap.conftest import Published, set_domain
from rdap.test_documents import rendered
from regshield.api.app import create_app
from regshield.api.listener import guarded_protocol
from regshield.api.rdap_memory import Answer, Header, MemoryAnswers
from regshield.clock import FakeClock
from regshield.config import Listen
from regshield.rdds.documents import (
    CHECK_SECONDS,
    Document,
    DocumentCache,
    Missing,
    document_cache,
    site_digest,
)
from regshield.server import http_config
from regshield.services import Services

LOOKUP = b"/rdap/domain/example.test"
# Headers that differ from one answer to the next whoever gives it.
PER_ANSWER = {"date", "x-request-id"}


@dataclass
class Listener:
    services: Services
    port: int
    answers: list[Answer | None] = field(default_factory=list)  # the listener's, in order

    async def exchange(self, raw: bytes, responses: int = 1) -> list[tuple[int, dict[str, str],
                                                                       bytes]]:
        """Send `raw` on one connection and read `responses` answers to it."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(raw)
        try:
            return [await read_response(reader, head=raw.startswith(b"HEAD "))
                    for _ in range(responses)]
        finally:
            writer.close()

    async def get(self, path: bytes = LOOKUP, head: bytes = b"",
                  method: bytes = b"GET") -> tuple[int, dict[str, str], bytes]:
        return (await self.exchange(request(path, head, method)))[0]


def request(path: bytes = LOOKUP, head: bytes = b"", method: bytes = b"GET") -> bytes:
    return method + b" " + path + b" HTTP/1.1\r\nHost: rdap.test\r\n" + head + b"\r\n"


async def read_response(reader: asyncio.StreamReader, *, head: bool = False,
                        ) -> tuple[int, dict[str, str], bytes]:
    """One response; `head`: the answer to a HEAD request, which has no body."""
    async with asyncio.timeout(10):
        status_line = await reader.readline()
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if head or status_line.split()[1] == b"304" else int(
            headers["content-length"])
        body = await reader.readexactly(length) if length else b""
    return int(status_line.split()[1]), headers, body


def same_answer(on_wire: tuple[int, dict[str, str], bytes], asgi: httpx.Response) -> None:
    """The listener's answer is the application's, header for header and byte for byte."""
    status, headers, body = on_wire
    assert status == asgi.status_code
    assert body == asgi.content
    expected = {key: value for key, value in asgi.headers.items() if key not in PER_ANSWER}
    assert {key: value for key, value in headers.items() if key not in PER_ANSWER} == expected
    assert headers["x-request-id"] and headers["date"]


@pytest.fixture
async def listener(services: Services, published: Published) -> AsyncIterator[Listener]:
    """A real HTTP listener on 127.0.0.1 whose listener answers are recorded, with every
    document rendered and short deadlines."""
    limits = replace(services.settings.limits, http_header_timeout=1,
                     http_keep_alive_timeout=2)
    await rendered(services)
    config = http_config(services, Listen("127.0.0.1", 0))
    answers: list[Answer | None] = []
    memory = MemoryAnswers(services)

    def recorded(method: bytes, url: bytes, headers: list[Header],
                 source: str | None) -> Answer | None:
        answer = memory.answer(method, url, headers, source)
        answers.append(answer)
        return answer

    config.http = guarded_protocol(limits, services.limits.connections_refused, recorded)
    async with uvicorn_listening(config) as port:
        yield Listener(services, port, answers)


async def answered_by_listener(listener: Listener, raw: bytes = request()) -> tuple[
        int, dict[str, str], bytes]:
    """A lookup the listener answered itself (the first of a source may wait for the shared
    limit's lease and go to the application; the next ones do not)."""
    for _ in range(3):
        listener.answers.clear()
        (answer,) = await listener.exchange(raw)
        if listener.answers and listener.answers[-1] is not None:
            return answer
    raise AssertionError(f"never answered by the listener: {listener.answers}")


async def test_the_listener_answers_as_the_application_does(
        listener: Listener, api: httpx.AsyncClient) -> None:
    on_wire = await answered_by_listener(listener)

    same_answer(on_wire, await api.get(LOOKUP.decode()))
    assert json.loads(on_wire[2])["ldhName"] == "example.test"


async def test_validators_and_head_from_the_listener(
        listener: Listener, api: httpx.AsyncClient) -> None:
    _, first, body = await answered_by_listener(listener)
    tag, modified = first["etag"], first["last-modified"]

    for head in (f"If-None-Match: {tag}\r\n".encode(), b"If-None-Match: *\r\n",
                 f"If-None-Match: \"other\", W/{tag}\r\n".encode(),
                 f"If-Modified-Since: {modified}\r\n".encode()):
        status, headers, again = await answered_by_listener(listener, request(head=head))
        assert status == 304 and again == b"" and headers["etag"] == tag, head
        same_answer((status, headers, again),
                    await api.get(LOOKUP.decode(),
                                  headers=[tuple(head.decode().strip().split(": ", 1))]))
    status, headers, again = await answered_by_listener(
        listener, request(head=b"If-None-Match: \"other\"\r\n"))
    assert status == 200 and again == body

    status, headers, nothing = await answered_by_listener(listener, request(method=b"HEAD"))
    assert status == 200 and nothing == b"" and headers["content-length"] == str(len(body))


async def test_pipelined_requests_are_answered_in_order(listener: Listener) -> None:
    await answered_by_listener(listener)  # the source's lease is taken
    listener.answers.clear()
    raw = (request() + request(b"/rdap/help") + request()
           + request(b"/rdap/domain/unknown-name.test"))

    answers = await listener.exchange(raw, responses=4)

    assert [status for status, _, _ in answers] == [200, 200, 200, 404]
    assert json.loads(answers[0][2])["ldhName"] == "example.test"
    assert "notices" in json.loads(answers[1][2]) and "ldhName" not in json.loads(answers[1][2])
    assert answers[2][2] == answers[0][2]
    assert json.loads(answers[3][2])["errorCode"] == 404
    # The listener answered the first; the second is not a domain lookup; the third, queued
    # behind the application's answer to the second, was not offered.
    assert listener.answers[0] is not None


async def test_an_http_1_0_request_is_answered_and_the_connection_closed(
        listener: Listener) -> None:
    await answered_by_listener(listener)
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    writer.write(b"GET /rdap/domain/example.test HTTP/1.0\r\n\r\n")

    status, headers, body = await read_response(reader)

    assert status == 200 and headers["connection"] == "close"
    assert json.loads(body)["ldhName"] == "example.test"
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
    writer.close()


async def test_a_change_made_here_is_answered_at_once(
        listener: Listener, api: httpx.AsyncClient, published: Published) -> None:
    _, _, before = await answered_by_listener(listener)

    changed = await api.put(f"{DOMAINS}/example.test/nameservers",
                            headers=published.holder.otp(),
                            json={"nameservers": ["ns1.example.org", "ns2.example.org"]})
    assert changed.status_code == 200, changed.text

    status, _, after = await listener.get()
    assert status == 200 and after != before
    assert [ns["ldhName"] for ns in json.loads(after)["nameservers"]] == [
        "ns1.example.org", "ns2.example.org"]


async def test_a_change_by_another_process_is_answered_within_the_check_interval(
        listener: Listener, clock: FakeClock) -> None:
    await answered_by_listener(listener)
    other = Services.open(listener.services.settings, clock)  # another process: its own store
    try:
        await set_domain(other, "example.test", nameservers=["ns9.example.org"])
    finally:
        await other.close()

    await asyncio.sleep(CHECK_SECONDS + 0.1)

    status, _, after = await listener.get()
    assert status == 200
    assert [ns["ldhName"] for ns in json.loads(after)["nameservers"]] == ["ns9.example.org"]


@pytest.mark.parametrize("path", [
    b"/rdap/domain/EXAMPLE.test", b"/rdap/domain/example.test?x=1",
    b"/rdap/domain/example%2etest", b"/rdap/domain/example.test/", b"/rdap/domain/example.test.",
    b"http://rdap.test/rdap/domain/example.test", b"/rdap/domain/" + b"a" * 4000 + b".test",
])
async def test_other_spellings_are_left_to_the_application(
        listener: Listener, api: httpx.AsyncClient, path: bytes) -> None:
    status, _, body = await listener.get(path)

    assert listener.answers == [None]
    if path.startswith(b"http://"):
        assert status == 200 and json.loads(body)["ldhName"] == "example.test"
    else:
        asgi = await api.get(path.decode())
        assert status == asgi.status_code and body == asgi.content


async def test_a_token_is_never_answered_from_memory(
        listener: Listener, published: Published) -> None:
    token = published.staff.headers["Authorization"].encode()
    status, headers, body = await listener.get(head=b"Authorization: " + token + b"\r\n")

    assert listener.answers == [None]
    assert status == 200 and "etag" not in headers and b"Jane Example" in body


async def test_over_the_limit_the_listener_answers_429_as_the_application_does(
        services: Services, published: Published) -> None:
    await rendered(services)
    settings = services.settings
    limited = replace(services, _limits=None, settings=replace(
        settings, rdds=replace(settings.rdds, per_minute=1, burst=3),
        limits=replace(settings.limits, store="process")))
    memory = MemoryAnswers(limited)
    await document_cache(limited).document("example.test")  # memory current, as after a query
    transport = httpx.ASGITransport(app=create_app(limited), client=("192.0.2.10", 40000))
    try:
        answers = [memory.answer(b"GET", LOOKUP, [], "192.0.2.10") for _ in range(4)]
        async with httpx.AsyncClient(transport=transport, base_url="http://rdap.test") as app:
            asgi = await app.get(LOOKUP.decode())
    finally:
        await limited.limits.close()

    assert [answer.status if answer else None for answer in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    assert refused is not None and asgi.status_code == 429
    headers = {key.decode(): value.decode() for key, value in refused.headers}
    assert refused.body == asgi.content and json.loads(refused.body)["errorCode"] == 429
    assert {key: value for key, value in headers.items() if key not in PER_ANSWER} == {
        key: value for key, value in asgi.headers.items() if key not in PER_ANSWER}
    assert int(headers["retry-after"]) >= 1


async def test_deadlines_still_hold_after_an_answer_from_memory(listener: Listener) -> None:
    await answered_by_listener(listener)
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    writer.write(request())
    status, _, _ = await read_response(reader)
    assert status == 200
    started = time.monotonic()

    async def trickle() -> None:  # the next request's head, a byte every 0.3 s
        for byte in b"GET /rdap/help HTTP/1.1\r\nHost: rdap.test\r\n":
            writer.write(bytes([byte]))
            await asyncio.sleep(0.3)

    trickling = asyncio.create_task(trickle())
    async with asyncio.timeout(10):
        while await reader.read(65536):
            pass
    trickling.cancel()
    writer.close()
    # Cut off by the header deadline (1 s), not answered, long before the head was sent.
    assert time.monotonic() - started < 5
    assert listener.services.limits.connections_refused["http", "header_timeout"] >= 1


async def test_memory_is_checked_ahead_so_a_busy_listener_keeps_answering(
        services: Services, published: Published, clock: FakeClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Past half the check interval a peek still answers and starts the next check in the
    background; a change by another process is seen once it has run."""
    await rendered(services)
    # The other process's commit is made in this one: its count of this process's commits
    # (which a cache checks at once) must not move, as it would not in another process.
    monkeypatch.setattr("regshield.rdds.documents.local_commits", lambda: 0)
    cache = DocumentCache(services.store, site_digest(services.settings), check_seconds=0.4)
    before = await cache.document("example.test")
    assert isinstance(before, Document)
    other = Services.open(services.settings, clock)  # another process: its own store
    try:
        await set_domain(other, "example.test", nameservers=["ns9.example.org"])
    finally:
        await other.close()
    await asyncio.sleep(0.25)

    assert cache.peek("example.test") == before  # answered, and a check started
    assert cache._checking is not None
    await cache._checking

    assert cache.peek("example.test") is None  # the change dropped it: the application's way
    after = await cache.document("example.test")
    assert after is Missing.NOT_RENDERED or (isinstance(after, Document) and after != before)


async def test_names_never_registered_are_answered_from_memory_as_the_application_does(
        listener: Listener, api: httpx.AsyncClient) -> None:
    assert await document_cache(listener.services).load_names()
    for name, status in ((b"never-registered.test", 404), (b"ab--cd.test", 400),
                         (b"xn--zz.test", 400)):
        path = b"/rdap/domain/" + name
        on_wire = await answered_by_listener(listener, request(path))
        assert on_wire[0] == status, name
        same_answer(on_wire, await api.get(path.decode()))


async def test_a_name_registered_or_deleted_here_is_known_at_once(
        listener: Listener, api: httpx.AsyncClient, published: Published) -> None:
    cache = document_cache(listener.services)
    assert await cache.load_names()
    await answered_by_listener(listener)
    assert (await listener.get(b"/rdap/domain/second.test"))[0] == 404

    assert (await register(api, published.holder, name="second.test")).status_code == 201
    status, _, body = await listener.get(b"/rdap/domain/second.test")
    assert status == 200 and json.loads(body)["ldhName"] == "second.test"

    holder = published.holder
    assert (await api.delete(f"{DOMAINS}/second.test/registrar-lock",
                             headers=holder.otp())).status_code == 200
    assert (await api.delete(f"{DOMAINS}/second.test", headers=holder.otp())).status_code == 200
    assert (await listener.get(b"/rdap/domain/second.test"))[0] == 404
    assert cache._names is not None and "second.test" not in cache._names


async def test_names_are_learned_a_batch_at_a_time_and_none_is_missed(
        listener: Listener, api: httpx.AsyncClient, published: Published) -> None:
    for name in ("batch-a.test", "batch-b.test", "batch-c.test"):
        assert (await register(api, published.holder, name=name)).status_code == 201
    cache = document_cache(listener.services)
    assert await cache.load_names(batch=2)
    assert cache._names is not None
    assert {"batch-a.test", "batch-b.test", "batch-c.test"} <= cache._names
    assert (await listener.get(b"/rdap/domain/batch-d.test"))[0] == 404


async def test_a_name_registered_by_another_process_is_known_within_the_check_interval(
        listener: Listener, api: httpx.AsyncClient, published: Published, clock: FakeClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    cache = document_cache(listener.services)
    assert await cache.load_names()
    assert (await listener.get(b"/rdap/domain/other.test"))[0] == 404
    # Registered here, but as if by another process: this process's count of its own
    # commits (which a cache checks at once) does not move.
    monkeypatch.setattr("regshield.rdds.documents.local_commits", lambda: cache._local)
    assert (await register(api, published.holder, name="other.test")).status_code == 201

    await asyncio.sleep(CHECK_SECONDS + 0.1)

    status, _, body = await listener.get(b"/rdap/domain/other.test")
    assert status == 200 and json.loads(body)["ldhName"] == "other.test"


async def test_too_many_names_are_not_kept_and_the_store_answers(
        listener: Listener, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("regshield.rdds.documents.MAX_NAMES", 0)
    cache = document_cache(listener.services)

    assert not await cache.load_names()

    assert cache.peek("never-registered.test") is None  # unknown to memory: ask the store
    assert (await listener.get(b"/rdap/domain/never-registered.test"))[0] == 404
    assert (await listener.get())[0] == 200
