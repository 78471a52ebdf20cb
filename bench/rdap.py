"""RDAP benchmark: `/rdap/domain/{name}` on regshield, beside nginx serving the same documents.

Builds an installation of N sponsored domains (default 100,000; 1,000 distinct contacts, sealed
as always, half of the domains with a technical contact, one in four with DS records) on SQLite
or PostgreSQL, starts a real `regshield serve` and waits until it has rendered every domain's
anonymous document (rdds/documents.py; the rate is printed).

Then, with wrk (one thread, `--connections` keep-alive connections, `--seconds` each phase,
anonymous):
- cold: names never asked before, each once, in a shuffled order, with one query in
  `--unknown-every` for a name that no domain has (404, and no state may be kept for it);
- the documents of every domain are fetched once and checked (status 200,
  `application/rdap+json`, the name, the redactions), and written as static files for nginx
  (as many worker processes as regshield has HTTP processes, `--workers`, one by default;
  `--nginx-workers` changes it), the ceiling for HTTP on this machine;
- warm: random domains of the N.
nginx answers the same two phases. The lookups per second, the p50/p99 latency, the CPU per
lookup and the ratio are printed. wrk counts every answer that is not 2xx: any in the warm
phase, or more than the unknown names in the cold phase, makes the run exit 1. The rate limit is
raised for the run (it would otherwise refuse a benchmark from one address).

    .venv/bin/python bench/rdap.py [--domains 100000] [--seconds 15] [--connections 32]
                                   [--backend sqlite|postgresql] [--workers 1]
                                   [--nginx-workers N]
                                   [--unknown-every 10]

Needs `nginx` and `wrk` (Debian packages nginx-light and wrk). Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from api import (
    BenchFailure,
    RawHttp,
    Reply,
    cli,
    database_url,
    executable,
    free_port,
    hammer,
    make_contacts,
    postgres_database,
    process_cpu,
    server,
)
from sqlalchemy import func, insert, select, text, update

from regshield import logs
from regshield.config import Settings
from regshield.flows.accounts import AccountCreate
from regshield.flows.contacts import ContactCreate
from regshield.flows.context import RequestContext, system_actor
from regshield.flows.runner import run_flow
from regshield.services import Services
from regshield.store.engine import Store
from regshield.store.models import Domain, RdapDocument, Registrar
from regshield.store.queries.contacts import contact_by_handle

TLDS = ("test", "example", "invalid-bench")
WRK_SCRIPT = """
local names = {}
for line in io.lines("%(names)s") do names[#names + 1] = line end
math.randomseed(%(seed)d)
local walked = 0
request = function()
  local name
  if %(walk)s then
    walked = walked + 1
    name = names[(walked - 1) %% #names + 1]
  else
    name = names[math.random(#names)]
  end
  return wrk.format("GET", "%(prefix)s" .. name)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%%d seconds=%%.6f p50=%%d p99=%%d non2xx=%%d "
                         .. "errors=%%d\\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(99),
    summary.errors.status, summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout))
end
"""
NGINX_CONF = """
daemon off;
worker_processes %(workers)d;
pid %(root)s/nginx.pid;
error_log %(root)s/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path %(root)s/tmp;
  proxy_temp_path %(root)s/tmp;
  fastcgi_temp_path %(root)s/tmp;
  uwsgi_temp_path %(root)s/tmp;
  scgi_temp_path %(root)s/tmp;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:%(port)d;
    root %(root)s/www;
    location /rdap/ {
      default_type application/rdap+json;
      add_header Access-Control-Allow-Origin "*";
    }
  }
}
"""


def domain_names(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    names: set[str] = set()
    while len(names) < n:
        label = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789")
                        for _ in range(rng.randint(6, 14)))
        names.add(f"{label}.{rng.choice(TLDS)}")
    return sorted(names)


async def seed(home: Path, database: str | None, names: list[str], contacts_n: int) -> None:
    """Contacts through the contact flow (sealed as in production); domains in bulk."""
    settings = Settings.load(home=home, database_url=database)
    services = Services.open(settings)
    try:
        actor, context = system_actor("bench"), RequestContext("system")
        await run_flow(services, actor, context, AccountCreate("bench"))
        handles = []
        for body in make_contacts(contacts_n, seed=7):
            body = {k: v for k, v in body.items() if not k.startswith("_")}
            view = await run_flow(services, actor, context, ContactCreate(body, "bench"))
            handles.append(view.handle)
        now = datetime.now(UTC)
        async with services.store.write() as session:
            await session.execute(update(Registrar).where(Registrar.id == 1).values(
                name="Bench Registrar", iana_id=9999, abuse_email="abuse@registrar.example",
                abuse_phone="+1.5555550100"))
            ids = [(await contact_by_handle(session, h)) for h in handles]
            contact_ids = [c.id for c in ids if c is not None]
            account_id = ids[0].account_id if ids and ids[0] else 1
            rng = random.Random(11)
            rows: list[dict[str, Any]] = []
            for i, name in enumerate(names):
                created = now - timedelta(days=rng.randint(1, 3000))
                rows.append({
                    "name": name, "unicode_name": name, "account_id": account_id,
                    "registry_link": "sandbox", "state": "active", "roid": f"D{i + 1}-BENCH",
                    "registrant_id": rng.choice(contact_ids),
                    "tech_id": rng.choice(contact_ids) if i % 2 else None,
                    "nameservers": [f"ns{k}.dns-host{rng.randint(1, 500)}.example"
                                    for k in (1, 2)],
                    "ds": ([{"key_tag": rng.randint(1, 65535), "algorithm": 13,
                             "digest_type": 2, "digest": secrets.token_hex(32).upper()}]
                           if i % 4 == 0 else []),
                    "holds": [], "registry_statuses": ["clientTransferProhibited",
                                                       "clientDeleteProhibited"],
                    "expires_at": created + timedelta(days=365 * rng.randint(1, 10)),
                    "created_at": created, "updated_at": created + timedelta(days=1),
                    "registry_locked": False, "registry_lock_revision": 0,
                    "publish_consent": {},
                })
                if len(rows) == 5000:
                    await session.execute(insert(Domain), rows)
                    rows = []
            if rows:
                await session.execute(insert(Domain), rows)
            if not settings.is_sqlite:
                # Statistics, as autovacuum would gather after a bulk load: without them the
                # planner takes 100,000 domains for a handful and joins them all per batch.
                await session.execute(text("ANALYZE"))
    finally:
        await services.close()


def check_document(name: str, reply: Reply) -> str | None:
    if reply.status_code != 200:
        return f"HTTP {reply.status_code}: {reply.text[:200]}"
    if reply.headers.get("content-type", "").split(";")[0] != "application/rdap+json":
        return f"content type {reply.headers.get('content-type')!r}"
    document = reply.json()
    if document.get("ldhName") != name or not document.get("redacted"):
        return "not the domain's redacted document"
    return None


async def fetch_all(port: int, names: list[str], pid: int, www: Path,
                    concurrency: int) -> tuple[float, list[str]]:
    transports = [RawHttp("127.0.0.1", port, {}) for _ in range(concurrency)]
    replies: dict[int, bytes] = {}
    paths = [f"/rdap/domain/{name}" for name in names]

    def check(i: int, reply: Reply) -> str | None:
        problem = check_document(names[i], reply)
        if problem is None:
            replies[i] = reply.content
        return problem

    phase = await hammer(list(transports), "fetch", "GET", paths, None, check, pid)
    for transport in transports:
        await transport.close()
    target = www / "rdap" / "domain"
    target.mkdir(parents=True, exist_ok=True)
    for i, content in replies.items():
        (target / names[i]).write_bytes(content)
    return phase.requests / phase.seconds, phase.errors


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children (nginx's workers are children of its
    master)."""
    total = process_cpu(pid)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            total += process_cpu(int(stat.parent.name))
    return total


def run_wrk(port: int, names_file: Path, args: argparse.Namespace, label: str,
            pid: int, *, walk: bool = False) -> dict[str, float]:
    """wrk for `--seconds`: random names of the file, or (`walk`) each name once in order."""
    script = names_file.parent / f"wrk-{label}.lua"
    script.write_text(WRK_SCRIPT % {"names": names_file, "seed": args.seed,
                                    "prefix": "/rdap/domain/",
                                    "walk": "true" if walk else "false"})
    cpu_before = tree_cpu(pid)
    result = subprocess.run(
        [executable("wrk"), "-t1", f"-c{args.connections}", f"-d{args.seconds}s",
         "--timeout", "10s", "-s", str(script), f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, timeout=args.seconds + 60, check=False)
    cpu = tree_cpu(pid) - cpu_before
    match = re.search(r"RESULT requests=(\d+) seconds=([\d.]+) p50=(\d+) p99=(\d+) "
                      r"non2xx=(\d+) errors=(\d+)", result.stdout)
    if result.returncode != 0 or match is None:
        raise BenchFailure(f"wrk against {label} failed:\n{result.stdout}{result.stderr}")
    requests, seconds = int(match[1]), float(match[2])
    return {"requests": requests, "rps": requests / seconds, "p50_ms": int(match[3]) / 1000,
            "p99_ms": int(match[4]) / 1000, "non2xx": int(match[5]), "errors": int(match[6]),
            "cpu_per_request_ms": cpu / max(requests, 1) * 1000}


async def wait_rendered(home: Path, database: str | None, expected: int,
                        limit_seconds: float) -> float:
    """Seconds until the server has a document for `expected` domains."""
    settings = Settings.load(home=home, database_url=database)
    store = Store(settings.database_url)
    started = time.perf_counter()
    try:
        while True:
            row = await store.lookup(select(func.count()).select_from(RdapDocument), {})
            if row is not None and row[0] >= expected:
                return time.perf_counter() - started
            if time.perf_counter() - started > limit_seconds:
                raise BenchFailure(f"only {row[0] if row else 0:,} of {expected:,} documents "
                                   f"were rendered in {limit_seconds:.0f} s")
            await asyncio.sleep(0.5)
    finally:
        await store.close()


def cold_names(names: list[str], args: argparse.Namespace) -> list[str]:
    """The cold walk: every name in a shuffled order, and one in `--unknown-every` a name no
    domain has."""
    rng = random.Random(args.seed + 1)
    walk = list(names)
    rng.shuffle(walk)
    mixed: list[str] = []
    for name in walk:
        if args.unknown_every and (len(mixed) + 1) % args.unknown_every == 0:
            mixed.append(f"unknown-{secrets.token_hex(6)}.{rng.choice(TLDS)}")
        mixed.append(name)
    return mixed


def cold_failures(figures: dict[str, float], unknown_every: int, connections: int) -> bool:
    """Whether the cold phase had answers other than the expected 404s of unknown names."""
    expected = figures["requests"] / unknown_every if unknown_every else 0
    return figures["errors"] > 0 or abs(figures["non2xx"] - expected) > connections + 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--domains", type=int, default=100_000)
    parser.add_argument("--contacts", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres", default="postgresql://127.0.0.1:5432")
    parser.add_argument("--postgres-admin", default="postgresql://127.0.0.1:5432/test")
    parser.add_argument("--workers", type=int, default=1,
                        help="HTTP processes of regshield (more than one needs PostgreSQL), "
                             "and nginx workers unless --nginx-workers says otherwise")
    parser.add_argument("--nginx-workers", type=int, default=None)
    parser.add_argument("--unknown-every", type=int, default=10,
                        help="one query in this many of the cold phase is for an unknown name")
    parser.add_argument("--render-timeout", type=float, default=900.0)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    if args.nginx_workers is None:
        args.nginx_workers = args.workers
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            print(f"{tool} is missing: apt-get install nginx-light wrk", file=sys.stderr)
            return 2

    logs.configure("warning")
    names = domain_names(args.domains, args.seed)
    with tempfile.TemporaryDirectory(prefix="regshield-rdap-bench-") as tmp_text:
        tmp = Path(tmp_text)
        tmp.chmod(0o755)  # nginx's workers run as an unprivileged user and read the files
        names_file = tmp / "names.txt"
        names_file.write_text("\n".join(names) + "\n")
        walk = cold_names(names, args)
        cold_file = tmp / "cold.txt"
        cold_file.write_text("\n".join(walk) + "\n")
        home = tmp / "home"
        with (postgres_database(args.postgres_admin, "regshield_rdap_bench")
              if args.backend == "postgresql" else _none()) as db:
            base = [executable("regshield"), "--home", str(home)]
            url = database_url(args.postgres, db) if db else None
            if url:
                base += ["--database-url", url]
            cli(base, "init")
            started = time.perf_counter()
            asyncio.run(seed(home, url, names, args.contacts))
            print(f"seeded {len(names):,} domains in {time.perf_counter() - started:.1f} s "
                  f"({args.backend})")
            port = free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("REGSHIELD_")}
            env.update({"REGSHIELD_RDDS_PER_MINUTE": "10000000", "REGSHIELD_RDDS_BURST":
                        "10000000", "REGSHIELD_LOG_LEVEL": "warning",
                        # As many HTTP processes as asked (on PostgreSQL the default is
                        # one per core), beside as many nginx workers.
                        "REGSHIELD_HTTP_WORKERS": str(args.workers)})
            with server([*base, "serve", "--http", f"127.0.0.1:{port}", "--dns", "off"],
                        port, tmp / "serve.log", env) as process:
                seconds = asyncio.run(wait_rendered(home, url, len(names),
                                                    args.render_timeout))
                print(f"rendered {len(names):,} documents in {seconds:.1f} s "
                      f"({len(names) / max(seconds, 1e-9):,.0f}/s, in the background)")
                ours_cold = run_wrk(port, cold_file, args, "regshield-cold", process.pid,
                                    walk=True)
                if ours_cold["requests"] >= len(walk):
                    print("the cold walk wrapped around: use more --domains or fewer "
                          "--seconds", file=sys.stderr)
                rate, errors = asyncio.run(fetch_all(port, names, process.pid, tmp / "www",
                                                     args.connections))
                if errors:
                    print(f"{len(errors)} documents failed, first: {errors[0]}",
                          file=sys.stderr)
                    return 1
                print(f"fetched and checked {len(names):,} documents ({rate:,.0f}/s, "
                      "a first pass through every domain)")
                ours = run_wrk(port, names_file, args, "regshield", process.pid)
            nginx_port = free_port()
            (tmp / "tmp").mkdir()
            conf = tmp / "nginx.conf"
            conf.write_text(NGINX_CONF % {"workers": args.nginx_workers, "root": tmp,
                                          "port": nginx_port})
            nginx = shutil.which("nginx") or "/usr/sbin/nginx"
            with server([nginx, "-c", str(conf), "-e", str(tmp / "nginx-error.log")],
                        nginx_port, tmp / "nginx.log") as process:
                theirs_cold = run_wrk(nginx_port, cold_file, args, "nginx-cold", process.pid,
                                      walk=True)
                theirs = run_wrk(nginx_port, names_file, args, "nginx", process.pid)
    report = {"domains": len(names), "backend": args.backend, "regshield": ours,
              "nginx": theirs, "ratio": ours["rps"] / theirs["rps"],
              "regshield_cold": ours_cold, "nginx_cold": theirs_cold,
              "ratio_cold": ours_cold["rps"] / theirs_cold["rps"],
              "unknown_every": args.unknown_every, "render_seconds": seconds}
    print(f"\n/rdap/domain/{{name}}, {len(names):,} domains, wrk -c{args.connections} "
          f"{args.seconds}s per phase, anonymous; cold: names never asked before, one in "
          f"{args.unknown_every} unknown (404)")
    print(f"{'':16}{'lookups/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms/req':>12}")
    for label, figures in (("regshield cold", ours_cold), ("nginx cold", theirs_cold),
                           ("regshield warm", ours), ("nginx warm", theirs)):
        print(f"{label:16}{figures['rps']:>12,.0f}{figures['p50_ms']:>9.2f}"
              f"{figures['p99_ms']:>9.2f}{figures['cpu_per_request_ms']:>12.3f}")
    print(f"ratio regshield / nginx: warm {report['ratio']:.3f}, "
          f"cold {report['ratio_cold']:.3f}")
    print(json.dumps(report))
    failed = (ours["non2xx"] or ours["errors"] or theirs["non2xx"] or theirs["errors"]
              or cold_failures(ours_cold, args.unknown_every, args.connections)
              or cold_failures(theirs_cold, args.unknown_every, args.connections))
    if failed:
        print("some requests failed (non-2xx answers or socket errors)", file=sys.stderr)
        return 1
    return 0


class _none:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


if __name__ == "__main__":
    sys.exit(main())
