"""`regshield sandbox-registry` from the shell: accrediting registrars with the sandbox, with
their registry-lock password when they have one."""

from __future__ import annotations

import asyncio
import os
import re
import ssl
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.message
import dns.rdatatype

from regshield.config import Listen
from regshield.registry.codec import DOMAIN_NS, ResultCode, Secret
from regshield.registry.commands import Login, build_command
from regshield.registry.framing import read_frame, write_frame
from regshield.registry.responses import parse_greeting, parse_response
from regshield.registry.sandbox.server import SandboxServer
from regshield.registry.sandbox.state import SandboxConfig, sandbox_directory

from .test_server import client_certificate

REGSHIELD = str(Path(sys.executable).with_name("regshield"))


async def regshield(home: Path, *args: str, stdin: str = "") -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGSHIELD_")}
    process = await asyncio.create_subprocess_exec(
        REGSHIELD, "--home", str(home), *args, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    stdout, stderr = await asyncio.wait_for(process.communicate(stdin.encode()), timeout=120)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def login(server: SandboxServer, client_id: str, password: str) -> ResultCode:
    context = ssl.create_default_context(cafile=str(server.certificate))
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=context,
                                                   server_hostname="localhost")
    try:
        await read_frame(reader)  # the greeting
        await write_frame(writer, build_command(Login(
            client_id, Secret(password), object_uris=(DOMAIN_NS,), extension_uris=())))
        return parse_response(await read_frame(reader)).code
    finally:
        writer.close()


async def test_a_registrar_added_from_the_shell_can_log_in_to_a_running_sandbox(
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    config = SandboxConfig(directory=sandbox_directory(home), listen=Listen("127.0.0.1", 0))
    server = await SandboxServer.start(config)
    try:
        code, stdout, stderr = await regshield(home, "sandbox-registry", "add-registrar",
                                               "shell-rar", "--password-stdin",
                                               stdin="shell-pass-1\n")
        assert code == 0, stderr
        assert "registrar shell-rar added" in stdout
        assert "shell-pass-1" not in stdout + stderr
        assert await login(server, "shell-rar", "shell-pass-1") == ResultCode.COMPLETED
    finally:
        await server.close()


async def test_add_registrar_with_a_client_certificate_prints_its_fingerprint(
        tmp_path: Path) -> None:
    certificate, _key = client_certificate(tmp_path, "shell-rar")

    code, stdout, stderr = await regshield(
        tmp_path / "home", "sandbox-registry", "add-registrar", "shell-rar",
        "--password-stdin", "--client-cert", str(certificate), stdin="shell-pass-1\n")

    assert code == 0, stderr
    assert "client certificate SHA-256" in stdout


async def test_add_registrar_refuses_bad_input_with_a_message(tmp_path: Path) -> None:
    home = tmp_path / "home"
    no_stdin = await regshield(home, "sandbox-registry", "add-registrar", "shell-rar")
    short = await regshield(home, "sandbox-registry", "add-registrar", "shell-rar",
                            "--password-stdin", stdin="abc\n")
    missing = await regshield(home, "sandbox-registry", "add-registrar", "shell-rar",
                              "--password-stdin", "--client-cert", str(tmp_path / "none.pem"),
                              stdin="shell-pass-1\n")
    await regshield(home, "sandbox-registry", "add-registrar", "shell-rar",
                    "--password-stdin", stdin="shell-pass-1\n")
    twice = await regshield(home, "sandbox-registry", "add-registrar", "shell-rar",
                            "--password-stdin", stdin="shell-pass-2\n")

    assert no_stdin[0] == 2 and "--password-stdin" in no_stdin[2]
    assert short[0] == 1 and "password" in short[2] and "Traceback" not in short[2]
    assert missing[0] == 1 and "none.pem" in missing[2] and "Traceback" not in missing[2]
    assert twice[0] == 1 and "exists" in twice[2]


async def test_serve_listens_where_it_says_and_greets(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGSHIELD_")}
    process = await asyncio.create_subprocess_exec(
        REGSHIELD, "--home", str(home), "sandbox-registry", "serve", "--listen",
        "127.0.0.1:0", "--dns-listen", "127.0.0.1:0", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env)
    try:
        assert process.stdout is not None
        first = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        lines = [(await asyncio.wait_for(process.stdout.readline(), 10)).decode()
                 for _ in range(4)]
        dns_line = re.search(r"TLD zones over DNS on 127\.0\.0\.1:(\d+)", lines[2])
        assert dns_line, lines
        assert lines[3].strip().startswith(("test. DS ", "example. DS "))
        soa = await dns.asyncquery.udp(dns.message.make_query("test.", "SOA"), "127.0.0.1",
                                       port=int(dns_line.group(1)), timeout=5)
        assert soa.answer and soa.answer[0].rdtype == dns.rdatatype.SOA
        match = re.search(r"on 127\.0\.0\.1:(\d+)", first)
        assert match, first
        context = ssl.create_default_context(
            cafile=str(sandbox_directory(home) / "server-certificate.pem"))
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", int(match.group(1)), ssl=context, server_hostname="localhost")
        greeting = parse_greeting(await asyncio.wait_for(read_frame(reader), 10))
        writer.close()
        assert greeting.server_id == "regshield-sandbox"
    finally:
        process.terminate()
        await process.wait()


async def test_add_registrar_with_a_lock_password_file_gives_it_lock_sessions(
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    lock_file = tmp_path / "lock-password"
    lock_file.write_text("lock-pass-77\nother-pass-9\n")
    config = SandboxConfig(directory=sandbox_directory(home), listen=Listen("127.0.0.1", 0))
    server = await SandboxServer.start(config)
    try:
        code, stdout, stderr = await regshield(
            home, "sandbox-registry", "add-registrar", "lock-rar", "--password-stdin",
            "--lock-password-file", str(lock_file), stdin="shell-pass-1\n")
        assert code == 0, stderr
        assert "registry-lock password set" in stdout
        assert "lock-pass-77" not in stdout + stderr
        assert await login(server, "lock-rar", "lock-pass-77") == ResultCode.COMPLETED
        assert await login(server, "lock-rar", "other-pass-9") \
            == ResultCode.AUTHENTICATION_ERROR  # only the first line is the password
    finally:
        await server.close()


async def test_add_registrar_refuses_a_bad_lock_password_file_and_adds_nothing(
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    same, empty = tmp_path / "same", tmp_path / "empty"
    same.write_text("shell-pass-1\n")
    empty.write_text("\nlock-pass-77\n")

    def add(lock_file: Path) -> Coroutine[Any, Any, tuple[int, str, str]]:
        return regshield(home, "sandbox-registry", "add-registrar", "lock-rar",
                         "--password-stdin", "--lock-password-file", str(lock_file),
                         stdin="shell-pass-1\n")

    missing = await add(tmp_path / "none")
    as_password = await add(same)
    blank = await add(empty)
    plain = await regshield(home, "sandbox-registry", "add-registrar", "lock-rar",
                            "--password-stdin", stdin="shell-pass-1\n")

    assert missing[0] == 1 and str(tmp_path / "none") in missing[2]
    assert as_password[0] == 1 and "lock_password" in as_password[2]
    assert "shell-pass-1" not in as_password[1] + as_password[2]
    assert blank[0] == 1 and "empty" in blank[2]
    assert all("Traceback" not in result[2] for result in (missing, as_password, blank))
    assert plain[0] == 0, plain[2]  # none of the refused attempts added the registrar
