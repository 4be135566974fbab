# Shared by the side-by-side scripts (bench/peers.sh, bench/echo-peers.sh): sourced, not run.
# Gives say, a work folder $WORK with the servers' logs (kept when the run fails), $PIDS killed
# on exit, wait_port, ports_free and servers_alive.

say() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }

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

# wait_port PORT: until something listens on 127.0.0.1:PORT (10 s).
wait_port() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing listens on port $1; see $WORK/*.log" >&2
  exit 1
}

# ports_free PORT…: stop when one is taken.
ports_free() {
  for port in "$@"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "port $port is taken (a server left from an earlier run?): stop it first" >&2
      exit 1
    fi
  done
}

# servers_alive PID…: stop when one has exited.
servers_alive() {
  for pid in "$@"; do
    kill -0 "$pid" 2>/dev/null || { echo "a server exited at start; see $WORK/*.log" >&2; exit 1; }
  done
}

# report PEER LABEL: the table of $WORK/{chatbox,PEER}-{idle,max,steady}.json.
report() { python3 "$(dirname "${BASH_SOURCE[0]}")/report.py" "$WORK" "$1" "$2"; }
