#!/usr/bin/env python3
"""Propagation: how long after a change on node A does node B refuse?

    bench/propagation.py [--rounds 50] [--database postgres://postgres@127.0.0.1:5432]
    bench/propagation.py --sqlite [--rounds 50]

Builds nothing: run `cargo build --release` first. Starts two `atk serve`
nodes on one fresh PostgreSQL database (or, with --sqlite, two processes on
one SQLite file: the CLI-beside-the-server case). Each round creates a key
on A, verifies it on B until B has it cached, then makes one change on A
and verifies on B in a tight loop until B answers with the new code. The
delay runs from A's answer to the change to B's first refusal, for each
kind of change: revoke, expire, rotate (no grace) and an entitlement set to
disabled. Reports median, p99 and max per kind. Python's standard library
only; one keep-alive connection per node.
"""

import argparse
import http.client
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time

CONFIRMATIONS = ["backend_only", "secret_shown_once", "entitlements_may_block"]
DEMO = "project_identity_demo"


class Node:
    def __init__(self, binary, env):
        self.process = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.PIPE, text=True)
        for line in self.process.stdout:
            if "listening on http://" in line:
                address = line.rsplit("http://", 1)[1].strip()
                break
        else:
            sys.exit("a node did not start")
        threading.Thread(target=lambda: [None for _ in self.process.stdout], daemon=True).start()
        host, port = address.rsplit(":", 1)
        self.connection = http.client.HTTPConnection(host, int(port), timeout=30)
        self.token = env["ATK_ADMIN_TOKEN"]

    def call(self, method, path, body=None):
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"}
        self.connection.request(method, path, json.dumps(body) if body is not None else None, headers)
        response = self.connection.getresponse()
        return response.status, json.loads(response.read() or b"null")

    def verify(self, secret, action=None):
        body = {"key": secret}
        if action:
            body["action"] = action
        status, answer = self.call("POST", "/v1/keys/verify", body)
        assert status == 200, answer
        return answer["code"]

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)


def until(node, secret, action, expected, deadline_s=10.0):
    started = time.perf_counter()
    while True:
        if node.verify(secret, action) == expected:
            return time.perf_counter() - started
        if time.perf_counter() - started > deadline_s:
            sys.exit(f"node B still did not answer {expected} after {deadline_s} s")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--database", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--sqlite", action="store_true")
    args = parser.parse_args()

    target = os.environ.get("CARGO_TARGET_DIR", "target")
    binary = os.path.join(target, "release", "atk")
    if not os.path.exists(binary):
        sys.exit(f"{binary} is missing: run cargo build --release first")
    work = tempfile.mkdtemp(prefix="atk-propagation-")
    env = dict(
        os.environ,
        ATK_ADMIN_TOKEN="bench-admin-token-" + secrets.token_hex(16),
        ATK_LISTEN="127.0.0.1:0",
        ATK_DATA_DIR=os.path.join(work, "data"),
        RUST_LOG="warn",
        ATK_FAILED_VERIFY_LIMIT="1000000/1",
    )
    if not args.sqlite:
        database = f"atk_propagation_{secrets.token_hex(4)}"
        subprocess.run(["psql", args.database + "/postgres", "-qc", f"CREATE DATABASE {database}"], check=True)
        env["ATK_DATABASE_URL"] = f"{args.database}/{database}"
    a = Node(binary, env)
    b = Node(binary, env)
    delays = {"revoke": [], "expire": [], "rotate": [], "entitlement": []}
    try:
        for _ in range(args.rounds):
            for change in delays:
                status, created = a.call(
                    "POST", f"/v1/projects/{DEMO}/keys",
                    {"name": "Propagation", "confirmations": CONFIRMATIONS},
                )
                assert status == 201, created
                secret, key_id = created["secret"], created["key"]["id"]
                action = "qr.scan.read" if change == "entitlement" else None
                until(b, secret, action, "OK")
                b.verify(secret, action)  # now certainly cached on B
                path = f"/v1/projects/{DEMO}/keys/{key_id}"
                if change == "revoke":
                    status, _ = a.call("POST", f"{path}/revoke", {})
                    expected = "REVOKED"
                elif change == "expire":
                    status, _ = a.call("POST", f"{path}/expire", {})
                    expected = "EXPIRED"
                elif change == "rotate":
                    status, _ = a.call("POST", f"{path}/rotate", {"grace": "none", "confirmations": ["secret_shown_once"]})
                    expected = "EXPIRED"
                else:
                    status, _ = a.call("PUT", f"/v1/projects/{DEMO}/entitlements/qr", {"status": "disabled"})
                    expected = "ENTITLEMENT_DISABLED"
                assert status in (200, 201), status
                delays[change].append(until(b, secret, action, expected))
                if change == "entitlement":
                    a.call("PUT", f"/v1/projects/{DEMO}/entitlements/qr", {"status": "enabled"})
    finally:
        a.stop()
        b.stop()
    store = "SQLite, two processes" if args.sqlite else "PostgreSQL, two nodes"
    print(f"{store}, {args.rounds} rounds: delay from A's answer to B's first refusal")
    print(f"{'change':<12} {'median':>9} {'p99':>9} {'max':>9}")
    for change, values in delays.items():
        values.sort()
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
        print(
            f"{change:<12} {statistics.median(values) * 1000:>7.2f}ms {p99 * 1000:>7.2f}ms {values[-1] * 1000:>7.2f}ms"
        )


if __name__ == "__main__":
    main()
