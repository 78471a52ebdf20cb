"""`regshield serve --whois HOST:PORT` answers WHOIS beside HTTP, and stops with the rest."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

from test_serve import REGSHIELD, STARTUP_TIMEOUT, clean_env, free_port, port_is_open

from whois.test_port43 import WHOIS


async def test_serve_answers_whois_on_the_given_address(tmp_path: Path) -> None:
    whois_port, http_port = free_port(), free_port()
    process = await asyncio.create_subprocess_exec(
        REGSHIELD, "--home", str(tmp_path / "home"), "serve", "--http",
        f"127.0.0.1:{http_port}", "--dns", "off", "--whois", f"127.0.0.1:{whois_port}",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, start_new_session=True,
        env={**clean_env(), "REGSHIELD_SANDBOX_LISTEN": f"127.0.0.1:{free_port()}",
             "REGSHIELD_SANDBOX_DNS_LISTEN": "off"})
    try:
        assert process.stdout is not None
        announced: list[str] = []
        while not any("WHOIS" in line for line in announced):
            line = await asyncio.wait_for(process.stdout.readline(), STARTUP_TIMEOUT)
            assert line, (await process.stderr.read()).decode()[-2000:] \
                if process.stderr else "serve exited"
            announced.append(line.decode().rstrip("\n"))
        assert f"127.0.0.1:{whois_port}" in announced[-1]

        client = await asyncio.create_subprocess_exec(
            WHOIS, "-h", "127.0.0.1", "-p", str(whois_port), "nothing-here.test",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, _ = await asyncio.wait_for(client.communicate(), 30)
        assert 'No match for "nothing-here.test".' in out.decode()

        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
        assert not port_is_open(whois_port)
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
