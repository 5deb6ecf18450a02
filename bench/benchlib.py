"""What the benchmarks share: stopping a server's process group, and wrk over a random
list of paths (with an optional API key) parsed into numbers."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg

REPO = Path(__file__).resolve().parent.parent
BENCH_DB = "jmgeo_bench"


def bench_dsn(name: str = BENCH_DB) -> str:
    """The benchmarks' scratch database on the cluster `make test` / `make run` made
    (another ``name`` keeps a small trial run out of the recorded one's data)."""
    base = (REPO / "var" / "database_url").read_text().strip()
    return urlsplit(base)._replace(path=f"/{name}").geturl()


def ensure_bench_db(dsn: str) -> dict[str, str]:
    """Create the scratch database if absent and migrate it; returns the environment
    that points the platform's tools at it."""
    admin = urlsplit(dsn)._replace(path="/postgres").geturl()
    name = urlsplit(dsn).path.lstrip("/") or BENCH_DB
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                            (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    env = dict(os.environ, DATABASE_URL=dsn)
    subprocess.run([str(REPO / ".venv/bin/jmgeo"), "db", "upgrade"], env=env, check=True)
    return env

LUA_RANDOM_PATHS = """
local paths = {}
local n = 0
init = function(args)
  for line in io.lines(args[1]) do n = n + 1; paths[n] = line end
  if args[2] and args[2] ~= "" then wrk.headers["X-API-Key"] = args[2] end
  if args[3] and args[3] ~= "" then wrk.headers["Accept-Encoding"] = args[3] end
end
request = function()
  return wrk.format("GET", paths[math.random(n)])
end
"""


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (uvicorn and its workers), SIGKILL if it lingers."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


def wait_ready(proc: subprocess.Popen, url: str, what: str, timeout: float = 90) -> None:
    """Poll ``url`` until it answers 200; stop the server and raise if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop(proc)
    raise RuntimeError(f"{what} did not start")


def ms(text: str) -> float:
    """wrk's latency ("812.00us", "3.20ms", "1.05s") in milliseconds."""
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


def run_wrk(port: int, paths: list[str], duration: int, tmp: Path, key: str | None = None,
            connections: int = 8, accept_encoding: str | None = None) -> dict:
    """wrk -t2 against 127.0.0.1:port, each request a random path of ``paths`` (with
    ``X-API-Key`` and ``Accept-Encoding`` when given; wrk sends none by default): req/s,
    non-2xx count, p50/p99 (as wrk prints them and in ms), bytes/s on the wire and wrk's
    own output."""
    pfile = tmp / f"paths-{port}-{random.random()}.txt"
    pfile.write_text("\n".join(paths) + "\n")
    script = tmp / "random.lua"
    script.write_text(LUA_RANDOM_PATHS)
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency",
                          "-s", str(script), f"http://127.0.0.1:{port}", "--", str(pfile),
                          key or "", accept_encoding or ""],
                         capture_output=True, text=True, check=True).stdout
    latency = out.split("Latency Distribution")[1] if "Latency Distribution" in out else ""
    p50 = latency.split("50%")[1].split()[0] if "50%" in latency else "?"
    p99 = latency.split("99%")[1].split()[0] if "99%" in latency else "?"
    return {"rps": float(out.split("Requests/sec:")[1].split()[0]),
            "non2xx": int(out.split("Non-2xx or 3xx responses:")[1].split()[0])
            if "Non-2xx" in out else 0,
            "p50": p50, "p99": p99,
            "p50_ms": ms(p50) if p50 != "?" else None,
            "p99_ms": ms(p99) if p99 != "?" else None,
            "transfer_per_s": size(out.split("Transfer/sec:")[1].split()[0])
            if "Transfer/sec:" in out else None, "raw": out}


def size(text: str) -> float:
    """wrk's byte counts ("812.00B", "3.20KB", "1.05MB", "2.1GB") in bytes."""
    for unit, factor in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10), ("B", 1)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


def run_open_loop(base: str, paths: list[str], rate: float, duration: float,
                  key: str | None = None, clients: int = 50) -> dict:
    """Constant-rate load (what wrk2 does): ``rate`` requests per second spread over
    ``clients`` concurrent connections, each request *scheduled* at ``start + i / rate``
    and its latency measured from that schedule — a request that waited for a busy
    connection counts its wait (no coordinated omission). Returns achieved rate, p50/p99
    in ms and non-2xx answers."""
    import asyncio
    import statistics

    async def main() -> dict:
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        headers = {"X-API-Key": key} if key else {}
        lat: list[float] = []
        bad = 0
        sem = asyncio.Semaphore(clients)
        rnd = random.Random(7)
        async with httpx.AsyncClient(base_url=base, limits=limits, headers=headers,
                                     timeout=30) as client:
            loop = asyncio.get_running_loop()
            start = loop.time() + 0.2
            n = int(rate * duration)

            async def one(i: int) -> None:
                nonlocal bad
                due = start + i / rate
                await asyncio.sleep(max(0.0, due - loop.time()))
                async with sem:
                    r = await client.get(rnd.choice(paths))
                lat.append((loop.time() - due) * 1000)
                if r.status_code >= 300:
                    bad += 1

            t0 = loop.time()
            await asyncio.gather(*(one(i) for i in range(n)))
            took = loop.time() - t0
        lat.sort()
        return {"offered_rps": rate, "achieved_rps": round(len(lat) / took, 1),
                "p50_ms": round(statistics.median(lat), 2),
                "p99_ms": round(lat[int(0.99 * (len(lat) - 1))], 2), "non2xx": bad,
                "requests": len(lat), "clients": clients}

    return asyncio.run(main())
