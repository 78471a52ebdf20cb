"""HTTP API benchmark: create and read contacts on regshield, beside a plain CRUD peer.

For each backend (SQLite, PostgreSQL) it starts a real `regshield serve` on a fresh data
directory (and, for PostgreSQL, a fresh database), creates an account, an owner user and an API
token with the CLI, then creates N contacts over HTTP with C concurrent requests and reads each
of them back once, shuffled. The same requests then go to bench/peer_app.py, a FastAPI +
SQLAlchemy service that stores the same JSON with no security at all, served the same way on
the same backend. Every response is checked; any failure makes the run exit 1.

    .venv/bin/python bench/api.py [--contacts 10000] [--concurrency 32]
                                  [--backends sqlite,postgresql] [--client raw|httpx]

The load generator runs in this process, on the same machine: by default a minimal keep-alive
HTTP/1.1 client (one connection per concurrent task) so that it takes as little CPU from the
servers as possible; `--client httpx` sends the same requests through httpx. Latency is taken
from writing a request to reading the last byte of its answer. Beside the table, the CPU used
per request by the server process and by the load generator is printed: a server near one core
(CPU ms per request x requests/s ~ 1000) is bound by its own work, not by the load generator.

Only 127.0.0.1 is contacted (the PostgreSQL server at --postgres, trust authentication).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg
import httpx
import phonenumbers
from stats import percentile_ms

BENCH_DIR = Path(__file__).resolve().parent
PEER_APP = BENCH_DIR / "peer_app.py"
API = "/api/v1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STOP_TIMEOUT = 20.0  # seconds a server has to stop after SIGINT before it is killed
SLOW_STOP_SECONDS = 2.0  # a stop that took longer is said
START_TIMEOUT = 60.0
REQUEST_TIMEOUT = 60.0
T = TypeVar("T")

# ------------------------------------------------------------------------------------------
# Test data: realistic, varied contacts that pass regshield's validation.


@dataclass(frozen=True)
class Country:
    code: str
    cities: tuple[tuple[str, str | None, str], ...]  # city, state, phone prefix (national)
    streets: tuple[str, ...]
    postal: Callable[[random.Random], str]
    house_first: bool  # "12 Main Street" rather than "Hauptstraße 12"


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _letters(rng: random.Random, n: int, alphabet: str = "ABCDEFGHJKLMNPRSTUVWXYZ") -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


COUNTRIES = (
    Country("US", (("Washington", "DC", "202"), ("New York", "NY", "212"),
                   ("Chicago", "IL", "312"), ("San Francisco", "CA", "415"),
                   ("Boston", "MA", "617"), ("Austin", "TX", "512")),
            ("Pennsylvania Avenue NW", "Main Street", "Broadway", "Elm Street",
             "Market Street", "Congress Avenue"),
            lambda r: _digits(r, 5) if r.random() < 0.85 else f"{_digits(r, 5)}-{_digits(r, 4)}",
            True),
    Country("DE", (("Berlin", None, "30"), ("München", "Bayern", "89"),
                   ("Hamburg", None, "40"), ("Köln", "Nordrhein-Westfalen", "221"),
                   ("Frankfurt am Main", "Hessen", "69")),
            ("Hauptstraße", "Unter den Linden", "Friedrichstraße", "Schloßallee",
             "Königsweg", "Am Gänsemarkt"),
            lambda r: _digits(r, 5), False),
    Country("FR", (("Paris", None, "1"), ("Lyon", None, "4"), ("Marseille", None, "4"),
                   ("Bordeaux", None, "5"), ("Lille", None, "3")),
            ("rue de Rivoli", "avenue des Champs-Élysées", "boulevard Haussmann",
             "rue de la Paix", "place Bellecour"),
            lambda r: _digits(r, 5), True),
    Country("GB", (("London", None, "20"), ("Manchester", None, "161"),
                   ("Edinburgh", "Scotland", "131"), ("Bristol", None, "117")),
            ("Baker Street", "High Street", "Victoria Road", "Station Road", "Church Lane"),
            lambda r: f"{_letters(r, 2)}{r.randint(1, 9)} {r.randint(1, 9)}{_letters(r, 2)}",
            True),
    Country("NL", (("Amsterdam", "Noord-Holland", "20"), ("Rotterdam", "Zuid-Holland", "10"),
                   ("Utrecht", "Utrecht", "30")),
            ("Keizersgracht", "Damrak", "Coolsingel", "Oudegracht", "Prinsengracht"),
            lambda r: f"{r.randint(1000, 9999)} {_letters(r, 2)}", False),
    Country("CA", (("Ottawa", "ON", "613"), ("Toronto", "ON", "416"),
                   ("Montréal", "QC", "514"), ("Vancouver", "BC", "604")),
            ("Wellington Street", "Rue Sainte-Catherine", "Yonge Street", "Granville Street"),
            lambda r: (f"{_letters(r, 1, 'ABCEGHJKLMNPRSTVXY')}{r.randint(0, 9)}"
                       f"{_letters(r, 1, 'ABCEGHJKLMNPRSTVWXYZ')} {r.randint(0, 9)}"
                       f"{_letters(r, 1, 'ABCEGHJKLMNPRSTVWXYZ')}{r.randint(0, 9)}"),
            True),
    Country("CH", (("Zürich", "ZH", "44"), ("Genève", "GE", "22"), ("Bern", "BE", "31")),
            ("Bahnhofstrasse", "Rue du Rhône", "Marktgasse", "Limmatquai"),
            lambda r: str(r.randint(1000, 9999)), False),
    Country("JP", (("Tokyo", "Tokyo", "3"), ("Osaka", "Osaka", "6")),
            ("Chiyoda-ku, Marunouchi 2-chome", "Chuo-ku, Ginza 4-chome",
             "Kita-ku, Umeda 3-chome"),
            lambda r: f"{_digits(r, 3)}-{_digits(r, 4)}", False),
)

FIRST_NAMES = ("Anna", "Jürgen", "Zoë", "José", "Łukasz", "Søren", "François", "Siobhán",
               "Mei", "Hiroshi", "Olivia", "Noah", "Amélie", "Björn", "Chloé", "Dmitri",
               "Fatima", "Giulia", "Håkon", "Ines", "Karim", "Lena", "Mateo", "Nadia",
               "Oskar", "Priya", "Ravi", "Sofia", "Tomás", "Yuki")
LAST_NAMES = ("Müller", "Schmidt", "Dvořák", "García", "O'Brien", "Nguyen", "Kowalski",
              "Dubois", "Rossi", "Tanaka", "Smith", "Johnson", "van der Berg", "Jensen",
              "Fernández", "Lefèvre", "Schröder", "Novak", "Petrov", "Sato", "Williams",
              "Brown", "Martin", "Bernard", "Hoffmann", "Kim", "Singh", "Costa", "Y\u0131lmaz",
              "Andersson")
ORGANIZATIONS = ("Example GmbH", "Acme Corporation", "Globex Ltd", "Initech LLC",
                 "Umbrella S.A.", "Stark Industries", "Wayne Enterprises B.V.",
                 "Müller & Söhne KG", "Société Générale d'Exemple", "Tanaka Shōji K.K.")
EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.de",
                 "post.example.fr", "Example.CO.UK")
EXTRA_LINES = ("Suite 200", "Floor 3", "Building B", "c/o Reception", "Apartment 12",
               "2. Obergeschoss")


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


# Digits of a national number after the trunk prefix; fictional ranges where there are some.
NATIONAL_LENGTHS = {"DE": (9, 10, 11), "FR": (9,), "GB": (10,), "NL": (9,), "CH": (9,),
                    "JP": (9,)}


def _phone(rng: random.Random, country: Country, prefix: str) -> tuple[str, str]:
    """A number valid for the country (checked with phonenumbers): (as sent, E.164)."""
    calling_code = phonenumbers.country_code_for_region(country.code)
    for _ in range(1000):
        if country.code in ("US", "CA"):  # 555-0100 to 555-0199: reserved for fiction
            national = f"{prefix}55501{_digits(rng, 2)}"
        else:
            length = rng.choice(NATIONAL_LENGTHS[country.code])
            national = prefix + rng.choice("23456789") + _digits(rng, length - len(prefix) - 1)
        number = phonenumbers.parse(f"+{calling_code}{national}", None)
        if phonenumbers.is_valid_number(number):
            break
    else:
        raise BenchFailure(f"no valid phone number found for {country.code} {prefix}")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    style = rng.random()
    if style < 0.6:
        sent = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    elif style < 0.85:
        sent = e164
    else:  # local form; the server reads it with the contact's country
        sent = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    return sent, e164


def make_contacts(n: int, seed: int) -> list[dict[str, Any]]:
    """`n` varied contact bodies; each carries the E.164 phone expected back in `_e164`."""
    rng = random.Random(seed)
    contacts = []
    for i in range(n):
        country = rng.choice(COUNTRIES)
        city, state, prefix = rng.choice(country.cities)
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        number = rng.randint(1, 250)
        street_name = rng.choice(country.streets)
        street = [f"{number} {street_name}" if country.house_first else f"{street_name} {number}"]
        if rng.random() < 0.3:
            street.append(rng.choice(EXTRA_LINES))
        if rng.random() < 0.05:
            street.append(f"Attn. {first} {last}")
        local = _ascii(f"{first}.{last}").lower().replace(" ", "").replace("'", "")
        phone, e164 = _phone(rng, country, prefix)
        body: dict[str, Any] = {
            "name": unicodedata.normalize("NFC", f"{first} {last}"),
            "email": f"{local}{i}@{rng.choice(EMAIL_DOMAINS)}",
            "phone": phone,
            "street": street,
            "city": city,
            "postal_code": country.postal(rng),
            "country": country.code if rng.random() < 0.9 else country.code.lower(),
            "_e164": e164,
        }
        if state is not None and (country.code in ("US", "CA") or rng.random() < 0.5):
            body["state"] = state
        if rng.random() < 0.4:
            body["organization"] = rng.choice(ORGANIZATIONS)
        if rng.random() < 0.15:
            body["fax"] = _phone(rng, country, prefix)[0]
        contacts.append(body)
    return contacts


# ------------------------------------------------------------------------------------------
# Load generation and measurement.


@dataclass
class Phase:
    name: str
    requests: int
    seconds: float
    latencies: list[float]  # seconds, successful requests only
    errors: list[str]
    server_cpu: float  # seconds of CPU the server process used during the phase
    client_cpu: float  # seconds of CPU this process (the load generator) used

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile in milliseconds."""
        return percentile_ms(self.latencies, p)


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of one process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass(frozen=True)
class Reply:
    status_code: int
    headers: dict[str, str]  # names in lower case
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class RequestError(Exception):
    pass


class RawHttp:
    """One keep-alive HTTP/1.1 connection, as little client work per request as possible.

    The server and the load generator share two cores: a heavy client (httpx parses HTTP in
    pure Python) slows the server it measures and caps the faster target, which would flatten
    the very ratio this benchmark is for. `--client httpx` runs the same load through httpx.
    """

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self.fixed = "".join(f"{k}: {v}\r\n" for k, v in
                             {"Host": f"{host}:{port}", **headers}.items()).encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes | None) -> Reply:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                return await self._exchange(method, path, body)
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError) as exc:  # TimeoutError is an OSError
            await self.close()
            raise RequestError(f"{type(exc).__name__}: {exc}") from exc
        except BaseException:
            # Cancelled mid-exchange (a caller's own deadline): the answer may still come on
            # this connection, where the next request would read it as its own. Drop it.
            self._drop()
            raise

    def _drop(self) -> None:
        writer, self.reader, self.writer = self.writer, None, None
        if writer is not None:
            writer.transport.abort()

    async def _exchange(self, method: str, path: str, body: bytes | None) -> Reply:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = f"{method} {path} HTTP/1.1\r\n".encode() + self.fixed
        if body is not None:
            head += (b"Content-Type: application/json\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n")
        self.writer.write(head + b"\r\n" + (body or b""))
        await self.writer.drain()
        assert self.reader is not None
        reply = await self._read(self.reader)
        if reply.headers.get("connection", "").lower() == "close":
            await self.close()
        return reply

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> Reply:
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            content = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
            await reader.readuntil(b"\r\n")
            content = b"".join(chunks)
        else:
            content = await reader.read()
            headers["connection"] = "close"
        return Reply(status, headers, content)

    async def close(self) -> None:
        writer, self.reader, self.writer = self.writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class HttpxClient:
    """The same requests through httpx (a pool of `concurrency` connections)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def request(self, method: str, path: str, body: bytes | None) -> Reply:
        try:
            response = await self.client.request(
                method, path, content=body,
                headers={"Content-Type": "application/json"} if body is not None else None)
        except httpx.HTTPError as exc:
            raise RequestError(f"{type(exc).__name__}: {exc}") from exc
        return Reply(response.status_code,
                     {k.lower(): v for k, v in response.headers.items()}, response.content)

    async def close(self) -> None:
        pass


Transport = RawHttp | HttpxClient
Check = Callable[[int, Reply], str | None]


async def hammer(transports: list[Transport], name: str, method: str, paths: list[str],
                 bodies: list[bytes] | None, check: Check, server_pid: int) -> Phase:
    """Send every request with one request in flight per transport; check each answer."""
    latencies: list[float] = []
    errors: list[str] = []
    indexes = iter(range(len(paths)))

    async def worker(transport: Transport) -> None:
        for i in indexes:
            started = time.perf_counter()
            try:
                reply = await transport.request(method, paths[i],
                                                bodies[i] if bodies is not None else None)
            except RequestError as exc:
                errors.append(f"{method} {paths[i]}: {exc}")
                continue
            elapsed = time.perf_counter() - started
            problem = check(i, reply)
            if problem:
                errors.append(f"{method} {paths[i]}: {problem}")
            else:
                latencies.append(elapsed)

    server_before = process_cpu(server_pid)
    client_before = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(worker(t) for t in transports))
    seconds = time.perf_counter() - started
    client_cpu = time.process_time() - client_before
    server_cpu = process_cpu(server_pid) - server_before
    return Phase(
        name=name, requests=len(paths), seconds=seconds, latencies=latencies, errors=errors,
        server_cpu=server_cpu, client_cpu=client_cpu,
    )


def expect_status(reply: Reply, wanted: int) -> str | None:
    if reply.status_code != wanted:
        return f"HTTP {reply.status_code} (wanted {wanted}): {reply.text[:300]}"
    return None


def encode(contacts: list[dict[str, Any]]) -> list[bytes]:
    """Request bodies, encoded before the clock starts (`_` keys are the bench's own)."""
    return [json.dumps({k: v for k, v in c.items() if not k.startswith("_")},
                       ensure_ascii=False).encode() for c in contacts]


@dataclass
class TargetResult:
    target: str  # regshield | peer
    backend: str
    phases: dict[str, Phase] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


async def drive(port: int, token: str, contacts: list[dict[str, Any]],
                args: argparse.Namespace, server_pid: int,
                normalizes: bool) -> dict[str, Phase]:
    """Warm up, then the create phase and the read phase against one running server."""
    auth = {"Authorization": f"Bearer {token}"}
    pool: httpx.AsyncClient | None = None
    transports: list[Transport]
    if args.client == "httpx":
        limits = httpx.Limits(max_connections=args.concurrency,
                              max_keepalive_connections=args.concurrency)
        pool = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=auth,
                                 limits=limits, timeout=REQUEST_TIMEOUT)
        transports = [HttpxClient(pool)] * args.concurrency
    else:
        transports = [RawHttp("127.0.0.1", port, auth) for _ in range(args.concurrency)]
    bodies = encode(contacts)
    handles: list[str | None] = [None] * len(contacts)
    order: list[int] = []

    def check_create(i: int, reply: Reply) -> str | None:
        problem = expect_status(reply, 201)
        if problem:
            return problem
        handle = reply.json().get("handle")
        if not handle or reply.headers.get("location") != f"{API}/contacts/{handle}":
            return f"no handle or Location in the answer: {reply.text[:300]}"
        handles[i] = handle
        return None

    def check_read(i: int, reply: Reply) -> str | None:
        problem = expect_status(reply, 200)
        if problem:
            return problem
        got, sent = reply.json(), contacts[order[i]]
        wanted_phone = sent["_e164"] if normalizes else sent["phone"]
        wanted_country = sent["country"].upper() if normalizes else sent["country"]
        if (got.get("handle") != handles[order[i]] or got.get("name") != sent["name"]
                or got.get("phone") != wanted_phone or got.get("city") != sent["city"]
                or got.get("country") != wanted_country or got.get("street") != sent["street"]):
            return f"the contact read back differs from the one sent: {reply.text[:300]}"
        return None

    try:
        # Warm-up (not measured): the first requests load code and open the connections.
        if args.warmup:
            warm = await hammer(transports, "warm-up", "POST", [f"{API}/contacts"] * args.warmup,
                                encode(make_contacts(args.warmup, seed=7)),
                                lambda _i, r: expect_status(r, 201), server_pid)
            if warm.errors:
                raise BenchFailure("warm-up failed: " + warm.errors[0])
        create = await hammer(transports, "create", "POST", [f"{API}/contacts"] * len(contacts),
                              bodies, check_create, server_pid)
        order.extend(i for i, h in enumerate(handles) if h is not None)
        random.Random(11).shuffle(order)
        read = await hammer(transports, "read", "GET",
                            [f"{API}/contacts/{handles[i]}" for i in order], None, check_read,
                            server_pid)
    finally:
        for transport in transports:
            await transport.close()
        if pool is not None:
            await pool.aclose()
    return {"create": create, "read": read}


def run_client(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run the load generator on uvloop when it is installed (uvicorn uses it too)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


# ------------------------------------------------------------------------------------------
# Servers.


class BenchFailure(Exception):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def executable(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise BenchFailure(f"`{name}` not found beside {sys.executable} nor on PATH")
    return found


@contextmanager
def server(command: list[str], port: int, log_path: Path,
           env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server until the block ends; wait until it accepts connections on `port`."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise BenchFailure(f"{command[0]} exited with {process.returncode}:\n"
                                   + tail(log_path))
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise BenchFailure(f"{command[0]} did not listen on {port} in "
                                       f"{START_TIMEOUT:.0f}s:\n" + tail(log_path)) from None
                time.sleep(0.1)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            stopping = time.monotonic()
            try:
                process.wait(timeout=STOP_TIMEOUT)
                if time.monotonic() - stopping > SLOW_STOP_SECONDS:
                    print(f"{command[0]}: stopped {time.monotonic() - stopping:.1f} s after "
                          "SIGINT", file=sys.stderr, flush=True)
            except subprocess.TimeoutExpired:
                print(f"{command[0]}: still running {STOP_TIMEOUT:.0f} s after SIGINT: killed",
                      file=sys.stderr, flush=True)
                process.kill()
                process.wait()


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def cli(base: list[str], *args: str, stdin: str | None = None) -> str:
    result = subprocess.run([*base, *args], input=stdin, capture_output=True, text=True,
                            timeout=120, check=False)
    if result.returncode != 0:
        raise BenchFailure(f"`regshield {' '.join(args)}` failed ({result.returncode}):\n"
                           + result.stdout + result.stderr)
    return result.stdout


@contextmanager
def postgres_database(admin_url: str, prefix: str) -> Iterator[str]:
    """A fresh database on the PostgreSQL server, dropped afterwards; yields its name."""
    name = f"{prefix}_{secrets.token_hex(4)}"

    async def execute(statement: str) -> None:
        connection = await asyncpg.connect(admin_url)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    try:
        yield name
    finally:
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def database_url(server_url: str, name: str) -> str:
    return f"{server_url.rstrip('/')}/{name}"


def run_regshield(backend: str, args: argparse.Namespace,
                  contacts: list[dict[str, Any]]) -> TargetResult:
    result = TargetResult("regshield", backend)
    with tempfile.TemporaryDirectory(prefix="regshield-bench-") as tmp:
        home = Path(tmp) / "home"
        with (postgres_database(args.postgres_admin, "regshield_bench")
              if backend == "postgresql" else _nothing()) as db:
            base = [executable("regshield"), "--home", str(home)]
            if db:
                base += ["--database-url", database_url(args.postgres, db)]
            port = free_port()
            env = {**os.environ}
            env.pop("REGSHIELD_MASTER_KEY", None)
            env.pop("REGSHIELD_DATABASE_URL", None)
            env.pop("REGSHIELD_HOME", None)
            # One token from one address sends every request: the API's rate limit (a few
            # dozen a second per source and token) is raised out of the measurement's way.
            env.update({"REGSHIELD_LIMITS_API_PER_MINUTE": "10000000",
                        "REGSHIELD_LIMITS_API_BURST": "10000000",
                        # One HTTP process (on PostgreSQL the default is one per core), as
                        # the figures compared are one process's.
                        "REGSHIELD_HTTP_WORKERS": "1"})
            with server([*base, "serve", "--http", f"127.0.0.1:{port}"], port,
                        Path(tmp) / "serve.log", env) as process:
                cli(base, "account", "create", "bench")
                password = secrets.token_urlsafe(18)
                cli(base, "user", "create", "owner@bench.example", "--role", "owner",
                    "--account", "bench", "--password-stdin", stdin=password + "\n")
                token = cli(base, "token", "create", "owner@bench.example", "--name",
                            "bench").strip().splitlines()[-1]
                result.phases = run_client(drive(port, token, contacts, args, process.pid,
                                                 normalizes=True))
                verified = cli(base, "events", "verify").strip().splitlines()
                result.notes.append("events verify: " + "; ".join(verified))
            log = (Path(tmp) / "serve.log").read_text(errors="replace")
            problems = [line for line in log.splitlines()
                        if '"level": "error"' in line or "Traceback" in line]
            if problems:
                result.notes.append(f"server log has {len(problems)} error lines, first: "
                                    + problems[0][:300])
    return result


def run_peer(backend: str, args: argparse.Namespace,
             contacts: list[dict[str, Any]]) -> TargetResult:
    result = TargetResult("peer", backend)
    with (tempfile.TemporaryDirectory(prefix="peer-bench-") as tmp,
          postgres_database(args.postgres_admin, "peer_bench")
          if backend == "postgresql" else _nothing() as db):
        url = database_url(args.postgres, db) if db else f"sqlite:///{Path(tmp) / 'peer.db'}"
        port = free_port()
        command = [sys.executable, str(PEER_APP), "--http", f"127.0.0.1:{port}",
                   "--database-url", url]
        with server(command, port, Path(tmp) / "peer.log") as process:
            # The same header as regshield gets, so that requests have the same size.
            result.phases = run_client(drive(port, "rs_" + secrets.token_urlsafe(32), contacts,
                                             args, process.pid, normalizes=False))
        if "Traceback" in (Path(tmp) / "peer.log").read_text(errors="replace"):
            result.notes.append("the peer's log has a traceback:\n" + tail(Path(tmp) / "peer.log"))
    return result


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


# ------------------------------------------------------------------------------------------
# Report.


def report(results: list[TargetResult], args: argparse.Namespace) -> int:
    by_key = {(r.backend, r.target): r for r in results}
    print()
    print(f"contacts: {args.contacts} per backend; concurrency: {args.concurrency}; "
          f"warm-up: {args.warmup} creates (not measured); client: {args.client}; "
          f"machine: {os.cpu_count()} CPUs; load average before/after: "
          f"{args.load_before:.2f}/{os.getloadavg()[0]:.2f}")
    print()
    header = (f"{'backend':<11} {'op':<7} {'regshield req/s':>15} {'p50 ms':>7} {'p99 ms':>7}"
              f" | {'peer req/s':>10} {'p50 ms':>7} {'p99 ms':>7}"
              f" | {'ratio req/s':>11} {'ratio p99':>9}")
    print(header)
    print("-" * len(header))
    for backend in args.backends:
        ours, peer = by_key.get((backend, "regshield")), by_key.get((backend, "peer"))
        for op in ("create", "read"):
            a = ours.phases.get(op) if ours else None
            b = peer.phases.get(op) if peer else None
            left = (f"{a.throughput:>15.0f} {a.percentile(50):>7.1f} {a.percentile(99):>7.1f}"
                    if a else f"{'-':>15} {'-':>7} {'-':>7}")
            right = (f"{b.throughput:>10.0f} {b.percentile(50):>7.1f} {b.percentile(99):>7.1f}"
                     if b else f"{'-':>10} {'-':>7} {'-':>7}")
            ratio = (f"{a.throughput / b.throughput:>11.2f} "
                     f"{a.percentile(99) / b.percentile(99):>9.2f}"
                     if a and b and b.throughput and b.latencies else f"{'-':>11} {'-':>9}")
            print(f"{backend:<11} {op:<7} {left} | {right} | {ratio}")
    print("ratio req/s: regshield / peer throughput (1.00 = as fast as the peer); "
          "ratio p99: regshield p99 / peer p99 (above 1 = slower)")
    print()
    print("Details: CPU ms per request of the server process / of the load generator, "
          "latency p90 and max (ms), wall time")
    for r in results:
        for op, p in r.phases.items():
            print(f"  {r.backend:<11} {r.target:<9} {op:<7} cpu "
                  f"{p.server_cpu * 1000 / p.requests:5.2f} / "
                  f"{p.client_cpu * 1000 / p.requests:4.2f}   p90 {p.percentile(90):7.1f}"
                  f"   max {p.percentile(100):7.1f}   {p.seconds:6.1f}s")
    failed = 0
    for r in results:
        for note in r.notes:
            print(f"  {r.backend} {r.target}: {note}")
        for op, p in r.phases.items():
            if p.errors:
                failed += len(p.errors)
                print(f"\n{r.backend} {r.target} {op}: {len(p.errors)} of {p.requests} "
                      "requests failed; first ones:")
                for error in p.errors[:5]:
                    print(f"  {error}")
    print()
    if failed:
        print(f"FAILED: {failed} requests failed")
        return 1
    print("ok: every request answered as expected")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description="Create/read contacts over HTTP: regshield "
                                                 "beside a plain FastAPI CRUD peer.")
    parser.add_argument("--contacts", type=int, default=10_000, help="contacts per backend")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--backends", default="sqlite,postgresql",
                        help="comma-separated: sqlite, postgresql")
    parser.add_argument("--warmup", type=int, default=200,
                        help="unmeasured creates before each measurement")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw",
                        help="load generator: a minimal keep-alive HTTP/1.1 client (default) "
                             "or httpx")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432",
                        help="PostgreSQL server URL without a database name")
    args = parser.parse_args()
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(args.backends) - {"sqlite", "postgresql"}
    if unknown or not args.backends:
        parser.error(f"unknown backends: {', '.join(sorted(unknown)) or '(none)'}")
    if args.contacts < 1 or args.concurrency < 1 or args.warmup < 0:
        parser.error("--contacts and --concurrency must be positive, --warmup not negative")
    if urlsplit(args.postgres).hostname != "127.0.0.1":
        parser.error("--postgres must point at 127.0.0.1")
    args.postgres_admin = database_url(args.postgres, "postgres")

    args.load_before = os.getloadavg()[0]
    started = time.perf_counter()
    contacts = make_contacts(args.contacts, seed=1)
    print(f"generated {len(contacts)} contacts in {time.perf_counter() - started:.1f}s",
          flush=True)
    results: list[TargetResult] = []
    try:
        for backend in args.backends:
            for target, run in (("regshield", run_regshield), ("peer", run_peer)):
                begun = time.perf_counter()
                print(f"{backend}: {target} ...", end=" ", flush=True)
                result = run(backend, args, contacts)
                results.append(result)
                summary = ", ".join(
                    f"{op} {p.throughput:.0f} req/s ({p.seconds:.1f}s, {len(p.errors)} errors)"
                    for op, p in result.phases.items())
                print(f"{summary}; {time.perf_counter() - begun:.0f}s in all", flush=True)
    except BenchFailure as failure:
        print(f"\nbench failed: {failure}", file=sys.stderr)
        report(results, args)
        return 1
    status = report(results, args)
    print(f"total time: {time.perf_counter() - started:.0f}s")
    return status


if __name__ == "__main__":
    sys.exit(main())
