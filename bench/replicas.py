"""Two replicas sharing one PostgreSQL database against one replica with SQLite, in one run.

    python bench/replicas.py [--clients 4] [--requests 40] [--rounds 5] [--latency-rounds 30]
                             [--round-trips 1000] [--size 256x256] [--steps 2] [--threads 1]
                             [--quick]

Starts a PostgreSQL server from Debian's binaries (tests/postgres_server.py: initdb in a temp
folder, a free port, a non-root user, PostgreSQL's own defaults, fsync on) and three app
processes (`python app.py`, preview engine, `--threads` torch threads each):
  S       one replica with its SQLite file, as on one machine;
  P1, P2  two replicas with the same browser secret and `ZIMAGE_USAGE_DB` = the database.
Every replica has the rate limit on (`ZIMAGE_RATE_PER_MIN=10000`, never reached), so each
request counts its visitor: in S's memory, in the database for P1 and P2. The script is the
balancer: it writes X-Forwarded-For (`ZIMAGE_TRUSTED_PROXY_HOPS=1`), one address per client,
and keeps each client on one replica (sticky).

  1. Added latency of the shared store: one /text_to_image at a time, alternating S and P1
     (the order swapped every round), `--latency-rounds` each; ratio of the medians P1/S and
     their difference.
  2. Throughput: `--clients` clients sending `--requests` requests in all, back to back, to S
     alone, then to P1 + P2 (client i to replica i mod 2), alternating for `--rounds` rounds;
     images per second, and the ratio two replicas / one over all runs and its median over the
     rounds (each round's two runs are neighbours in time, so a change in the machine's load
     falls on both).
  3. The shared rate limit's round trip, from this process as a replica makes it
     (`SharedRateLimiter.admit` on `rate_limit_lane`, `--round-trips` calls over 100 visitors),
     against the same with commits that wait for the disk, the in-memory RateLimiter and a bare
     `SELECT 1`, interleaved.
  4. Checks: every request answered; every usage row of P1 and P2 in the database and every row
     of S in its file; no request counted locally for want of the database.

On a machine with fewer cores than replicas the throughput ratio measures the cores as much as
the replicas: BENCHMARKS.md says what the figures mean. The exit status is 1 when a check fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from local_app import free_port, percentile, preview_app_env, serving, stop_app

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.postgres_server import PostgresServer, postgres_bin  # noqa: E402

SECRET = "bench replicas share this operator secret, 32+ chars"
RATE_PER_MIN = 10000  # on, so every request counts its visitor, and never reached
START_TIMEOUT_S = 240
REQUEST_TIMEOUT = httpx.Timeout(300, connect=10)
VISITORS = 100  # addresses the round-trip measure cycles through
FALLBACK_LINE = "Rate limit counted on this replica only"


@dataclass
class Replica:
    name: str
    url: str
    process: subprocess.Popen
    folder: Path
    sent: int = 0  # requests answered, for the row check
    index: int | None = None  # /text_to_image's fn_index

    def log(self) -> str:
        return (self.folder / "server.log").read_text(errors="replace")


@dataclass
class Phase:
    """Latencies and wall time of one throughput run."""

    latencies: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    failures: list[str] = field(default_factory=list)


def start_replica(name: str, folder: Path, database: str | None, threads: int) -> Replica:
    folder.mkdir(parents=True)
    port = free_port()
    env = {
        **preview_app_env(folder, port),
        "OMP_NUM_THREADS": str(threads),
        "ZIMAGE_BROWSER_SECRET": SECRET,
        "ZIMAGE_RATE_PER_MIN": str(RATE_PER_MIN),
        "ZIMAGE_TRUSTED_PROXY_HOPS": "1",
        "ZIMAGE_QUEUE_MAX": "1000",
    }
    if database:
        env["ZIMAGE_USAGE_DB"] = database
    with (folder / "server.log").open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    return Replica(name, f"http://127.0.0.1:{port}", process, folder)


def wait_serving(replicas: list[Replica]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    for replica in replicas:
        while not serving(replica.url):
            if replica.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{replica.name} did not serve:\n{replica.log()[-3000:]}")
            time.sleep(0.2)
        config = httpx.get(f"{replica.url}/config", timeout=30).json()
        replica.index = next(
            d["id"] for d in config["dependencies"] if d.get("api_name") == "text_to_image"
        )


class Visitor:
    """A script behind the balancer: one address, one keep-alive connection, one replica."""

    def __init__(self, address: str, args: argparse.Namespace) -> None:
        self.address = address
        self.args = args
        self.http = httpx.Client(timeout=REQUEST_TIMEOUT, headers={"X-Forwarded-For": address})
        self.seed = 0

    def generate(self, replica: Replica) -> float:
        """One /text_to_image through the queue; its wall time. Raises when it fails."""
        self.seed += 1
        session = uuid.uuid4().hex[:12]
        from zimage.tools.text_to_image import TextToImage

        data = TextToImage.endpoint_values(
            prompt="a kite", resolution=self.args.size, seed=self.seed, steps=self.args.steps
        )
        body = {"data": data, "fn_index": replica.index, "session_hash": session}
        started = time.perf_counter()
        joined = self.http.post(f"{replica.url}/gradio_api/queue/join", json=body)
        if joined.status_code != 200:
            raise RuntimeError(f"{replica.name}: join answered {joined.status_code}")
        params = {"session_hash": session}
        with self.http.stream("GET", f"{replica.url}/gradio_api/queue/data", params=params) as s:
            for line in s.iter_lines():
                if '"process_completed"' in line:
                    if '"success":true' not in line.replace(" ", ""):
                        raise RuntimeError(f"{replica.name}: {line[:300]}")
                    break
            else:
                raise RuntimeError(f"{replica.name}: the event stream ended without an answer")
        replica.sent += 1
        return time.perf_counter() - started

    def close(self) -> None:
        self.http.close()


def addresses() -> Callable[[], str]:
    counter = iter(range(1, 1 << 20))
    return lambda: "198.51.{}.{}".format(*divmod(next(counter), 250))


def throughput_run(
    replicas: list[Replica], args: argparse.Namespace, new_address: Callable[[], str]
) -> Phase:
    """--clients clients, client i on replicas[i % len], --requests requests in all."""
    phase = Phase()
    lock = threading.Lock()
    shares = [
        args.requests // args.clients + (i < args.requests % args.clients)
        for i in range(args.clients)
    ]
    start = threading.Barrier(args.clients + 1)

    def client(number: int) -> None:
        visitor = Visitor(new_address(), args)
        replica = replicas[number % len(replicas)]
        try:
            start.wait()
            for _ in range(shares[number]):
                try:
                    latency = visitor.generate(replica)
                except Exception as error:  # noqa: BLE001 - counted and reported
                    with lock:
                        phase.failures.append(f"{type(error).__name__}: {error}")
                    continue
                with lock:
                    phase.latencies.append(latency)
        finally:
            visitor.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
    for thread in threads:
        thread.start()
    start.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    phase.wall_s = time.perf_counter() - started
    return phase


def round_trips(database: str, count: int) -> dict[str, list[float]]:
    """Seconds per call, as a replica makes them on its request path, interleaved."""
    from zimage.guards.rate_limit import RateLimiter
    from zimage.replicas.connection import Lane
    from zimage.replicas.rate_limit import SharedRateLimiter, rate_limit_lane

    visitors = [f"192.0.2.{n}" for n in range(VISITORS)]
    # A generous deadline, so every timed call is a round trip (the replicas' is 0.25 s, past
    # which they count in memory; a fallback here fails the run's checks).
    shared = SharedRateLimiter(RATE_PER_MIN, rate_limit_lane(database, timeout_s=5.0), SECRET)
    durable = SharedRateLimiter(
        RATE_PER_MIN, Lane(database, "bench rate limit", 5.0, synchronous_commit=True), SECRET
    )
    bare = Lane(database, "bench select 1", 5.0)
    local = RateLimiter(RATE_PER_MIN)
    calls: dict[str, Callable[[int], object]] = {
        "shared": lambda n: shared.admit(visitors[n % VISITORS]),
        "durable": lambda n: durable.admit(visitors[(n + VISITORS // 2) % VISITORS]),
        "memory": lambda n: local.admit(visitors[n % VISITORS]),
        "select 1": lambda n: bare.call(lambda c: c.execute("SELECT 1").fetchone()),
    }
    timings: dict[str, list[float]] = {name: [] for name in calls}
    try:
        for n in range(20):  # connect, and warm the server's caches
            for call in calls.values():
                call(n)
        for n in range(count):
            for name, call in calls.items():  # interleaved: drift falls on all alike
                started = time.perf_counter()
                call(n)
                timings[name].append(time.perf_counter() - started)
        if shared.fallbacks or durable.fallbacks:
            timings["fallbacks"] = [float(shared.fallbacks + durable.fallbacks)]
    finally:
        for closing in (shared, durable, bare):
            closing.close()
    return timings


def rows_in_postgres(database: str) -> int:
    import psycopg

    with psycopg.connect(database) as connection:
        row = connection.execute("SELECT count(*) FROM usage").fetchone()
        return int(row[0]) if row else 0


def rows_in_sqlite(replica: Replica) -> int:
    path = replica.folder / "data" / "usage.sqlite3"
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(connection.execute("SELECT count(*) FROM usage").fetchone()[0])
    finally:
        connection.close()


def eventually(check: Callable[[], bool], timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} us"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=40, help="requests per throughput run")
    parser.add_argument("--rounds", type=int, default=5, help="throughput runs of each setup")
    parser.add_argument("--latency-rounds", type=int, default=30)
    parser.add_argument("--round-trips", type=int, default=1000)
    parser.add_argument("--size", default="256x256")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per replica")
    parser.add_argument("--quick", action="store_true", help="a smoke test: a few of each")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.requests, args.rounds = 2, 6, 1
        args.latency_rounds, args.round_trips, args.steps = 3, 100, 1
    if args.clients < 2 or args.requests < args.clients:
        parser.error("--clients must be at least 2 and --requests at least --clients")
    return args


def main() -> int:
    args = parse_args()
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise SystemExit("PostgreSQL's binaries are not installed: apt-get install postgresql")
    folder = Path(tempfile.mkdtemp(prefix="zimage-replicas-bench-"))
    load_before = os.getloadavg()[0]
    server = PostgresServer(bin_dir, durable=True)
    replicas: list[Replica] = []
    checks: list[str] = []
    try:
        server.start()
        database = server.new_database()
        with server.admin() as admin:
            version = admin.execute("SHOW server_version").fetchone()[0]
        print(f"database   PostgreSQL {version}, its defaults (fsync on), 127.0.0.1")
        print(
            f"machine    {os.cpu_count()} cores, load average {load_before:.2f} at start; "
            f"replicas with {args.threads} torch thread(s), preview engine, {args.size}, "
            f"{args.steps} steps"
        )
        single = start_replica("S", folder / "S", None, args.threads)
        pair = [start_replica(name, folder / name, database, args.threads) for name in ("P1", "P2")]
        replicas = [single, *pair]
        wait_serving(replicas)
        new_address = addresses()

        warm = Visitor(new_address(), args)
        for replica in replicas:  # first requests load and warm each engine
            for _ in range(2):
                warm.generate(replica)

        # 1. Added latency of the shared store, one request at a time.
        latency: dict[str, list[float]] = {"S": [], "P1": []}
        for number in range(args.latency_rounds):
            order = (single, pair[0]) if number % 2 == 0 else (pair[0], single)
            for replica in order:
                latency[replica.name].append(warm.generate(replica))
        warm.close()
        s_median = statistics.median(latency["S"])
        p_median = statistics.median(latency["P1"])
        print(
            f"one at a time   S (SQLite) median {ms(s_median)}; P1 (PostgreSQL) median "
            f"{ms(p_median)}; {args.latency_rounds} each, interleaved"
        )

        # 2. Throughput, alternating the setups.
        runs: dict[str, list[Phase]] = {"one": [], "two": []}
        for number in range(args.rounds):
            order = ("one", "two") if number % 2 == 0 else ("two", "one")
            for setup in order:
                phase = throughput_run([single] if setup == "one" else pair, args, new_address)
                runs[setup].append(phase)
                print(
                    f"throughput run {number + 1} {setup:3} replica(s): {len(phase.latencies)} "
                    f"images in {phase.wall_s:.2f} s = {len(phase.latencies) / phase.wall_s:.2f}"
                    f"/s; p50 {ms(percentile(phase.latencies, 0.5))}, p95 "
                    f"{ms(percentile(phase.latencies, 0.95))}"
                    + (f"; {len(phase.failures)} FAILED" if phase.failures else "")
                )

        def rate(setup: str) -> float:
            done = sum(len(phase.latencies) for phase in runs[setup])
            return done / sum(phase.wall_s for phase in runs[setup])

        def per_second(phase: Phase) -> float:
            return len(phase.latencies) / phase.wall_s

        per_round = [
            per_second(two) / per_second(one) for one, two in zip(runs["one"], runs["two"])
        ]
        print(
            "throughput two/one per round: "
            + ", ".join(f"{ratio:.2f}" for ratio in per_round)
            + f"; median {statistics.median(per_round):.2f}"
        )
        failures = [f for phases in runs.values() for phase in phases for f in phase.failures]
        if failures:
            checks.append(f"{len(failures)} requests failed, first: {failures[0]}")

        # 3. The shared rate limit's round trip.
        timings = round_trips(database, args.round_trips)
        for name, label in (
            ("shared", "rate limit, shared (as replicas count)"),
            ("durable", "rate limit, shared, commit waiting for the disk"),
            ("memory", "rate limit, in memory (one replica)"),
            ("select 1", "bare round trip (SELECT 1 via a lane)"),
        ):
            values = timings[name]
            print(
                f"{label:48} median {us(statistics.median(values))}, "
                f"p95 {us(percentile(values, 0.95))}, p99 {us(percentile(values, 0.99))}"
            )
        if "fallbacks" in timings:
            checks.append(f"{int(timings['fallbacks'][0])} admits fell back to memory")

        # 4. Every row stored where it belongs; nothing counted locally.
        sent_shared = sum(replica.sent for replica in pair)
        stored = eventually(lambda: rows_in_postgres(database) >= sent_shared)
        postgres_rows = rows_in_postgres(database)
        sqlite_ok = eventually(lambda: rows_in_sqlite(single) >= single.sent)
        sqlite_rows = rows_in_sqlite(single)
        print(
            f"rows stored      PostgreSQL {postgres_rows} of {sent_shared} sent to P1 + P2; "
            f"SQLite {sqlite_rows} of {single.sent} sent to S"
        )
        if not (stored and postgres_rows == sent_shared):
            checks.append(f"PostgreSQL holds {postgres_rows} rows for {sent_shared} requests")
        if not (sqlite_ok and sqlite_rows == single.sent):
            checks.append(f"SQLite holds {sqlite_rows} rows for {single.sent} requests")
        fallbacks = sum(replica.log().count(FALLBACK_LINE) for replica in pair)
        print(f"local fallback   {fallbacks} warnings in P1 and P2 logs (want 0)")
        # A fallback is the Space working as designed on a slow database; it makes the full
        # run's figures incomparable, while the smoke test only needs every request answered.
        if fallbacks and not args.quick:
            checks.append("a replica counted the rate limit locally")

        print(f"load average     {load_before:.2f} at start, {os.getloadavg()[0]:.2f} at end")
        for check in checks:
            print(f"CHECK FAILED: {check}")
        shared_rt = statistics.median(timings["shared"])
        print(
            f"ratio two replicas + PostgreSQL / one replica + SQLite: throughput "
            f"{rate('two') / rate('one'):.2f}x ({rate('two'):.2f} vs {rate('one'):.2f} images/s, "
            f"median per round {statistics.median(per_round):.2f}x); "
            f"latency one at a time {p_median / s_median:.3f}x ({ms(p_median - s_median)}); "
            f"rate-limit round trip {us(shared_rt)} = "
            f"{shared_rt / s_median * 100:.2f}% of a request"
        )
        return 1 if checks else 0
    finally:
        for replica in replicas:
            stop_app(replica.process)
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
