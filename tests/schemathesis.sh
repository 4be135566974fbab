#!/usr/bin/env bash
# Property-based run of schemathesis against the server's own OpenAPI document: every generated
# request must get an answer that is not a 5xx. Needs a built server (cargo build) and Python 3.
#   tests/schemathesis.sh [path/to/chatbox]
# Excluded: POST /api/logout and /api/logout/everywhere (they revoke the token the run
# authenticates with) and
# GET /api/notifications (a long poll holds up to 60 s by design, longer than a request timeout;
# tests/api/delivery.rs covers it).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${1:-${CARGO_TARGET_DIR:-target}/debug/chatbox}"
VERSION=4.32.5
if ! command -v schemathesis >/dev/null 2>&1 || [ "$(schemathesis --version | awk '{print $NF}')" != "$VERSION" ]; then
  python3 -m pip install --quiet --disable-pip-version-check "schemathesis==$VERSION"
fi
work="$(mktemp -d)"
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
export DATABASE_URL="sqlite://$work/chatbox.db"
BIND=127.0.0.1:0 LOG_FORMAT=json "$BIN" serve 2>"$work/server.log" &
server=$!
for _ in $(seq 1 100); do
  addr="$(python3 - "$work/server.log" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try:
        f = json.loads(line).get("fields", {})
    except ValueError:
        continue
    if f.get("message") == "chatbox is serving":
        print(f["addr"])
PY
)"
  [ -n "$addr" ] && break
  sleep 0.2
done
[ -n "$addr" ] || { cat "$work/server.log"; echo "server did not start" >&2; exit 1; }
base="http://$addr"
register() {
  curl -sf -X POST "$base/api/register" -H 'content-type: application/json' \
    -d "{\"name\":\"$1\",\"email\":\"$2\",\"password\":\"schemathesis-password\"}"
}
token="$(register st st@example.com | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
register other other@example.com >/dev/null
# The run's user is an admin, so the admin routes are exercised too.
RUST_LOG=error "$BIN" admin grant st@example.com
schemathesis run "$base/api/openapi.json" --url "$base" -H "Authorization: Bearer $token" \
  --checks not_a_server_error --exclude-path /api/logout --exclude-path /api/logout/everywhere --exclude-path /api/notifications \
  --max-examples 50 --no-color
if grep -q '"level":"ERROR"' "$work/server.log"; then
  grep '"level":"ERROR"' "$work/server.log" | head -5
  echo "the server logged errors during the run" >&2
  exit 1
fi
