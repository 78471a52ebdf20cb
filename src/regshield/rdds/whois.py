"""WHOIS on port 43 (RFC 3912): the same records and redaction as RDAP, as plain text.

`render` writes a `Presentation` (rdds/record.py) in the registrar output format of the 2013 RAA
Registration Data Directory Services specification, as the Registration Data Policy amended it:
one `Label: value` per line, dates in ISO 8601 UTC, every redacted field `REDACTED FOR PRIVACY`
and the email of a redacted contact replaced by the relay form that writes to it. What is
redacted is decided by the one engine (rules/redaction.py) through `present`: a line is
redacted exactly when RDAP lists a redaction of the same name.

`WhoisServer` answers one query per connection and closes: the query is one line of at most
`MAX_QUERY_BYTES` bytes, ended by LF or CRLF, holding one domain name (A-labels or U-labels, any
case, a trailing dot allowed). Every refusal is one `Error: ...` line; a name this registrar
does not sponsor answers `No match for "NAME".`. Port 43 has no authentication, so every query
is anonymous and limited per source network (`services.limiter("whois")`, shared by every
process); the limiter's counters are what /metrics publishes.

Connections are bounded so that a flood of idle sockets cannot take the port from everyone:
one source network holds at most `[limits] whois_connections_per_source` at once (one more is
refused at once with a line), and when all `MAX_CONNECTIONS` are taken a newcomer closes the
oldest connection still waiting for its query; only when every connection is being answered is
the newcomer told the server is busy. Each closure is counted (`connections_refused`).
"""

from __future__ import annotations

import asyncio
import contextlib
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import structlog

from regshield.errors import ValidationFailed
from regshield.rdds.record import Presentation, load_domain, present
from regshield.rules.names import ACE_PREFIX, DomainName, parse_domain_name
from regshield.rules.redaction import ContactRole, Persona
from regshield.security.limits import network_of
from regshield.services import Services

MAX_QUERY_BYTES = 255
READ_TIMEOUT_SECONDS = 10.0
MAX_CONNECTIONS = 256
# After answering, the rest of what a client sent is read and dropped (bounded), so that
# closing with unread input does not reset the connection before the answer arrives.
DRAIN_BYTES = 1 << 20
DRAIN_SECONDS = 2.0
REDACTED = "REDACTED FOR PRIVACY"
STATUS_URL = "https://icann.org/epp#"
COMPLAINT_FORM = "https://www.icann.org/wicf/"
log = structlog.get_logger("regshield.whois")


class QueryError(Exception):
    """A query that cannot be answered; the message is the `Error:` line's text."""


def parse_query(raw: bytes) -> DomainName:
    """The domain name one query line asks for. Raises QueryError with a reason a person can
    act on: too long, not UTF-8, empty, control characters, more than one word, a name that
    mixes A-labels and U-labels, or a malformed name."""
    line = raw[:-1] if raw.endswith(b"\n") else raw
    line = line[:-1] if line.endswith(b"\r") else line
    if len(line) > MAX_QUERY_BYTES:
        raise QueryError(f"query is longer than {MAX_QUERY_BYTES} bytes")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise QueryError("query is not UTF-8 text") from None
    text = text.strip(" \t")
    if not text:
        raise QueryError("empty query; send one domain name, such as example.com")
    # Format characters (the joiners of some scripts) are left to the IDNA rules.
    if any(unicodedata.category(ch) in ("Cc", "Co") for ch in text):
        raise QueryError("query holds control characters")
    if any(ch.isspace() for ch in text):
        raise QueryError("send one domain name per query, without options")
    labels = text.rstrip(".").split(".")
    if (any(label.lower().startswith(ACE_PREFIX) for label in labels)
            and any(not label.isascii() for label in labels)):
        raise QueryError("the name mixes A-labels and U-labels; write it all in one form")
    try:
        return parse_domain_name(text, "query")
    except ValidationFailed as failed:
        raise QueryError("malformed domain name: "
                         + "; ".join(error.message for error in failed.errors)) from None


def iso_utc(moment: datetime | None) -> str:
    """ISO 8601 in UTC with a Z, to the second; empty for no date."""
    if moment is None:
        return ""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render(presentation: Presentation, *, whois_server: str, now: datetime,
           terms_url: str) -> str:
    """The WHOIS text of one record, lines ended by CRLF."""
    record = presentation.record
    registrar = record.registrar
    redacted = {redaction.name for redaction in presentation.redactions}
    lines = [
        f"Domain Name: {record.name}",
        f"Registry Domain ID: {record.roid or ''}",
        f"Registrar WHOIS Server: {whois_server}",
        f"Registrar URL: {registrar.url}",
        f"Updated Date: {iso_utc(record.last_changed_at)}",
        f"Creation Date: {iso_utc(record.registered_at)}",
        f"Registrar Registration Expiration Date: {iso_utc(record.expires_at)}",
        f"Registrar: {registrar.name}",
        f"Registrar IANA ID: {registrar.iana_id if registrar.iana_id is not None else ''}",
        f"Registrar Abuse Contact Email: {registrar.abuse_email or ''}",
        f"Registrar Abuse Contact Phone: {registrar.abuse_phone or ''}",
    ]
    lines += [f"Domain Status: {status} {STATUS_URL}{status}"
              for status in (record.statuses or ("ok",))]
    lines += _contact_lines(presentation, ContactRole.REGISTRANT, "Registrant", redacted)
    lines += _contact_lines(presentation, ContactRole.TECHNICAL, "Tech", redacted)
    lines += [f"Name Server: {server}" for server in record.nameservers]
    lines += [
        f"DNSSEC: {'signedDelegation' if record.ds else 'unsigned'}",
        f"URL of the ICANN Whois Inaccuracy Complaint Form: {COMPLAINT_FORM}",
        f">>> Last update of WHOIS database: {iso_utc(now)} <<<",
        "",
        "For more information on Whois status codes, please visit https://icann.org/epp",
        "",
        *_terms(registrar.name, terms_url),
    ]
    return "\r\n".join(_one_line(line) for line in lines) + "\r\n"


def _contact_lines(presentation: Presentation, role: ContactRole, label: str,
                   redacted: set[str]) -> list[str]:
    contact = presentation.contact(role)
    if contact is None:
        return []
    shown = contact.shown

    def value(field: str, name: str) -> str:
        if f"{label} {name}" in redacted:
            return REDACTED
        found = shown.get(field)
        return "" if found is None else str(found)

    handle = REDACTED if f"Registry {label} ID" in redacted else (contact.handle or "")
    lines = [f"Registry {label} ID: {handle}", f"{label} Name: {value('name', 'Name')}"]
    if role is ContactRole.REGISTRANT:
        lines.append(f"{label} Organization: {value('organization', 'Organization')}")
        street = shown.get("street")
        if f"{label} Street" in redacted or not street:
            lines.append(f"{label} Street: {REDACTED if f'{label} Street' in redacted else ''}")
        else:
            lines += [f"{label} Street: {part}" for part in _parts(street)]
        lines += [
            f"{label} City: {value('city', 'City')}",
            f"{label} State/Province: {value('state', 'State/Province')}",
            f"{label} Postal Code: {value('postal_code', 'Postal Code')}",
            f"{label} Country: {value('country', 'Country').upper()}",
        ]
    lines.append(f"{label} Phone: {value('phone', 'Phone')}")
    if role is ContactRole.REGISTRANT:
        lines.append(f"{label} Fax: {value('fax', 'Fax')}")
    if f"{label} Email" in redacted:
        form = contact.contact_uri
        email = (f"Please use the contact form at {form} to write to the {role.value} "
                 "contact of this domain" if form else REDACTED)
    else:
        email = value("email", "Email")
    lines.append(f"{label} Email: {email}")
    return lines


def _parts(street: object) -> Iterable[str]:
    if isinstance(street, list | tuple):
        return [str(part) for part in street]
    return [str(street)]


def _terms(registrar: str, terms_url: str) -> list[str]:
    return [
        f"TERMS OF USE: {registrar} provides this data to help find out about a domain name",
        "registration record. It is given as is, without any guarantee of accuracy. By",
        "querying, you agree to use it only for lawful purposes and never to send mass",
        "unsolicited messages or to run high-volume automated queries; queries are rate",
        "limited per source network. Personal data of registrants and technical contacts is",
        "redacted under ICANN's Registration Data Policy; the contact form named above passes",
        "a message on without revealing the address. Registration Data Access Protocol",
        f"(RDAP) is the authoritative service. Full terms: {terms_url}",
    ]


def _one_line(text: str) -> str:
    """A value never breaks the line format, whatever a contact field holds."""
    return "".join(ch if ch.isprintable() else " " for ch in text)


@dataclass(eq=False)
class _Connection:
    network: str
    task: asyncio.Task[None] | None
    waiting: bool = True  # no query line yet: the connection may be closed for a newcomer
    dropped: bool = field(default=False)


class WhoisServer:
    """The port-43 listener of one installation."""

    def __init__(self, services: Services, *, max_connections: int = MAX_CONNECTIONS,
                 per_source: int | None = None) -> None:
        self.services = services
        self._server: asyncio.Server | None = None
        self.max_connections = max_connections
        self.per_source = per_source or services.settings.limits.whois_connections_per_source
        # Open connections, oldest first, and how many each source network holds.
        self._open: dict[_Connection, None] = {}
        self._per_network: Counter[str] = Counter()

    @property
    def whois_server(self) -> str:
        """The host name WHOIS gives as its own: `[rdds] whois_server`, else the public
        URL's host."""
        settings = self.services.settings
        return settings.rdds.whois_server or urlsplit(settings.public_url).hostname or ""

    async def start(self, host: str, port: int) -> None:
        # The reader's buffer limit bounds the query line: a longer one is refused unread.
        self._server = await asyncio.start_server(self._connection, host, port,
                                                  limit=MAX_QUERY_BYTES + 2)

    @property
    def port(self) -> int:
        assert self._server is not None and self._server.sockets
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def address(self) -> str:
        """Where the server listens, as HOST:PORT."""
        assert self._server is not None and self._server.sockets
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def answer(self, raw: bytes, source: str | None) -> str:
        """The whole answer to one query line from `source`."""
        decision = await self.services.limiter("whois").check(source)
        if not decision.allowed:
            return error_line(f"query rate exceeded; try again in {decision.retry_after} "
                              "seconds")
        try:
            name = parse_query(raw)
        except QueryError as refused:
            return error_line(str(refused))
        services = self.services
        settings = services.settings
        now = services.clock.now()
        try:
            record = await load_domain(services.store, services.sealer, name.ascii,
                                       registrar_url=settings.registrar_url)
            if record is None:
                return (f'No match for "{name.ascii}".\r\n'
                        f">>> Last update of WHOIS database: {iso_utc(now)} <<<\r\n")
            presentation = present(record, Persona.ANONYMOUS, public_url=settings.public_url)
            return render(presentation, whois_server=self.whois_server, now=now,
                          terms_url=settings.terms_url)
        except Exception:  # a database or configuration fault: one line, never a traceback
            log.exception("whois.lookup_failed", domain=name.ascii)
            return error_line("the service is temporarily unavailable; try again later")

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        source = str(peer[0]) if isinstance(peer, tuple) and peer else None
        connection = _Connection(network_of(source), asyncio.current_task())
        try:
            refusal = self._admit(connection)
            if refusal is not None:
                answer = error_line(refusal)
            else:
                answer = await self._serve(reader, source, connection)
            await self._finish(reader, writer, answer)
        except (ConnectionError, OSError):
            pass  # the client went away: nothing to answer
        except asyncio.CancelledError:
            if not connection.dropped:
                raise  # the server is closing
            # Closed for a newcomer: the task ends normally (see _drop_oldest_waiting).
        finally:
            self._release(connection)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    def _admit(self, connection: _Connection) -> str | None:
        """Count `connection` in, or say why it is refused (its source holds its share, or
        every connection is being answered)."""
        refused = self.services.limits.connections_refused
        if self._per_network[connection.network] >= self.per_source:
            refused["whois", "per_source"] += 1
            return "too many connections from your network; close one and try again"
        if len(self._open) >= self.max_connections and not self._drop_oldest_waiting():
            refused["whois", "busy"] += 1
            return "the server is busy; try again in a moment"
        self._open[connection] = None
        self._per_network[connection.network] += 1
        return None

    def _drop_oldest_waiting(self) -> bool:
        """Close the oldest connection that has not sent its query yet, for a newcomer."""
        for oldest in self._open:
            if oldest.waiting and oldest.task is not None:
                oldest.dropped = True
                self._release(oldest)
                oldest.task.cancel()
                self.services.limits.connections_refused["whois", "oldest_idle"] += 1
                return True
        return False

    def _release(self, connection: _Connection) -> None:
        if connection in self._open:
            del self._open[connection]
            self._per_network[connection.network] -= 1
            if self._per_network[connection.network] <= 0:
                del self._per_network[connection.network]

    async def _serve(self, reader: asyncio.StreamReader, source: str | None,
                     connection: _Connection) -> str:
        try:
            async with asyncio.timeout(READ_TIMEOUT_SECONDS):
                line = await reader.readuntil(b"\n")
        except TimeoutError:
            return error_line(f"no query received within {READ_TIMEOUT_SECONDS:g} seconds")
        except asyncio.LimitOverrunError:
            return error_line(f"query is longer than {MAX_QUERY_BYTES} bytes")
        except asyncio.IncompleteReadError as ended:
            line = ended.partial  # the client closed its side without a line end
        connection.waiting = False
        return await self.answer(line, source)

    @staticmethod
    async def _finish(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      answer: str) -> None:
        writer.write(answer.encode("utf-8"))
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        dropped = 0
        with contextlib.suppress(TimeoutError, ValueError, asyncio.LimitOverrunError):
            async with asyncio.timeout(DRAIN_SECONDS):
                while dropped < DRAIN_BYTES:
                    chunk = await reader.read(65536)
                    if not chunk:
                        break
                    dropped += len(chunk)


def error_line(reason: str) -> str:
    return f"Error: {reason}.\r\n" if not reason.endswith(".") else f"Error: {reason}\r\n"
