#!/usr/bin/env bash
# chatbox and Sockudo side by side on this machine, in one run, with the same load tool
# (`chatbox bench`): idle memory per connection and one-channel fan-out, each figure with its ratio.
#
#   bench/peers.sh                      # defaults below
#   CONNECTIONS=19000 EVENTS=5000 bench/peers.sh
#
# Sockudo is installed with `cargo install --locked sockudo` into a cache folder outside the
# repository ($CHATBOX_PEERS_DIR, default ~/.cache/chatbox-peers) the first time: a long build
# (about 25 minutes on 2 cores), then reused.
set -euo pipefail
cd "$(dirname "$0")/.."

PEERS="${CHATBOX_PEERS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/chatbox-peers}"
SOCKUDO_VERSION="${SOCKUDO_VERSION:-5.2.0}"
CONNECTIONS="${CONNECTIONS:-10000}"   # idle connections, each on 2 private channels
SUBSCRIBERS="${SUBSCRIBERS:-1000}"    # fan-out: subscribers of the one channel
EVENTS="${EVENTS:-3000}"              # fan-out: events at maximal rate
STEADY_RATE="${STEADY_RATE:-100}"     # fan-out: events/s for the latency run (× SUBSCRIBERS deliveries/s)
STEADY_EVENTS="${STEADY_EVENTS:-1500}"
CHATBOX_PORT=18201
SOCKUDO_PORT=18202
APP_ID=peers APP_KEY=peers-key APP_SECRET=peers-secret-5b8e2f0a9c4d7e1f3a6b8c0d2e4f6a8b

say() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }

# --- Sockudo, built once -------------------------------------------------------------------------
SOCKUDO="$PEERS/bin/sockudo"
if [ ! -x "$SOCKUDO" ]; then
  if ! command -v protoc >/dev/null; then
    say "Sockudo needs protoc to build: installing protobuf-compiler"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler >/dev/null
  fi
  say "installing Sockudo $SOCKUDO_VERSION into $PEERS (cargo install --locked; this takes a while)"
  mkdir -p "$PEERS"
  cargo install --locked sockudo --version "$SOCKUDO_VERSION" --root "$PEERS" --target-dir "$PEERS/target"
fi

# --- chatbox, release build ----------------------------------------------------------------------
say "building chatbox (release)"
cargo build --release --quiet
CHATBOX="${CARGO_TARGET_DIR:-target}/release/chatbox"

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  status=$?
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ $status -eq 0 ]; then
    rm -rf "$WORK"
  else
    echo "failed; the servers' logs are kept in $WORK" >&2
  fi
}
trap cleanup EXIT

wait_port() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing listens on port $1; see $WORK/*.log" >&2
  exit 1
}

for port in $CHATBOX_PORT $SOCKUDO_PORT; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is taken (a server left from an earlier run?): stop it first" >&2
    exit 1
  fi
done

# Both servers: one app, loopback, logs quiet, no per-address connection cap.
BIND="127.0.0.1:$CHATBOX_PORT" DATABASE_URL="sqlite://$WORK/chatbox.db" RUST_LOG=warn \
  PUSHER_APP_ID=$APP_ID PUSHER_APP_KEY=$APP_KEY PUSHER_APP_SECRET=$APP_SECRET MAX_CONNECTIONS_PER_IP=0 \
  "$CHATBOX" serve >"$WORK/chatbox.log" 2>&1 &
CHATBOX_PID=$!
PIDS+=("$CHATBOX_PID")
HOST=127.0.0.1 PORT=$SOCKUDO_PORT DEBUG=false \
  SOCKUDO_DEFAULT_APP_ID=$APP_ID SOCKUDO_DEFAULT_APP_KEY=$APP_KEY SOCKUDO_DEFAULT_APP_SECRET=$APP_SECRET \
  SOCKUDO_DEFAULT_APP_ENABLED=true SOCKUDO_DEFAULT_APP_MAX_CONNECTIONS=1000000 \
  RATE_LIMITER_ENABLED=false METRICS_ENABLED=false QUEUE_DRIVER=none \
  "$SOCKUDO" >"$WORK/sockudo.log" 2>&1 &
SOCKUDO_PID=$!
PIDS+=("$SOCKUDO_PID")
wait_port $CHATBOX_PORT
wait_port $SOCKUDO_PORT
for pid in $CHATBOX_PID $SOCKUDO_PID; do
  kill -0 "$pid" 2>/dev/null || { echo "a server exited at start; see $WORK/*.log" >&2; exit 1; }
done
sleep 1
say "chatbox pid $CHATBOX_PID on :$CHATBOX_PORT, Sockudo $SOCKUDO_VERSION pid $SOCKUDO_PID on :$SOCKUDO_PORT"

bench() { "$CHATBOX" bench --json "$@"; }
app() { echo --app-key $APP_KEY --app-secret $APP_SECRET; }

for name in chatbox sockudo; do
  if [ $name = chatbox ]; then port=$CHATBOX_PORT pid=$CHATBOX_PID; else port=$SOCKUDO_PORT pid=$SOCKUDO_PID; fi
  say "$name: idle, $CONNECTIONS connections on 2 private channels each"
  bench idle --server 127.0.0.1:$port --pid $pid --connections "$CONNECTIONS" --no-presence \
    --processes $(( (CONNECTIONS + 9999) / 10000 )) $(app) >"$WORK/$name-idle.json"
done
for name in chatbox sockudo; do
  if [ $name = chatbox ]; then port=$CHATBOX_PORT; else port=$SOCKUDO_PORT; fi
  say "$name: fan-out, $EVENTS events × $SUBSCRIBERS subscribers at maximal rate"
  bench fanout --url http://127.0.0.1:$port --app-id $APP_ID $(app) --subscribers "$SUBSCRIBERS" \
    --events "$EVENTS" --rate 0 --size 200 >"$WORK/$name-max.json"
  say "$name: fan-out, $STEADY_RATE events/s × $SUBSCRIBERS subscribers"
  bench fanout --url http://127.0.0.1:$port --app-id $APP_ID $(app) --subscribers "$SUBSCRIBERS" \
    --events "$STEADY_EVENTS" --rate "$STEADY_RATE" --size 200 >"$WORK/$name-steady.json"
done

python3 - "$WORK" "$SOCKUDO_VERSION" <<'PY'
import json, sys
work, version = sys.argv[1], sys.argv[2]
r = {n: {k: json.load(open(f"{work}/{n}-{k}.json")) for k in ("idle", "max", "steady")} for n in ("chatbox", "sockudo")}
rows = []
def row(label, c, s, better):
    # ratio: how many times better chatbox is (higher-is-better or lower-is-better)
    ratio = (c / s if better == "higher" else s / c) if c and s else float("nan")
    rows.append((label, c, s, ratio))
for n in ("chatbox", "sockudo"):
    for k in ("max", "steady"):
        if r[n][k]["lost"]:
            print(f"note: {n} lost {r[n][k]['lost']} deliveries in the {k} fan-out run")
c, s = r["chatbox"], r["sockudo"]
row(f"idle: KiB per connection ({c['idle']['connections']} / {s['idle']['connections']} open)",
    c["idle"]["bytes_per_connection"] / 1024, s["idle"]["bytes_per_connection"] / 1024, "lower")
row("idle: seconds to open all", c["idle"]["establish_seconds"], s["idle"]["establish_seconds"], "lower")
row("fan-out max: deliveries/s", c["max"]["deliveries_per_second"], s["max"]["deliveries_per_second"], "higher")
row("fan-out max: p99 latency (ms)", c["max"]["latency"]["p99_ms"], s["max"]["latency"]["p99_ms"], "lower")
rate = c["steady"]["rate"] * c["steady"]["subscribers"]
for q in ("p50", "p90", "p99", "max"):
    row(f"fan-out at {rate:,.0f}/s: {q} (ms)", c["steady"]["latency"][f"{q}_ms"], s["steady"]["latency"][f"{q}_ms"], "lower")
row("fan-out: deliveries lost (both runs)", c["max"]["lost"] + c["steady"]["lost"], s["max"]["lost"] + s["steady"]["lost"], "lower")
w = max(len(x[0]) for x in rows)
print(f"{'':{w}}  {'chatbox':>12}  {'Sockudo ' + version:>14}  {'chatbox ×':>10}")
for label, cv, sv, ratio in rows:
    ratio_text = "-" if ratio != ratio else f"{ratio:.2f}"
    print(f"{label:{w}}  {cv:>12,.2f}  {sv:>14,.2f}  {ratio_text:>10}")
print("(chatbox ×: how many times better chatbox is on that line; above 1 means ahead)")
PY
