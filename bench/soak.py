#!/usr/bin/env python3
"""Soak: a bounded, steady mixed load against one node on PostgreSQL.

    bench/soak.py [--seconds 600] [--rate 200] [--database postgres://postgres@127.0.0.1:5432]

Builds nothing: run `cargo build --release` first (the binary is
$CARGO_TARGET_DIR/release/atk, default target/). It creates a fresh
database, starts `atk serve` on it, and for --seconds sends --rate requests
per second on a fixed schedule: 85% verifications (allowed actions, a
missing scope, unknown keys), 5% key creations, 3% rotations, 2%
revocations and 5% usage reads. It reports, per kind, the count, the
statuses seen and p50/p99 latency, the errors (connection failures, 5xx,
and any 4xx a request could not legitimately get), and the server's RSS
after the warm-up and at the end. Python's standard library only.
"""

import argparse
import http.client
import json
import os
import random
import secrets
import subprocess
import sys
import tempfile
import threading
import time

CONFIRMATIONS = ["backend_only", "secret_shown_once", "entitlements_may_block"]
DEMO = "project_identity_demo"
WARM_UP = 30


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Client:
    """One keep-alive connection per thread."""

    def __init__(self, host, port, token):
        self.host, self.port, self.token = host, port, token
        self.connection = None

    def call(self, method, path, body=None, auth=True):
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        payload = json.dumps(body) if body is not None else None
        for attempt in range(2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                self.connection.request(method, path, payload, headers)
                response = self.connection.getresponse()
                data = response.read()
                return response.status, (json.loads(data) if data else None)
            except (http.client.HTTPException, OSError):
                self.connection.close()
                self.connection = None
                if attempt == 1:
                    raise
        raise RuntimeError("unreachable")


class Keys:
    """Keys the load may rotate or revoke, and secrets it may verify."""

    def __init__(self):
        self.lock = threading.Lock()
        self.active = []  # (id, secret)

    def add(self, key_id, secret):
        with self.lock:
            self.active.append((key_id, secret))

    def take(self):
        with self.lock:
            if len(self.active) <= 5:
                return None
            return self.active.pop(random.randrange(len(self.active)))

    def any(self):
        with self.lock:
            return random.choice(self.active)


def create(client, keys, stats, kind="project"):
    body = {"name": "soak", "kind": kind, "confirmations": CONFIRMATIONS}
    if kind == "product_scoped":
        body["scopes"] = ["notification.send"]
    status, answer = client.call("POST", f"/v1/projects/{DEMO}/keys", body)
    if status == 201 and kind == "project":
        keys.add(answer["key"]["id"], answer["secret"])
    return status, answer


def one_request(client, keys, stats, scoped_secret):
    roll = random.random()
    if roll < 0.85:
        pick = random.random()
        if pick < 0.8:
            _, secret = keys.any()
            body, kind = {"key": secret, "action": "notification.send"}, "verify ok"
        elif pick < 0.9:
            body, kind = {"key": scoped_secret, "action": "qr.scan.read"}, "verify scope missing"
        else:
            body, kind = {"key": "atk_live_" + secrets.token_hex(19)}, "verify unknown key"
        return kind, (200,), client.call("POST", "/v1/keys/verify", body, auth=False)
    if roll < 0.90:
        return "create", (201,), create(client, keys, stats)
    if roll < 0.93:
        taken = keys.take()
        if taken is None:
            return "create", (201,), create(client, keys, stats)
        key_id, _ = taken
        result = client.call(
            "POST",
            f"/v1/projects/{DEMO}/keys/{key_id}/rotate",
            {"grace": "none", "confirmations": ["secret_shown_once"]},
        )
        if result[0] == 201:
            keys.add(result[1]["key"]["id"], result[1]["secret"])
        return "rotate", (201,), result
    if roll < 0.95:
        taken = keys.take()
        if taken is None:
            return "create", (201,), create(client, keys, stats)
        key_id, _ = taken
        return "revoke", (200,), client.call(
            "POST", f"/v1/projects/{DEMO}/keys/{key_id}/revoke", {"reason": "soak"}
        )
    key_id, _ = keys.any()
    return "usage", (200,), client.call("GET", f"/v1/projects/{DEMO}/keys/{key_id}/usage")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=600)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--database", default="postgres://postgres@127.0.0.1:5432")
    args = parser.parse_args()

    target = os.environ.get("CARGO_TARGET_DIR", "target")
    binary = os.path.join(target, "release", "atk")
    if not os.path.exists(binary):
        sys.exit(f"{binary} is missing: run cargo build --release first")
    database = f"atk_soak_{secrets.token_hex(4)}"
    subprocess.run(["psql", args.database + "/postgres", "-qc", f"CREATE DATABASE {database}"], check=True)
    work = tempfile.mkdtemp(prefix="atk-soak-")
    token = "soak-admin-token-" + secrets.token_hex(16)
    env = dict(
        os.environ,
        ATK_ADMIN_TOKEN=token,
        ATK_LISTEN="127.0.0.1:0",
        ATK_DATA_DIR=os.path.join(work, "data"),
        ATK_DATABASE_URL=f"{args.database}/{database}",
        RUST_LOG="warn",
        # All the load comes from one address, unknown keys included.
        ATK_FAILED_VERIFY_LIMIT="1000000/1",
    )
    server = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        for line in server.stdout:
            if "listening on http://" in line:
                address = line.rsplit("http://", 1)[1].strip()
                break
        host, port = address.rsplit(":", 1)
        threading.Thread(target=lambda: [None for _ in server.stdout], daemon=True).start()
        setup = Client(host, int(port), token)
        keys = Keys()
        for _ in range(20):
            create(setup, keys, None)
        _, scoped = create(setup, keys, None, kind="product_scoped")
        scoped_secret = scoped["secret"]

        lock = threading.Lock()
        latencies = {}
        statuses = {}
        errors = []
        start = time.monotonic() + 1
        interval = args.threads / args.rate
        rss = {}

        def worker(index):
            client = Client(host, int(port), token)
            n = 0
            while True:
                due = start + index * interval / args.threads + n * interval
                if due - start >= args.seconds:
                    return
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                n += 1
                began = time.monotonic()
                try:
                    kind, expected, (status, _) = one_request(client, keys, None, scoped_secret)
                except Exception as error:  # a failed connection is an error
                    with lock:
                        errors.append(f"connection: {error}")
                    continue
                took = (time.monotonic() - began) * 1000
                with lock:
                    latencies.setdefault(kind, []).append(took)
                    statuses.setdefault(kind, {}).setdefault(status, 0)
                    statuses[kind][status] += 1
                    if status not in expected:
                        errors.append(f"{kind}: {status}")

        def sample_rss():
            time.sleep(max(0, start + WARM_UP - time.monotonic()))
            rss["after warm-up"] = rss_kib(server.pid)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.threads)]
        sampler = threading.Thread(target=sample_rss)
        for thread in threads + [sampler]:
            thread.start()
        last_report = time.monotonic()
        while any(thread.is_alive() for thread in threads):
            time.sleep(1)
            if time.monotonic() - last_report >= 60:
                last_report = time.monotonic()
                with lock:
                    done = sum(len(v) for v in latencies.values())
                print(f"  {int(time.monotonic() - start)} s: {done} requests, {len(errors)} errors", flush=True)
        for thread in threads + [sampler]:
            thread.join()
        rss["end"] = rss_kib(server.pid)

        total = sum(len(v) for v in latencies.values())
        print(f"\nsoak: {args.seconds} s at {args.rate}/s on PostgreSQL: {total} requests")
        everything = []
        for kind in sorted(latencies):
            values = sorted(latencies[kind])
            everything += values
            p50 = values[len(values) // 2]
            p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
            print(f"  {kind:22} {len(values):7}  statuses {statuses[kind]}  p50 {p50:.1f} ms  p99 {p99:.1f} ms")
        everything.sort()
        print(f"  all                    {total:7}  p99 {everything[int(len(everything) * 0.99)]:.1f} ms")
        print(f"  errors (unexpected statuses or failed connections): {len(errors)} {errors[:10]}")
        warm, end = rss["after warm-up"], rss["end"]
        print(f"  RSS after {WARM_UP} s warm-up {warm} KiB, at the end {end} KiB ({100 * (end - warm) / warm:+.1f}%)")
        return 1 if errors else 0
    finally:
        server.terminate()
        server.wait()
        subprocess.run(["psql", args.database + "/postgres", "-qc", f"DROP DATABASE IF EXISTS {database}"])


if __name__ == "__main__":
    sys.exit(main())
