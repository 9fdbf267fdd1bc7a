#!/usr/bin/env python3
"""HTTP benchmark of verification against its yardsticks, in one run.

    bench/verify.py [--rounds 3] [--seconds 8] [--keys 100000] [--postgres URL] [--shared]
    bench/verify.py --flood 100000          # unknown-key flood only
    bench/verify.py --rss 1000000           # RSS with that many keys cached

Builds the release binary and the yardsticks (bench/bare: a bare axum
`GET /hello` and a bare minimal verify), starts `atk serve` on a fresh
SQLite data directory (or a fresh database on --postgres) holding --keys
keys, and for 16 and 64 connections, each round, runs wrk on:
`GET /healthz`, `POST /v1/keys/verify` (a valid key, an allowed action,
cache warm), the bare hello and the bare minimal verify, plus
`redis-benchmark GET` with as many clients. It prints each run, then per
connection count the medians and the ratios verify/minimal,
verify/redis and healthz/hello (medians of the per-round ratios: the
machine is shared and noisy, ratios measured side by side hold better than
absolute figures).

Every server (atk, the yardsticks and, for its run, the local Redis) runs
on CPU 0 and wrk (one thread) and redis-benchmark on CPU 1, so that latency
is the server's own and not the scheduler's time slices between wrk and
the server on two shared cores (moving Redis needs root or Redis's own
user; without it, Redis is measured where it runs and the run says so).
--shared lets them all share both CPUs (wrk with two threads) instead.
--flood and --rss use the same layout.

--flood sends that many distinct, well-formed, never-issued keys and
reports how many store queries they caused (from /metrics). --rss creates
that many keys, verifies each once so all are cached, and reports RSS.

Needs wrk and redis-benchmark (apt-get install wrk redis-tools) and a
Redis on 127.0.0.1:6379. Python's standard library otherwise.
"""

import argparse
import atexit
import contextlib
import hashlib
import hmac
import http.client
import json
import os
import re
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
CONFIRMATIONS = ["backend_only", "secret_shown_once", "entitlements_may_block"]
DEMO = "project_identity_demo"
SCOPES = json.dumps(["notification.send", "verification.read"])


def checksum(text):
    value = zlib.crc32(text.encode())
    digits = []
    for _ in range(6):
        digits.append(BASE62[value % 62])
        value //= 62
    return "".join(reversed(digits))


def new_secret(n=None):
    body = "atk_live_" + (f"{n:0>32}" if n is not None else "".join(secrets.choice(BASE62) for _ in range(32)))
    return body + checksum(body)

SECRETS_LUA = r"""
-- Verifies key n = id-1, id-1+threads, ... : the bulk-inserted secrets
-- atk_live_<n, 32 digits><CRC-32 in six base62 digits>, wrapping at N.
local bit = require("bit")
local B = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
local crc = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do
    if bit.band(c, 1) == 1 then c = bit.bxor(bit.rshift(c, 1), 0xEDB88320) else c = bit.rshift(c, 1) end
  end
  crc[i] = c
end
local function checksum(s)
  local c = 0xFFFFFFFF
  for i = 1, #s do
    c = bit.bxor(crc[bit.band(bit.bxor(c, s:byte(i)), 0xFF)], bit.rshift(c, 8))
  end
  local v = bit.bxor(c, 0xFFFFFFFF)
  if v < 0 then v = v + 4294967296 end
  local d = {}
  for i = 6, 1, -1 do
    local r = v % 62
    d[i] = B:sub(r + 1, r + 1)
    v = math.floor(v / 62)
  end
  return table.concat(d)
end
local threads = {}
local count = 0
function setup(thread)
  thread:set("id", count)
  count = count + 1
  table.insert(threads, thread)
end
function init(args)
  n = id
end
function request()
  local body = string.format("atk_live_%032d", (n % TOTAL) + OFFSET)
  n = n + STEP
  local secret = body .. checksum(body)
  return wrk.format("POST", "/v1/keys/verify", {["Content-Type"] = "application/json"},
    '{"key": "' .. secret .. '", "action": "notification.send"}')
end
"""


def secrets_script(work, total, offset, threads=None):
    threads = threads or int(WRK_THREADS[2:])
    path = os.path.join(work, f"secrets-{offset}.lua")
    with open(path, "w") as file:
        file.write(SECRETS_LUA.replace("TOTAL", str(total)).replace("OFFSET", str(offset)).replace("STEP", str(threads)))
    return path


def build():
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "atk"], cwd=ROOT, check=True)
    subprocess.run(
        ["cargo", "build", "--release", "--quiet", "--manifest-path", os.path.join(ROOT, "bench/bare/Cargo.toml")],
        cwd=ROOT, check=True,
    )


# Servers run on CPU 0 and the load generators on CPU 1: the layout of a
# server whose clients are other machines, so that latency is the server's
# own and not the time wrk and the server wait for each other's time slices
# on two shared cores. main() empties them for --shared.
SERVER_CPU = ["taskset", "-c", "0"]
LOAD_CPU = ["taskset", "-c", "1"]
WRK_THREADS = "-t1"


# Every server this run started: a run that ends early (a server that did
# not start, an error, Ctrl-C) stops them on its way out instead of leaving
# them running to skew the next run.
STARTED = []


@atexit.register
def stop_started():
    for process in STARTED:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


class Process:
    """A server that prints `listening on http://ADDR` on stdout."""

    def __init__(self, argv, env=None, log=None):
        self.process = subprocess.Popen(SERVER_CPU + argv, env=env, stdout=subprocess.PIPE, stderr=log or subprocess.DEVNULL, text=True)
        STARTED.append(self.process)
        for line in self.process.stdout:
            match = re.search(r"listening on (http://[0-9.:]+)", line)
            if match:
                self.base = match.group(1)
                break
        else:
            sys.exit(f"{argv[0]} did not start")
        threading.Thread(target=lambda: [None for _ in self.process.stdout], daemon=True).start()

    def rss_mib(self, field="VmRSS"):
        """Resident memory (`RssAnon`: the heap alone, not the mapped
        binary and files)."""
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=600)


class Client:
    def __init__(self, base, token=None):
        host, port = base.removeprefix("http://").rsplit(":", 1)
        self.connection = http.client.HTTPConnection(host, int(port), timeout=60)
        self.token = token

    def call(self, method, path, body=None):
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self.connection.request(method, path, json.dumps(body) if body is not None else None, headers)
        response = self.connection.getresponse()
        data = response.read()
        return response.status, data


class Deployment:
    """`atk serve` on SQLite or PostgreSQL, with a configured admin token."""

    def __init__(self, postgres, work):
        self.work = work
        self.token = "bench-admin-token-" + secrets.token_hex(16)
        self.env = dict(
            os.environ,
            ATK_ADMIN_TOKEN=self.token,
            ATK_LISTEN="127.0.0.1:0",
            ATK_DATA_DIR=os.path.join(work, "data"),
            ATK_FAILED_VERIFY_LIMIT="1000000/1",
        )
        self.env.pop("RUST_LOG", None)
        self.postgres = None
        if postgres:
            database = f"atk_bench_{secrets.token_hex(4)}"
            subprocess.run(["psql", postgres + "/postgres", "-qc", f"CREATE DATABASE {database}"], check=True)
            self.postgres = f"{postgres}/{database}"
            self.env["ATK_DATABASE_URL"] = self.postgres
        self.log = open(os.path.join(work, "serve.log"), "w")
        self.server = None

    def start(self):
        self.server = Process([os.path.join(TARGET, "release", "atk"), "serve"], self.env, self.log)
        self.base = self.server.base
        return self

    def stop(self):
        self.server.stop()

    def pepper(self):
        with open(os.path.join(self.work, "data", "pepper")) as file:
            return bytes.fromhex(file.read().strip())

    def insert_keys(self, count, verifiable):
        """Adds `count` keys to the demo project behind the server's back
        (stopped), in bulk. Verifiable ones get secrets `new_secret(n)`."""
        pepper = self.pepper()
        now = int(time.time() * 1000)

        def rows():
            for n in range(count):
                if verifiable:
                    secret = new_secret(n)
                    digest = hmac.new(pepper, secret.encode(), hashlib.sha256).digest()
                else:
                    digest = secrets.token_bytes(32)
                key_id = "key_" + "".join(secrets.choice(BASE62) for _ in range(22))
                yield (key_id, DEMO, f"Bench key {n}", "project", "production", SCOPES, "never",
                       digest, "atk_live_...000000", now)

        columns = ("id, project_id, name, kind, environment, scopes, expiration, secret_hash, "
                   "secret_preview, created_at")
        if self.postgres:
            copy = subprocess.Popen(
                ["psql", self.postgres, "-qc", f"COPY api_keys ({columns}) FROM STDIN"],
                stdin=subprocess.PIPE, text=True,
            )
            for row in rows():
                fields = list(row)
                fields[7] = "\\\\x" + row[7].hex()
                copy.stdin.write("\t".join(str(field) for field in fields) + "\n")
            copy.stdin.close()
            if copy.wait() != 0:
                sys.exit("COPY failed")
            # Vacuumed and analysed now rather than by autovacuum in the
            # middle of the first rounds (seen: two of three rounds at 64
            # connections 20% slower for verify, and only while it ran).
            # The checkpoint writes the loaded pages out now, not while the
            # servers are measured.
            subprocess.run(["psql", self.postgres, "-qc", "VACUUM ANALYZE api_keys"], check=True)
            subprocess.run(["psql", self.postgres, "-qc", "CHECKPOINT"], check=True)
        else:
            database = sqlite3.connect(os.path.join(self.work, "data", "atk.sqlite"))
            database.executemany(f"INSERT INTO api_keys ({columns}) VALUES (?,?,?,?,?,?,?,?,?,?)", rows())
            database.commit()
            database.close()

    def create_key(self):
        status, data = Client(self.base, self.token).call(
            "POST", f"/v1/projects/{DEMO}/keys", {"name": "bench", "confirmations": CONFIRMATIONS}
        )
        assert status == 201, data
        return json.loads(data)["secret"]

    def metric(self, name):
        _, data = Client(self.base).call("GET", "/metrics")
        total = 0.0
        for line in data.decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total


def wrk(url, connections, seconds, script=None):
    argv = LOAD_CPU + ["wrk", WRK_THREADS, f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script:
        argv += ["-s", script]
    out = subprocess.run(argv + [url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        sys.exit(f"{url}: {errors.group(1)} non-2xx answers")

    def percentile(label):
        value, unit = re.search(rf"^\s+{label}\s+([0-9.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return rps, percentile("50%"), percentile("99%")


def redis_get(clients, seconds_hint):
    requests = max(100_000, int(90_000 * seconds_hint))
    subprocess.run(["redis-cli", "SET", "atk-bench", "x"], capture_output=True, check=True)
    with redis_on_server_cpu():
        out = subprocess.run(
            LOAD_CPU + ["redis-benchmark", "-t", "get", "-c", str(clients), "-n", str(requests), "-P", "1", "-q", "--csv"],
            capture_output=True, text=True, check=True,
        ).stdout
    row = [line for line in out.splitlines() if line.startswith('"GET"')][0]
    return float(row.split(",")[1].strip('"'))


@contextlib.contextmanager
def redis_on_server_cpu():
    """Redis is a system service, not started here: while it is measured
    each of its threads is moved to the servers' CPU, as they are, and put
    back on its own CPUs afterwards. Otherwise the scheduler may run it
    beside redis-benchmark on the load generators' CPU in some rounds and
    not in others. Where it cannot be moved (not root, Redis in a container
    or elsewhere), it is measured where it runs, and the run says so."""
    if not SERVER_CPU:
        yield
        return
    moved = {}
    try:
        info = subprocess.run(["redis-cli", "INFO", "server"], capture_output=True, text=True, check=True).stdout
        pid = re.search(r"^process_id:(\d+)", info, re.M).group(1)
        with open(f"/proc/{pid}/comm") as comm:
            if comm.read().strip() != "redis-server":
                raise OSError(f"process {pid} here is not redis-server")
        server_cpu = {int(SERVER_CPU[-1])}
        for tid in os.listdir(f"/proc/{pid}/task"):
            before = os.sched_getaffinity(int(tid))
            os.sched_setaffinity(int(tid), server_cpu)
            moved[int(tid)] = before
    except (OSError, subprocess.CalledProcessError, AttributeError) as error:
        restore_affinity(moved)
        moved = {}
        global REDIS_UNPINNED_SAID
        if not REDIS_UNPINNED_SAID:
            print(f"note: Redis stays where the scheduler runs it ({error})")
            REDIS_UNPINNED_SAID = True
    try:
        yield
    finally:
        restore_affinity(moved)


REDIS_UNPINNED_SAID = False


def restore_affinity(threads):
    for tid, cpus in threads.items():
        try:
            os.sched_setaffinity(tid, cpus)
        except OSError:
            pass  # the thread has ended


def verify_script(work, secret):
    path = os.path.join(work, "verify.lua")
    with open(path, "w") as file:
        body = json.dumps({"key": secret, "action": "notification.send"})
        file.write(f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = \'{body}\'\n')
    return path


def compare(args, work):
    deployment = Deployment(args.postgres, work)
    deployment.start().stop()  # creates the schema and the pepper
    if args.keys:
        deployment.insert_keys(args.keys, verifiable=False)
    deployment.start()
    secret = deployment.create_key()
    bare = os.path.join(TARGET, "release")
    hello = Process([os.path.join(bare, "hello")])
    minimal = Process([os.path.join(bare, "minimal_verify"), secret])
    script = verify_script(work, secret)
    store = f"PostgreSQL ({args.postgres})" if args.postgres else "SQLite"
    layout = "wrk -t2, all sharing both CPUs" if args.shared else "servers (Redis too) on CPU 0, wrk -t1 and redis-benchmark on CPU 1"
    print(f"atk on {store} with {args.keys} keys; {layout}; {args.seconds} s per run; medians of {args.rounds} rounds")
    Client(deployment.base).call("POST", "/v1/keys/verify", {"key": secret, "action": "notification.send"})
    try:
        for connections in (16, 64):
            rows = []
            print(f"\n{connections} connections")
            print(f"{'round':<6}{'healthz/s':>11}{'hello/s':>11}{'verify/s':>11}{'minimal/s':>11}{'redis/s':>11}"
                  f"{'verify p50':>11}{'p99':>8}{'minimal p99':>12}{'healthz p99':>12}{'hello p99':>10}")
            for round_ in range(1, args.rounds + 1):
                healthz = wrk(deployment.base + "/healthz", connections, args.seconds)
                hello_r = wrk(hello.base + "/hello", connections, args.seconds)
                verify = wrk(deployment.base + "/v1/keys/verify", connections, args.seconds, script)
                minimal_r = wrk(minimal.base + "/v1/keys/verify", connections, args.seconds, script)
                redis = redis_get(connections, args.seconds)
                rows.append((healthz, hello_r, verify, minimal_r, redis))
                print(f"{round_:<6}{healthz[0]:>11.0f}{hello_r[0]:>11.0f}{verify[0]:>11.0f}{minimal_r[0]:>11.0f}"
                      f"{redis:>11.0f}{verify[1]:>9.2f}ms{verify[2]:>6.2f}ms{minimal_r[2]:>10.2f}ms"
                      f"{healthz[2]:>10.2f}ms{hello_r[2]:>8.2f}ms")
            med = statistics.median
            print(f"medians: healthz {med(r[0][0] for r in rows):.0f}/s, hello {med(r[1][0] for r in rows):.0f}/s, "
                  f"verify {med(r[2][0] for r in rows):.0f}/s (p50 {med(r[2][1] for r in rows):.2f} ms, "
                  f"p99 {med(r[2][2] for r in rows):.2f} ms), minimal {med(r[3][0] for r in rows):.0f}/s "
                  f"(p99 {med(r[3][2] for r in rows):.2f} ms), "
                  f"redis GET {med(r[4] for r in rows):.0f}/s")
            print(f"ratios (median of rounds): verify/minimal {med(r[2][0] / r[3][0] for r in rows):.3f}, "
                  f"verify/redis {med(r[2][0] / r[4] for r in rows):.3f}, "
                  f"healthz/hello {med(r[0][0] / r[1][0] for r in rows):.3f}")
        print(f"\nserver RSS at the end: {deployment.server.rss_mib():.0f} MiB")
    finally:
        hello.stop()
        minimal.stop()
        deployment.stop()


def flood(args, work):
    deployment = Deployment(args.postgres, work)
    deployment.start().stop()
    if args.keys:
        deployment.insert_keys(args.keys, verifiable=False)
    deployment.start()
    try:
        # The node loads its membership filter after it starts answering; a
        # flood sent before that is looked up in the store, as it must be.
        loading = time.perf_counter()
        while deployment.metric("atk_membership_filter_keys") < args.keys:
            if time.perf_counter() - loading > 120:
                sys.exit("the membership filter did not load within 120 s")
            time.sleep(0.05)
        before = deployment.metric('atk_store_queries_total{kind="key_lookup"}')
        filtered_before = deployment.metric("atk_unknown_keys_filtered_total")
        started = time.perf_counter()
        # Keys atk_live_<n> from 10^12 on: none of them was issued. Runs of
        # 2 s, each starting where the last one stopped, until all are sent.
        first, sent, rates = 10**12, 0, []
        while sent < args.flood:
            rps, _, _ = wrk(deployment.base + "/v1/keys/verify", 64, 2, secrets_script(work, args.flood - sent, first + sent))
            sent += int(rps * 2)
            rates.append(rps)
        took = time.perf_counter() - started
        queries = deployment.metric('atk_store_queries_total{kind="key_lookup"}') - before
        filtered = deployment.metric("atk_unknown_keys_filtered_total") - filtered_before
        print(f"{args.flood} distinct never-issued keys (and {max(0, sent - args.flood)} repeats) in {took:.1f} s "
              f"at {statistics.median(rates):.0f}/s")
        print(f"store key lookups they caused: {queries:.0f}; refused by the filter alone: {filtered:.0f}")
    finally:
        deployment.stop()


def rss(args, work):
    deployment = Deployment(args.postgres, work)
    deployment.start().stop()
    print(f"inserting {args.rss} verifiable keys ...", flush=True)
    deployment.insert_keys(args.rss, verifiable=True)
    deployment.start()
    try:
        start_rss = deployment.server.rss_mib()
        started = time.perf_counter()
        # Runs of 10 s until every key has been read once (each key is
        # verified in turn, so a run covers rps × 10 of them).
        offset, rates = 0, []
        while offset < args.rss:
            rps, _, _ = wrk(deployment.base + "/v1/keys/verify", 32, 10, secrets_script(work, args.rss - offset, offset))
            offset += int(rps * 10)
            rates.append(rps)
        rps = statistics.median(rates)
        misses = deployment.metric('atk_verifier_cache_misses_total{cache="keys"}')
        codes = {line.split('code="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
                 for line in Client(deployment.base).call("GET", "/metrics")[1].decode().splitlines()
                 if line.startswith("atk_verifications_total{")}
        print(f"verified for {time.perf_counter() - started:.0f} s at {rps:.0f}/s: {codes}")
        print(f"key cache misses (each key read once, then cached): {misses:.0f}")
        print(f"RSS after start: {start_rss:.0f} MiB; with {args.rss} keys verified: {deployment.server.rss_mib():.0f} MiB")
        # The sums of a million distinct keys wait in memory until the store
        # took them; the cache's own cost is what stays once they have.
        waited = time.perf_counter()
        while deployment.metric("atk_usage_pending_keys") > 0 and time.perf_counter() - waited < 300:
            time.sleep(0.5)
        print(f"usage saved after {time.perf_counter() - waited:.0f} s more; "
              f"RSS: {deployment.server.rss_mib():.0f} MiB (heap {deployment.server.rss_mib('RssAnon'):.0f} MiB)")
        # At rest: the node hands freed memory back (jemalloc after a
        # second, glibc's part every 10 s), so what stays is what it holds.
        time.sleep(11)
        cached = deployment.metric('atk_verifier_cache_entries{cache="keys"}')
        print(f"at rest, with {cached:.0f} keys cached: RSS {deployment.server.rss_mib():.0f} MiB "
              f"(heap {deployment.server.rss_mib('RssAnon'):.0f} MiB)")
        # Stopping saves every usage sum still in memory: one per key here.
        stopping = time.perf_counter()
        deployment.stop()
        print(f"stopped (usage sums saved) in {time.perf_counter() - stopping:.1f} s")
    finally:
        if deployment.server.process.poll() is None:
            deployment.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--postgres", metavar="URL", help="e.g. postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--flood", type=int, metavar="N")
    parser.add_argument("--rss", type=int, metavar="N")
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--shared", action="store_true",
                        help="servers and load generators share both CPUs (default: servers on CPU 0, load on CPU 1)")
    args = parser.parse_args()
    if args.shared:
        global SERVER_CPU, LOAD_CPU, WRK_THREADS
        SERVER_CPU, LOAD_CPU, WRK_THREADS = [], [], "-t2"
    elif not {0, 1} <= os.sched_getaffinity(0):
        sys.exit("the default layout puts servers on CPU 0 and load on CPU 1, and this process may not use both; "
                 "run with --shared")
    if not args.no_build:
        build()
    work = tempfile.mkdtemp(prefix="atk-bench-")
    if args.flood:
        flood(args, work)
    elif args.rss:
        rss(args, work)
    else:
        compare(args, work)


if __name__ == "__main__":
    main()
