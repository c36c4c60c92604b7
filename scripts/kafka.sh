#!/usr/bin/env bash
# A single-node Apache Kafka (KRaft) on 127.0.0.1:9092 for wqueue's tests and benchmarks.
#
#   scripts/kafka.sh          # start it, or reuse one that already answers; exit 0 once it answers
#   scripts/kafka.sh stop     # stop the one this script started (pid in $KAFKA_DIR/kafka.pid)
#   scripts/kafka.sh status   # exit 0 when something answers as Kafka on 127.0.0.1:9092
#
# Needs only Java 17+ and mvn: the broker's jars come from Maven Central (org.apache.kafka:kafka_2.13
# and its dependencies, plus an slf4j -> log4j2 backend its POM lacks) into $KAFKA_DIR/jars once.
# Data, config and the broker's log live in $KAFKA_DIR (default: .kafka/ in the repo, gitignored).
# Idempotent: a second run finds the broker answering and exits at once.
# A private broker beside it (tests that stop and start their Kafka): KAFKA_DIR=<its own directory>
# KAFKA_PORT=<port> KAFKA_CONTROLLER_PORT=<port>, and KAFKA_JARS_DIR=<the usual .kafka> to reuse the jars.
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
LOG4J_VERSION="${LOG4J_VERSION:-2.24.3}"
# Kafka's POM brings slf4j-api 1.7 and no backend; log4j-slf4j2-impl needs the 2.x API.
SLF4J_VERSION="${SLF4J_VERSION:-2.0.17}"
DEPENDENCY_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
HOST=127.0.0.1
PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KAFKA_DIR="${KAFKA_DIR:-$REPO_DIR/.kafka}"
WAIT_SECONDS="${KAFKA_WAIT_SECONDS:-90}"
JARS="${KAFKA_JARS_DIR:-$KAFKA_DIR}/jars-$KAFKA_VERSION"
LOG="$KAFKA_DIR/kafka.log"
PIDFILE="$KAFKA_DIR/kafka.pid"

say() { echo "kafka.sh: $*" >&2; }

# True when the port accepts a connection at all (Kafka or not).
port_open() { (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; }

# True when 127.0.0.1:9092 answers an ApiVersions v0 request (api key 18) with our correlation id:
# a Kafka broker, not just any open port.
answers_as_kafka() {
  local reply
  reply="$(
    timeout 3 bash -c '
      exec 3<>"/dev/tcp/$0/$1" || exit 1
      # size=15 | api_key=18 | api_version=0 | correlation_id=0x2a | client_id="probe"
      printf "\x00\x00\x00\x0f\x00\x12\x00\x00\x00\x00\x00\x2a\x00\x05probe" >&3
      head -c 8 <&3 | od -An -tx1 | tr -d " \n"
    ' "$HOST" "$PORT" 2>/dev/null
  )" || return 1
  [[ "${reply:8:8}" == "0000002a" ]]
}

stop() {
  if [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    local pid
    pid="$(cat "$PIDFILE")"
    kill "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
    rm -f "$PIDFILE"
    say "stopped (pid $pid)"
  else
    say "no Kafka started by this script is running"
  fi
}

fetch_jars() {
  [[ -f "$JARS/.complete" ]] && return 0
  command -v mvn >/dev/null || { say "mvn is not installed (apt-get install maven)"; exit 1; }
  local build="$KAFKA_DIR/maven"
  mkdir -p "$build"
  rm -rf "$JARS"
  cat >"$build/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>wqueue.test</groupId>
  <artifactId>kafka-broker-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>$SLF4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
EOF
  say "downloading Kafka $KAFKA_VERSION jars from Maven Central (once) ..."
  local repo_args=()
  # MAVEN_REPO_LOCAL: another local repository (e.g. an empty one, to time a download from scratch).
  [[ -n "${MAVEN_REPO_LOCAL:-}" ]] && repo_args=("-Dmaven.repo.local=$MAVEN_REPO_LOCAL")
  if ! mvn -B -q "${repo_args[@]}" -f "$build/pom.xml" "$DEPENDENCY_PLUGIN:copy-dependencies" \
      -DincludeScope=runtime -DoutputDirectory="$JARS" >"$KAFKA_DIR/maven.log" 2>&1; then
    tail -n 30 "$KAFKA_DIR/maven.log" >&2
    say "mvn failed; full output in $KAFKA_DIR/maven.log"
    exit 1
  fi
  touch "$JARS/.complete"
}

write_config() {
  mkdir -p "$KAFKA_DIR/data"
  cat >"$KAFKA_DIR/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$KAFKA_DIR/data
num.partitions=1
default.replication.factor=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=24
log.segment.bytes=67108864
EOF
  # Quiet: warnings and errors only, to the broker's log file (stdout is redirected there).
  cat >"$KAFKA_DIR/log4j2.properties" <<'EOF'
status = error
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.out.ref = out
logger.kafka.name = kafka
logger.kafka.level = warn
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = info
EOF
}

format_storage() {
  [[ -f "$KAFKA_DIR/data/meta.properties" ]] && return 0
  local cluster_id
  cluster_id="$(java -cp "$JARS/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)"
  java -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" -cp "$JARS/*" kafka.tools.StorageTool \
    format -t "$cluster_id" -c "$KAFKA_DIR/server.properties" >"$KAFKA_DIR/format.log" 2>&1 || {
    cat "$KAFKA_DIR/format.log" >&2
    say "formatting the storage failed"
    exit 1
  }
}

start() {
  local began=$SECONDS
  if answers_as_kafka; then
    say "Kafka already answers on $HOST:$PORT; reusing it"
    exit 0
  fi
  # Test files that start at once each run this script: one starts Kafka, the others wait here
  # and then find it answering.
  mkdir -p "$KAFKA_DIR"
  exec 9>"$KAFKA_DIR/start.lock"
  flock 9
  if answers_as_kafka; then
    say "Kafka already answers on $HOST:$PORT (started meanwhile); reusing it"
    exit 0
  fi
  if port_open; then
    say "something that is not Kafka listens on $HOST:$PORT; stop it first"
    exit 1
  fi
  command -v java >/dev/null || { say "java (17+) is not installed"; exit 1; }
  fetch_jars
  write_config
  format_storage
  # Detached (setsid, no inherited stdio or lock), so the caller, a test run for instance, may exit.
  setsid java -Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" \
    -cp "$JARS/*" kafka.Kafka "$KAFKA_DIR/server.properties" </dev/null >"$LOG" 2>&1 9>&- &
  local pid=$!
  echo "$pid" >"$PIDFILE"
  local deadline=$((SECONDS + WAIT_SECONDS))
  while ((SECONDS < deadline)); do
    if answers_as_kafka; then
      say "Kafka $KAFKA_VERSION answers on $HOST:$PORT after $((SECONDS - began)) s (pid $pid, log $LOG)"
      exit 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 40 "$LOG" >&2
      say "Kafka exited during startup; log: $LOG"
      exit 1
    fi
    sleep 0.5
  done
  tail -n 40 "$LOG" >&2
  say "Kafka did not answer on $HOST:$PORT within $WAIT_SECONDS s; log: $LOG; stop it with: $0 stop"
  exit 1
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) answers_as_kafka ;;
  *) say "usage: $0 [start|stop|status]"; exit 2 ;;
esac
