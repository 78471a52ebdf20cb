"""Fuzz the HTTP API against its own OpenAPI document with Schemathesis.

A real `regshield serve` is started on loopback, on free ports and a fresh data directory (the
built-in sandbox registry included, so registrations, transfers and renewals reach an EPP
server). An admin (staff) and an account owner are created with the CLI, each with an API token
made by `regshield token create`, and Schemathesis generates requests from the document the
server publishes (/api/v1/openapi.json), once per identity, with a fixed seed:

    .venv/bin/python bench/fuzz.py [--max-examples 100] [--seed 19] [--checks ...]
                                   [--identities owner,admin] [--phases ...] [--json FILE]

`make fuzz` runs the deep run (thousands of requests); tests/api/test_contract.py runs the same
harness with a few examples per operation in `make test`.

Each identity runs twice: the main run with every operation but `POST /api/v1/auth/logout`,
then a run of logout alone with a token of its own. Logout revokes the token that calls it
(as documented), so inside the main run the first generated logout would turn every later
request of that identity into a 401 and the run would test nothing past it. The owner runs
before the admin: the admin may suspend or delete things the owner's run relies on, never the
reverse (the owner's token cannot reach staff operations).

It prints, per run and in total, the requests sent, the operations tested and the failures by
check, and exits 1 on any failure of the checks asked for (2 when the harness itself fails).
Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

API = "/api/v1"
LOGOUT = f"{API}/auth/logout"
START_TIMEOUT = 60.0
# Every check this harness knows; `make test` runs a subset (tests/api/test_contract.py).
ALL_CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
              "response_schema_conformance")
DEFAULT_PHASES = "examples,coverage,fuzzing"
HOOKS = Path(__file__).resolve().with_name("fuzz_hooks.py")


class FuzzFailure(Exception):
    """The harness could not run (the server did not start, the CLI failed...)."""


@dataclass
class RunResult:
    name: str
    exit_code: int
    requests: int = 0
    operations: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    statuses: Counter[str] = field(default_factory=Counter)

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "exit_code": self.exit_code, "requests": self.requests,
                "operations": self.operations, "failures": dict(self.failures),
                "examples": self.examples, "statuses": dict(self.statuses)}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def executable(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise FuzzFailure(f"`{name}` not found beside {sys.executable} nor on PATH")
    return found


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("REGSHIELD_")}


@contextlib.contextmanager
def served(home: Path, log_path: Path) -> Iterator[tuple[list[str], int]]:
    """A `regshield serve` on free loopback ports until the block ends: (cli base, HTTP port)."""
    base = [executable("regshield"), "--home", str(home)]
    port = free_port()
    env = {**clean_env(), "REGSHIELD_SANDBOX_LISTEN": f"127.0.0.1:{free_port()}",
           "REGSHIELD_SANDBOX_DNS_LISTEN": f"127.0.0.1:{free_port()}"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*base, "serve", "--http", f"127.0.0.1:{port}", "--dns", f"127.0.0.1:{free_port()}"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise FuzzFailure(f"serve exited with {process.returncode}:\n" + tail(log_path))
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise FuzzFailure(f"serve did not listen in {START_TIMEOUT:.0f}s:\n"
                                      + tail(log_path)) from None
                time.sleep(0.2)
        yield base, port
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def cli(base: list[str], *args: str, stdin: str | None = None) -> str:
    # The CLI opens the same data directory; it must not start listeners of its own.
    env = {**clean_env(), "REGSHIELD_SANDBOX_LISTEN": f"127.0.0.1:{free_port()}",
           "REGSHIELD_DNS_LISTEN": "off", "REGSHIELD_SANDBOX_DNS_LISTEN": "off"}
    result = subprocess.run([*base, *args], input=stdin, capture_output=True, text=True,
                            timeout=120, check=False, env=env)
    if result.returncode != 0:
        raise FuzzFailure(f"`regshield {' '.join(args)}` failed ({result.returncode}):\n"
                          + result.stdout + result.stderr)
    return result.stdout


def identity(base: list[str], email: str, role: str, account: str | None = None) -> str:
    """A user made with the CLI, and a fresh API token of theirs (the last line printed)."""
    if account is not None and role != "admin":
        cli(base, "user", "create", email, "--role", role, "--account", account,
            "--password-stdin", stdin=secrets.token_urlsafe(18) + "\n")
    elif role == "admin":
        cli(base, "user", "create", email, "--role", role, "--password-stdin",
            stdin=secrets.token_urlsafe(18) + "\n")
    return token(base, email)


def token(base: list[str], email: str) -> str:
    return cli(base, "token", "create", email, "--name", "fuzz").strip().splitlines()[-1]


def schemathesis_run(name: str, port: int, bearer: str, args: argparse.Namespace,
                     workdir: Path, *, logout_only: bool) -> RunResult:
    report = workdir / f"{name}.ndjson"
    command = [
        executable("schemathesis"), "run", f"http://127.0.0.1:{port}{API}/openapi.json",
        "--checks", args.checks, "--max-examples", str(args.max_examples),
        "--seed", str(args.seed), "--phases", args.phases, "--workers", "1",
        "--header", f"Authorization: Bearer {bearer}",
        "--request-timeout", "30", "--continue-on-failure", "--no-shrink",
        "--suppress-health-check", "all", "--warnings", "off",
        "--report", "ndjson", "--report-ndjson-path", str(report),
        "--output-truncate", "true",
    ]
    command += (["--include-path", LOGOUT] if logout_only else ["--exclude-path", LOGOUT])
    env = {k: v for k, v in os.environ.items() if k != "SCHEMATHESIS_HOOKS"}
    env["NO_COLOR"] = "1"
    if args.realistic:
        env["SCHEMATHESIS_HOOKS"] = str(HOOKS)
        env["FUZZ_ACCOUNT"] = args.account_id
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        completed = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT,
                                   cwd=workdir, env=env, check=False)
    result = RunResult(name, completed.returncode)
    if completed.returncode not in (0, 1) or not report.exists():
        raise FuzzFailure(f"schemathesis {name} exited {completed.returncode}:\n" + tail(log, 60))
    summarize(report, result)
    return result


def summarize(report: Path, result: RunResult) -> None:
    """Count requests, operations, statuses and failures by check from the NDJSON events.

    A failure is counted once per operation, check and message (as Schemathesis reports unique
    failures), however many generated cases hit it."""
    operations: set[str] = set()
    seen: set[tuple[str, str, str]] = set()
    for line in report.read_text().splitlines():
        scenario = json.loads(line).get("ScenarioFinished")
        if scenario is None:
            continue
        recorder = scenario.get("recorder") or {}
        label = recorder.get("label") or ""
        if label:
            operations.add(label)
        for interaction in (recorder.get("interactions") or {}).values():
            response = interaction.get("response")
            if response is not None:
                result.requests += 1
                result.statuses[str(response.get("status_code"))] += 1
        for case_id, checks in (recorder.get("checks") or {}).items():
            for check in checks:
                if check.get("status") != "failure":
                    continue
                name = check.get("name", "?")
                failure = (check.get("failure_info") or {}).get("failure") or {}
                message = f"{failure.get('title', '')}: {failure.get('message', '')}"
                if (label, name, message) in seen:
                    continue
                seen.add((label, name, message))
                result.failures[name] += 1
                examples = result.examples.setdefault(name, [])
                if len(examples) < 5:
                    text = f"{label}: {message} [case {case_id}]".replace("\n", " ")
                    examples.append(text[:400])
    result.operations = len(operations)


def run(args: argparse.Namespace) -> list[RunResult]:
    results: list[RunResult] = []
    with tempfile.TemporaryDirectory(prefix="regshield-fuzz-") as tmp:
        workdir = Path(tmp)
        with served(workdir / "home", workdir / "serve.log") as (base, port):
            args.account_id = cli(base, "account", "create", "fuzz").split()[1]
            tokens = {
                "owner": lambda: identity(base, "owner@fuzz.example", "owner", "fuzz"),
                "admin": lambda: identity(base, "admin@fuzz.example", "admin"),
            }
            emails = {"owner": "owner@fuzz.example", "admin": "admin@fuzz.example"}
            for who in args.identities.split(","):
                results.append(schemathesis_run(who, port, tokens[who](), args, workdir,
                                                logout_only=False))
                if not args.skip_logout:
                    results.append(schemathesis_run(f"{who}-logout", port,
                                                    token(base, emails[who]), args, workdir,
                                                    logout_only=True))
        if args.keep:
            kept = Path(args.keep)
            kept.mkdir(parents=True, exist_ok=True)
            for path in workdir.glob("*.log"):
                shutil.copy(path, kept / path.name)
            for path in workdir.glob("*.ndjson"):
                shutil.copy(path, kept / path.name)
    return results


def print_results(results: list[RunResult]) -> None:
    total_requests = sum(r.requests for r in results)
    total_failures: Counter[str] = Counter()
    for result in results:
        total_failures.update(result.failures)
        failures = ", ".join(f"{k} {v}" for k, v in sorted(result.failures.items())) or "none"
        statuses = " ".join(f"{k}:{v}" for k, v in sorted(result.statuses.items()))
        print(f"{result.name:14} requests {result.requests:6}  operations {result.operations:3}"
              f"  failures: {failures}")
        print(f"{'':14} statuses {statuses}")
        for check, examples in sorted(result.examples.items()):
            for example in examples:
                print(f"{'':14} {check}: {example}")
    failures = ", ".join(f"{k} {v}" for k, v in sorted(total_failures.items())) or "none"
    print(f"{'total':14} requests {total_requests:6}  failures: {failures}")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--checks", default=",".join(ALL_CHECKS))
    parser.add_argument("--phases", default=DEFAULT_PHASES)
    parser.add_argument("--identities", default="owner,admin")
    parser.add_argument("--skip-logout", action="store_true")
    parser.add_argument("--realistic", action=argparse.BooleanOptionalAction, default=True,
                        help="offer valid domain names and the run's account beside the "
                             "generated values (bench/fuzz_hooks.py)")
    parser.add_argument("--json", help="write the counts and failure examples here")
    parser.add_argument("--keep", help="copy Schemathesis' logs and NDJSON reports here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        results = run(args)
    except FuzzFailure as failure:
        print(f"fuzz: {failure}", file=sys.stderr)
        return 2
    print_results(results)
    if args.json:
        Path(args.json).write_text(json.dumps([r.as_json() for r in results], indent=2))
    return 1 if any(r.failures or r.exit_code for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
