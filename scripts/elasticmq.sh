#!/usr/bin/env bash
# ElasticMQ, an SQS-compatible server, on 127.0.0.1:9324 for wqueue's tests and benchmarks.
#
#   scripts/elasticmq.sh          # start it, or reuse one that already answers; exit 0 once it answers
#   scripts/elasticmq.sh stop     # stop the one this script started on that port (pid file in the cache dir)
#   scripts/elasticmq.sh status   # exit 0 when something answers as SQS on 127.0.0.1:$ELASTICMQ_PORT
#
# Needs only Java 8+ and mvn: the server's jars come from Maven Central (org.elasticmq:elasticmq-server_2.13
# and its dependencies) into $ELASTICMQ_DIR/jars-<version> once. The config (from scripts/elasticmq.conf),
# the pid file and the server's log live in $ELASTICMQ_DIR (default: .elasticmq/ in the repo, gitignored),
# one set per port, so a test may run a private server on another port (ELASTICMQ_PORT=9334).
# Queues are kept in memory only: a restart loses them. Idempotent: a second run finds it answering.
set -euo pipefail

# 1.6.16 or later: earlier ones answer errors of the SDK's JSON protocol in a form it cannot read.
ELASTICMQ_VERSION="${ELASTICMQ_VERSION:-1.7.1}"
DEPENDENCY_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
HOST=127.0.0.1
PORT="${ELASTICMQ_PORT:-9324}"
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ELASTICMQ_DIR="${ELASTICMQ_DIR:-$REPO_DIR/.elasticmq}"
WAIT_SECONDS="${ELASTICMQ_WAIT_SECONDS:-90}"
TEMPLATE="$REPO_DIR/scripts/elasticmq.conf"
JARS="$ELASTICMQ_DIR/jars-$ELASTICMQ_VERSION"
CONFIG="$ELASTICMQ_DIR/elasticmq-$PORT.conf"
LOG="$ELASTICMQ_DIR/elasticmq-$PORT.log"
PIDFILE="$ELASTICMQ_DIR/elasticmq-$PORT.pid"

say() { echo "elasticmq.sh: $*" >&2; }
now_ms() { date +%s%3N; }
elapsed() { local ms=$(($(now_ms) - $1)); printf '%d.%01d s' $((ms / 1000)) $((ms % 1000 / 100)); }

# True when the port accepts a connection at all (SQS or not).
port_open() { (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; }

# True when the port answers an SQS ListQueues in the JSON protocol the AWS SDK speaks (a JSON
# object back, with HTTP 200): an SQS server, not just any open port.
answers_as_sqs() {
  local reply
  reply="$(curl -sS -m 3 -o - -w '\n%{http_code}' -X POST "http://$HOST:$PORT/" \
    -H 'Content-Type: application/x-amz-json-1.0' -H 'X-Amz-Target: AmazonSQS.ListQueues' \
    -d '{}' 2>/dev/null)" || return 1
  [[ "${reply##*$'\n'}" == "200" && "${reply:0:1}" == "{" ]]
}

stop() {
  if [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    local pid
    pid="$(cat "$PIDFILE")"
    kill "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
    rm -f "$PIDFILE"
    # A private server on another port (a test's) leaves nothing behind.
    if [[ "$PORT" != 9324 ]]; then rm -f "$CONFIG" "$LOG"; fi
    say "stopped (pid $pid, port $PORT)"
  else
    rm -f "$PIDFILE"
    say "no ElasticMQ started by this script is running on port $PORT"
  fi
}

fetch_jars() {
  [[ -f "$JARS/.complete" ]] && return 0
  command -v mvn >/dev/null || { say "mvn is not installed (apt-get install maven)"; exit 1; }
  local build="$ELASTICMQ_DIR/maven" began
  began="$(now_ms)"
  mkdir -p "$build"
  rm -rf "$JARS"
  cat >"$build/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>wqueue.test</groupId>
  <artifactId>elasticmq-server-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.elasticmq</groupId><artifactId>elasticmq-server_2.13</artifactId><version>$ELASTICMQ_VERSION</version></dependency>
  </dependencies>
</project>
EOF
  say "downloading ElasticMQ $ELASTICMQ_VERSION jars from Maven Central (once) ..."
  local repo_args=()
  # MAVEN_REPO_LOCAL: another local repository (e.g. an empty one, to time a download from scratch).
  [[ -n "${MAVEN_REPO_LOCAL:-}" ]] && repo_args=("-Dmaven.repo.local=$MAVEN_REPO_LOCAL")
  if ! mvn -B -q "${repo_args[@]}" -f "$build/pom.xml" "$DEPENDENCY_PLUGIN:copy-dependencies" \
      -DincludeScope=runtime -DoutputDirectory="$JARS" >"$ELASTICMQ_DIR/maven.log" 2>&1; then
    tail -n 30 "$ELASTICMQ_DIR/maven.log" >&2
    say "mvn failed; full output in $ELASTICMQ_DIR/maven.log"
    exit 1
  fi
  touch "$JARS/.complete"
  say "jars fetched in $(elapsed "$began") ($(find "$JARS" -name '*.jar' | wc -l) jars)"
}

start() {
  local began
  began="$(now_ms)"
  if answers_as_sqs; then
    say "an SQS server already answers on $HOST:$PORT; reusing it"
    exit 0
  fi
  if port_open; then
    say "something that is not an SQS server listens on $HOST:$PORT; stop it first"
    exit 1
  fi
  command -v java >/dev/null || { say "java (8+) is not installed"; exit 1; }
  command -v curl >/dev/null || { say "curl is not installed (apt-get install curl)"; exit 1; }
  mkdir -p "$ELASTICMQ_DIR"
  fetch_jars
  sed -e "s/@HOST@/$HOST/g" -e "s/@PORT@/$PORT/g" "$TEMPLATE" >"$CONFIG"
  local launched
  launched="$(now_ms)"
  # Detached (setsid, no inherited stdio), so the caller, a test run for instance, may exit freely.
  # A small heap and the serial collector (fewer threads): the machine is shared with the tests that use it.
  setsid java -Xms64m -Xmx256m -XX:+UseSerialGC -Xss512k \
    -Djava.awt.headless=true -Dconfig.file="$CONFIG" \
    -cp "$JARS/*" org.elasticmq.server.Main </dev/null >"$LOG" 2>&1 &
  local pid=$!
  echo "$pid" >"$PIDFILE"
  local deadline=$((SECONDS + WAIT_SECONDS))
  while ((SECONDS < deadline)); do
    if answers_as_sqs; then
      say "ElasticMQ $ELASTICMQ_VERSION answers on $HOST:$PORT: JVM up in $(elapsed "$launched"), $(elapsed "$began") in all (pid $pid, log $LOG)"
      exit 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 40 "$LOG" >&2
      rm -f "$PIDFILE"
      say "ElasticMQ exited during startup; log: $LOG"
      exit 1
    fi
    sleep 0.2
  done
  tail -n 40 "$LOG" >&2
  say "ElasticMQ did not answer on $HOST:$PORT within $WAIT_SECONDS s; log: $LOG; stop it with: $0 stop"
  exit 1
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) answers_as_sqs ;;
  *) say "usage: $0 [start|stop|status]"; exit 2 ;;
esac
