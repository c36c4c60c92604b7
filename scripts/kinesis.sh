#!/usr/bin/env bash
# kinesis-local (kinesis-mock's Node build, an npm devDependency) on 127.0.0.1:4568 for wqueue's tests
# and benchmarks, and by hand.
#
#   scripts/kinesis.sh          # start it, or reuse one that already answers; exit 0 once it answers
#   scripts/kinesis.sh stop     # stop the one this script started on that port (pid file in the cache dir)
#   scripts/kinesis.sh status   # exit 0 when something answers as Kinesis on 127.0.0.1:$KINESIS_PORT
#
# Needs only Node and curl: the server is node_modules/kinesis-local/main.js (npm ci installs it).
# Plain HTTP on $KINESIS_PORT (default 4568); it always opens a TLS port as well, $KINESIS_TLS_PORT,
# by default port-1 (4567) when that is free, else one the OS picks. Both bind every interface.
# The pid file, the TLS port and the server's log live in $KINESIS_DIR (default: .kinesis/ in the
# repo, gitignored), one set per port, so a test may run a private server on another port.
# Streams are kept in memory, unless KINESIS_PERSIST=1: then in $KINESIS_DIR/data-<port>, written
# every second and on a clean stop (SIGTERM, as `stop` sends), loaded at start, so a restart keeps
# them (for a test that checks just that; a SIGKILL loses up to the last second).
# Idempotent: a second run finds it answering.
#
# Clients: the AWS SDK's default HTTP/2 handler fails against it; use @smithy/node-http-handler's
# NodeHttpHandler, endpoint http://127.0.0.1:4568, region us-east-1, any credentials (x/x).
set -euo pipefail

HOST=127.0.0.1
PORT="${KINESIS_PORT:-4568}"
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KINESIS_DIR="${KINESIS_DIR:-$REPO_DIR/.kinesis}"
WAIT_SECONDS="${KINESIS_WAIT_SECONDS:-60}"
PACKAGE="$REPO_DIR/node_modules/kinesis-local"
LOG="$KINESIS_DIR/kinesis-$PORT.log"
PIDFILE="$KINESIS_DIR/kinesis-$PORT.pid"
TLSFILE="$KINESIS_DIR/kinesis-$PORT.tls-port"
DATA="$KINESIS_DIR/data-$PORT"
# Stream state changes (CREATING -> ACTIVE, ...) take 500 ms each by default: short for tests.
DURATION="${KINESIS_DURATION:-50ms}"

say() { echo "kinesis.sh: $*" >&2; }
now_ms() { date +%s%3N; }
elapsed() { local ms=$(($(now_ms) - $1)); printf '%d.%01d s' $((ms / 1000)) $((ms % 1000 / 100)); }

# True when the port accepts a connection at all (Kinesis or not).
port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# POSTs a Kinesis action (JSON 1.1 protocol) with an empty body; prints the reply, then the HTTP
# status on a line of its own. The server wants an Authorization header that names Credential,
# SignedHeaders and Signature, and an X-Amz-Date (or Date); it checks no signature.
call() {
  curl -sS -m 3 -o - -w '\n%{http_code}' -X POST "http://$HOST:$PORT/" \
    -H 'Content-Type: application/x-amz-json-1.1' -H "X-Amz-Target: Kinesis_20131202.$1" \
    -H 'Authorization: AWS4-HMAC-SHA256 Credential=x/20240101/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=0' \
    -H 'X-Amz-Date: 20240101T000000Z' \
    -d '{}' 2>/dev/null
}

# True when the port answers ListStreams with HTTP 200 and a JSON object: a Kinesis server, not
# just any open port.
answers_as_kinesis() {
  local reply
  reply="$(call ListStreams)" || return 1
  [[ "${reply##*$'\n'}" == "200" && "${reply:0:1}" == "{" ]]
}

# "shard limit N, M open shards" from DescribeLimits: a reused server started otherwise may have
# kinesis-local's default limit (50 shards across all streams), too few for the tests.
limits() {
  local reply limit open
  reply="$(call DescribeLimits)" || return 0
  limit="$(sed -n 's/.*"ShardLimit":\([0-9]*\).*/\1/p' <<<"$reply")"
  open="$(sed -n 's/.*"OpenShardCount":\([0-9]*\).*/\1/p' <<<"$reply")"
  [[ -n "$limit" ]] && echo "shard limit $limit, $open open shards"
}

# A port nobody listens on now, picked by the OS.
free_port() {
  node -e 'const s = require("node:net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

stop() {
  if [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    local pid
    pid="$(cat "$PIDFILE")"
    kill "$pid"
    # It saves its streams (KINESIS_PERSIST=1) and exits within ~2 s, unless clients hold keep-alive
    # connections open: its graceful close then waits for them, so it is killed after 5 s.
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
    rm -f "$PIDFILE" "$TLSFILE"
    # A private server on another port (a test's) leaves only its data behind (for a restart).
    if [[ "$PORT" != 4568 ]]; then rm -f "$LOG"; fi
    say "stopped (pid $pid, port $PORT)"
  else
    rm -f "$PIDFILE" "$TLSFILE"
    say "no kinesis-local started by this script is running on port $PORT"
  fi
}

start() {
  local began
  began="$(now_ms)"
  command -v curl >/dev/null || { say "curl is not installed (apt-get install curl)"; exit 1; }
  if answers_as_kinesis; then
    local shards
    shards="$(limits)"
    say "a Kinesis server already answers on $HOST:$PORT${shards:+ ($shards)}; reusing it"
    if [[ "$shards" =~ ^shard\ limit\ ([0-9]+) ]] && ((BASH_REMATCH[1] < 1000)); then
      say "warning: its shard limit is low for the tests (they create many streams); this script starts one with SHARD_LIMIT=10000"
    fi
    exit 0
  fi
  if port_open "$PORT"; then
    say "something that is not a Kinesis server listens on $HOST:$PORT; stop it first"
    exit 1
  fi
  command -v node >/dev/null || { say "node is not installed"; exit 1; }
  [[ -f "$PACKAGE/main.js" ]] || { say "$PACKAGE/main.js is missing: run npm ci (kinesis-local is a devDependency)"; exit 1; }
  local tls_port="${KINESIS_TLS_PORT:-$((PORT - 1))}"
  if [[ -z "${KINESIS_TLS_PORT:-}" ]] && port_open "$tls_port"; then tls_port="$(free_port)"; fi
  if [[ "$tls_port" == "$PORT" ]] || port_open "$tls_port"; then
    say "the TLS port $tls_port (which kinesis-local always opens) is taken; set KINESIS_TLS_PORT to a free one"
    exit 1
  fi
  mkdir -p "$KINESIS_DIR"
  local persist=()
  if [[ "${KINESIS_PERSIST:-0}" == 1 ]]; then
    mkdir -p "$DATA"
    persist=(SHOULD_PERSIST_DATA=true PERSIST_PATH="$DATA" PERSIST_INTERVAL=1s LOAD_DATA_IF_EXISTS=true)
  fi
  local launched
  launched="$(now_ms)"
  # Detached (setsid, no inherited stdio), so the caller, a test run for instance, may exit freely.
  # It crashes at start without KINESIS_MOCK_CERT_PATH (its own self-signed certificate), even for plain HTTP.
  # SHARD_LIMIT counts the shards of every stream at once: tests create many streams.
  (
    cd "$KINESIS_DIR"
    exec env KINESIS_MOCK_CERT_PATH="$PACKAGE/server.json" \
      KINESIS_MOCK_PLAIN_PORT="$PORT" KINESIS_MOCK_TLS_PORT="$tls_port" \
      CREATE_STREAM_DURATION="$DURATION" DELETE_STREAM_DURATION="$DURATION" \
      SPLIT_SHARD_DURATION="$DURATION" MERGE_SHARDS_DURATION="$DURATION" UPDATE_SHARD_COUNT_DURATION="$DURATION" \
      SHARD_LIMIT="${KINESIS_SHARD_LIMIT:-10000}" LOG_LEVEL="${KINESIS_LOG_LEVEL:-WARN}" ROOT_LOG_LEVEL=ERROR \
      "${persist[@]}" \
      setsid node "$PACKAGE/main.js" </dev/null >"$LOG" 2>&1
  ) &
  local pid=$!
  echo "$pid" >"$PIDFILE"
  echo "$tls_port" >"$TLSFILE"
  local deadline=$((SECONDS + WAIT_SECONDS))
  while ((SECONDS < deadline)); do
    if answers_as_kinesis; then
      local mode="in memory"
      [[ ${#persist[@]} -gt 0 ]] && mode="persisted in $DATA"
      say "kinesis-local answers on $HOST:$PORT (TLS $tls_port, streams $mode): up in $(elapsed "$launched"), $(elapsed "$began") in all (pid $pid, log $LOG)"
      exit 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 40 "$LOG" >&2
      rm -f "$PIDFILE" "$TLSFILE"
      say "kinesis-local exited during startup; log: $LOG"
      exit 1
    fi
    sleep 0.2
  done
  tail -n 40 "$LOG" >&2
  say "kinesis-local did not answer on $HOST:$PORT within $WAIT_SECONDS s; log: $LOG; stop it with: $0 stop"
  exit 1
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) answers_as_kinesis ;;
  *) say "usage: $0 [start|stop|status]"; exit 2 ;;
esac
