#!/usr/bin/env bash
# HTTP benchmark: verification against the cheapest route (/healthz), in one
# run on one machine, so the ratio survives a noisy host. Needs wrk
# (apt-get install wrk) and curl.
#
#   bench/http.sh [rounds] [seconds-per-run] [connections]
#
# Each round runs wrk on /healthz, then on POST /v1/keys/verify (an allowed
# action, so the full path: parse, HMAC, cached lookup, decision, usage
# count). It prints requests/s and p50/p99 latency per run, the ratio
# verify/healthz per round, and the medians.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-5}
seconds=${2:-10}
connections=${3:-32}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 1; }

cargo build --release --quiet
work=$(mktemp -d)
token="bench-admin-token-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
ATK_ADMIN_TOKEN=$token ATK_LISTEN=127.0.0.1:0 ATK_DATA_DIR="$work/data" \
  "${CARGO_TARGET_DIR:-target}/release/atk" serve >"$work/serve.out" 2>"$work/serve.log" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  grep -q "listening on" "$work/serve.out" 2>/dev/null && break
  sleep 0.1
done
base=$(grep -o 'http://[0-9.:]*' "$work/serve.out" | head -n 1)
echo "server: $base (release build, SQLite, logs at info to a file)"

secret=$(curl -s -X POST "$base/v1/projects/project_identity_demo/keys" \
  -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -d '{"name": "bench", "confirmations": ["backend_only", "secret_shown_once", "entitlements_may_block"]}' \
  | grep -o 'atk_live_[0-9A-Za-z]*' | head -n 1)
cat >"$work/verify.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"key": "$secret", "action": "notification.send"}'
LUA

run() { # url [script] -> "rps p50 p99"
  local out
  if [ -n "${2:-}" ]; then
    out=$(wrk -t1 -c"$connections" -d"${seconds}s" --latency -s "$2" "$1")
  else
    out=$(wrk -t1 -c"$connections" -d"${seconds}s" --latency "$1")
  fi
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  echo "$rps $p50 $p99"
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

health_rps=(); verify_rps=(); ratios=()
printf '%-6s %12s %9s %9s %12s %9s %9s %7s\n' round healthz/s p50 p99 verify/s p50 p99 ratio
for round in $(seq 1 "$rounds"); do
  read -r h p50h p99h < <(run "$base/healthz")
  read -r v p50v p99v < <(run "$base/v1/keys/verify" "$work/verify.lua")
  ratio=$(awk -v v="$v" -v h="$h" 'BEGIN {printf "%.3f", v / h}')
  health_rps+=("$h"); verify_rps+=("$v"); ratios+=("$ratio")
  printf '%-6s %12s %9s %9s %12s %9s %9s %7s\n' "$round" "$h" "$p50h" "$p99h" "$v" "$p50v" "$p99v" "$ratio"
done
echo
echo "median healthz req/s: $(printf '%s\n' "${health_rps[@]}" | median)"
echo "median verify  req/s: $(printf '%s\n' "${verify_rps[@]}" | median)"
echo "median ratio verify/healthz: $(printf '%s\n' "${ratios[@]}" | median)"
