#!/usr/bin/env bash
# chatbox's socket.io side and laravel-echo-server side by side on this machine, in one run, with
# the same load tool (`chatbox bench --protocol socketio`, Engine.IO 3 as socket.io-client 2.x
# speaks it): idle memory per connection and one-channel fan-out, the events published through
# Redis exactly as Laravel's Redis broadcaster publishes them.
#
#   bench/echo-peers.sh                 # defaults below
#   CONNECTIONS=10000 EVENTS=3000 bench/echo-peers.sh
#
# Needs Redis on 127.0.0.1:6379 and npm: laravel-echo-server is installed from npm into a cache
# folder outside the repository ($CHATBOX_PEERS_DIR, default ~/.cache/chatbox-peers) the first time.
set -euo pipefail
cd "$(dirname "$0")/.."

PEERS="${CHATBOX_PEERS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/chatbox-peers}"
LES_VERSION="${LES_VERSION:-1.6.3}"
CONNECTIONS="${CONNECTIONS:-5000}"    # idle connections, each on 2 public channels
SUBSCRIBERS="${SUBSCRIBERS:-1000}"    # fan-out: subscribers of the one channel
EVENTS="${EVENTS:-2000}"              # fan-out: events at maximal rate
STEADY_RATE="${STEADY_RATE:-20}"      # fan-out: events/s for the latency run (× SUBSCRIBERS deliveries/s)
STEADY_EVENTS="${STEADY_EVENTS:-600}"
EIO="${EIO:-3}"
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
CHATBOX_PORT=18211
LES_PORT=18212
CHATBOX_PREFIX=chatbox_echo_peers_
LES_PREFIX=les_echo_peers_
APP_ID=peers APP_KEY=peers-key APP_SECRET="peers-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"

# shellcheck source=bench/lib.sh
. bench/lib.sh

# --- laravel-echo-server, installed once ----------------------------------------------------------
LES_DIR="$PEERS/laravel-echo-server-$LES_VERSION"
if [ ! -x "$LES_DIR/node_modules/.bin/laravel-echo-server" ]; then
  say "installing laravel-echo-server $LES_VERSION into $LES_DIR (npm)"
  mkdir -p "$LES_DIR"
  (cd "$LES_DIR" && npm init -y >/dev/null && npm install --no-audit --no-fund --loglevel=error "laravel-echo-server@$LES_VERSION")
fi

say "building chatbox (release)"
cargo build --release --quiet
CHATBOX="${CARGO_TARGET_DIR:-target}/release/chatbox"

ports_free $CHATBOX_PORT $LES_PORT

REDIS_HOST_PORT="${REDIS_URL#redis://}"
cat >"$WORK/laravel-echo-server.json" <<JSON
{
  "authHost": "http://127.0.0.1:9", "authEndpoint": "/broadcasting/auth",
  "clients": [{"appId": "$APP_ID", "key": "$APP_KEY"}],
  "database": "redis",
  "databaseConfig": {"redis": {"host": "${REDIS_HOST_PORT%:*}", "port": "${REDIS_HOST_PORT#*:}", "keyPrefix": "$LES_PREFIX"}},
  "devMode": false, "host": "127.0.0.1", "port": "$LES_PORT", "protocol": "http", "socketio": {},
  "sslCertPath": "", "sslKeyPath": "", "sslCertChainPath": "", "sslPassphrase": "",
  "subscribers": {"http": true, "redis": true},
  "apiOriginAllow": {"allowCors": false, "allowOrigin": "", "allowMethods": "", "allowHeaders": ""}
}
JSON

# Both servers: loopback, logs quiet, Laravel's broadcasts read from Redis under their own prefix.
BIND="127.0.0.1:$CHATBOX_PORT" DATABASE_URL="sqlite://$WORK/chatbox.db" REDIS_URL="$REDIS_URL" \
  REDIS_PREFIX="chatbox_echo_peers:" REDIS_BROADCAST_PREFIX=$CHATBOX_PREFIX RUST_LOG=warn \
  PUSHER_APP_ID=$APP_ID PUSHER_APP_KEY=$APP_KEY PUSHER_APP_SECRET="$APP_SECRET" MAX_CONNECTIONS_PER_IP=0 \
  "$CHATBOX" serve >"$WORK/chatbox.log" 2>&1 &
CHATBOX_PID=$!
PIDS+=("$CHATBOX_PID")
(cd "$WORK" && exec node "$LES_DIR/node_modules/laravel-echo-server/bin/server.js" start >"$WORK/les.log" 2>&1) &
LES_PID=$!
PIDS+=("$LES_PID")
wait_port $CHATBOX_PORT
wait_port $LES_PORT
servers_alive $CHATBOX_PID $LES_PID
sleep 1
say "chatbox pid $CHATBOX_PID on :$CHATBOX_PORT, laravel-echo-server $LES_VERSION pid $LES_PID on :$LES_PORT"

bench() { PUSHER_APP_SECRET="$APP_SECRET" "$CHATBOX" bench --json "$@"; }
sio() { echo --protocol socketio --eio "$EIO"; }

for name in chatbox les; do
  if [ $name = chatbox ]; then port=$CHATBOX_PORT pid=$CHATBOX_PID; else port=$LES_PORT pid=$LES_PID; fi
  say "$name: idle, $CONNECTIONS socket.io connections on 2 public channels each"
  bench idle --server 127.0.0.1:$port --pid $pid --connections "$CONNECTIONS" $(sio) \
    --processes $(( (CONNECTIONS + 9999) / 10000 )) >"$WORK/$name-idle.json"
done
for name in chatbox les; do
  if [ $name = chatbox ]; then port=$CHATBOX_PORT prefix=$CHATBOX_PREFIX; else port=$LES_PORT prefix=$LES_PREFIX; fi
  publish="--redis-url $REDIS_URL --redis-prefix $prefix"
  say "$name: fan-out, $EVENTS events × $SUBSCRIBERS subscribers at maximal rate"
  bench fanout --url http://127.0.0.1:$port $(sio) $publish --subscribers "$SUBSCRIBERS" \
    --events "$EVENTS" --rate 0 --size 200 >"$WORK/$name-max.json"
  say "$name: fan-out, $STEADY_RATE events/s × $SUBSCRIBERS subscribers"
  bench fanout --url http://127.0.0.1:$port $(sio) $publish --subscribers "$SUBSCRIBERS" \
    --events "$STEADY_EVENTS" --rate "$STEADY_RATE" --size 200 >"$WORK/$name-steady.json"
done

report les "laravel-echo-server $LES_VERSION"
