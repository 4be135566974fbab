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
APP_ID=peers APP_KEY=peers-key APP_SECRET="peers-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"

# shellcheck source=bench/lib.sh
. bench/lib.sh

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

ports_free $CHATBOX_PORT $SOCKUDO_PORT

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
servers_alive $CHATBOX_PID $SOCKUDO_PID
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

report sockudo "Sockudo $SOCKUDO_VERSION"
