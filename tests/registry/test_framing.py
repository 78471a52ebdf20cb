"""EPP data units over TLS (RFC 5734): length-prefixed frames, bounded, on a real TLS socket."""

from __future__ import annotations

import asyncio
import ssl
import struct
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from regshield.registry.framing import (
    MAX_FRAME_BYTES,
    FramingError,
    encode_frame,
    read_frame,
    write_frame,
)


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1)).not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


class TlsPair:
    """A TLS server on loopback whose handler the test supplies, and a connected client."""

    def __init__(self, directory: Path) -> None:
        self.cert, self.key = self_signed(directory)
        self.server_side: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = \
            asyncio.Queue()

    async def start(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_context.minimum_version = ssl.TLSVersion.TLSv1_2
        server_context.load_cert_chain(self.cert, self.key)

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self.server_side.put((reader, writer))

        self.server = await asyncio.start_server(accept, "127.0.0.1", 0, ssl=server_context)
        port = self.server.sockets[0].getsockname()[1]
        client_context = ssl.create_default_context(cafile=str(self.cert))
        client_context.minimum_version = ssl.TLSVersion.TLSv1_2
        return await asyncio.open_connection("127.0.0.1", port, ssl=client_context,
                                             server_hostname="localhost")

    async def close(self) -> None:
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def tls(tmp_path: Path) -> AsyncIterator[TlsPair]:
    pair = TlsPair(tmp_path)
    yield pair
    await pair.close()


async def test_frames_cross_a_tls_connection_intact_and_in_order(tls: TlsPair) -> None:
    client_reader, client_writer = await tls.start()
    server_reader, server_writer = await tls.server_side.get()
    documents = [b"<epp/>", "<epp>gr\u00fc\u00df</epp>".encode(), b"x" * 100_000]

    for document in documents:
        await write_frame(client_writer, document)
    received = [await read_frame(server_reader) for _ in documents]
    await write_frame(server_writer, b"<epp><response/></epp>")

    assert received == documents
    assert await read_frame(client_reader) == b"<epp><response/></epp>"
    client_writer.close()
    server_writer.close()


def test_the_length_counts_the_four_header_bytes() -> None:
    assert encode_frame(b"<epp/>")[:4] == struct.pack(">I", 10)


async def test_a_frame_announcing_more_than_the_limit_is_refused_before_reading_it() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(struct.pack(">I", MAX_FRAME_BYTES + 1))
    with pytest.raises(FramingError, match="exceeds"):
        await read_frame(reader)


async def test_a_length_shorter_than_the_header_is_refused() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(struct.pack(">I", 3))
    with pytest.raises(FramingError, match="shorter than its own header"):
        await read_frame(reader)


async def test_a_connection_closed_mid_frame_is_reported_as_incomplete() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(struct.pack(">I", 100) + b"<epp")
    reader.feed_eof()
    with pytest.raises(asyncio.IncompleteReadError):
        await read_frame(reader)


def test_an_oversized_payload_is_not_sent() -> None:
    with pytest.raises(FramingError):
        encode_frame(b"x" * MAX_FRAME_BYTES)
