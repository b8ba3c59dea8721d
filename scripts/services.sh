#!/usr/bin/env bash
# Local PostgreSQL (Debian's packages) and Apache Kafka 4 in KRaft mode (jars from Maven
# Central, run with Java 17), for development, tests and CI on machines without Docker.
#
#   scripts/services.sh start    install what is missing, start both (reuses running ones)
#   scripts/services.sh stop     stop both
#   scripts/services.sh status   say what runs
#   scripts/services.sh env      print the export lines for DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS
#
# State (jars, Kafka data and logs) lives in .services/, which git ignores.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${STOCKWORKER_SERVICES_DIR:-$ROOT/.services}"
KAFKA_DIR="$STATE/kafka"
KAFKA_PORT="${STOCKWORKER_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${STOCKWORKER_KAFKA_CONTROLLER_PORT:-9093}"
PG_PORT="${STOCKWORKER_PG_PORT:-5432}"
PG_USER=stockworker
PG_PASSWORD=stockworker
PG_DB=stockworker
# Local development credentials only; production takes its DSNs from the environment.
PG_APP_USER=stockworker_app
PG_APP_PASSWORD=app-local-secret

log() { echo "[services] $*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {  # port, seconds, what
  local i
  for ((i = 0; i < $2 * 4; i++)); do
    port_open "$1" && return 0
    sleep 0.25
  done
  log "$3 did not open port $1 within $2 s"
  return 1
}

apt_updated=0
apt_install() {
  if [ "$(id -u)" != 0 ]; then
    log "missing packages ($*) and not root: install them, then run this again"
    exit 1
  fi
  if [ "$apt_updated" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

pg_version() { ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1; }

ensure_packages() {
  local need=()
  [ -n "$(pg_version)" ] && [ -x "/usr/lib/postgresql/$(pg_version)/bin/postgres" ] || need+=(postgresql)
  command -v java >/dev/null || need+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || need+=(maven)
  if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    apt_install "${need[@]}"
  fi
  ensure_prometheus
}

# Debian's prometheus, for its binaries only: tests/e2e/test_prometheus_scrape.py starts
# its own server on a free port, and tests/unit/test_dashboard.py runs promtool. The
# package's postinst starts a daemon on :9090 where an init system runs (not in a
# container); it is stopped and disabled here, so nothing is left listening.
ensure_prometheus() {
  command -v prometheus >/dev/null && command -v promtool >/dev/null && return 0
  log "installing prometheus (binaries only; its daemon is left stopped)"
  apt_install --no-install-recommends prometheus
  if [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  elif [ -x /etc/init.d/prometheus ]; then
    /etc/init.d/prometheus stop >/dev/null 2>&1 || true
    update-rc.d prometheus disable >/dev/null 2>&1 || true
  fi
}

start_postgres() {
  local ver
  ver="$(pg_version)"
  if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$ver main"; then
    log "creating PostgreSQL $ver cluster"
    pg_createcluster "$ver" main -p "$PG_PORT" >/dev/null
  fi
  if ! pg_lsclusters -h | awk -v v="$ver" '$1==v && $2=="main" {print $4}' | grep -q online; then
    log "starting PostgreSQL $ver"
    pg_ctlcluster "$ver" main start
  fi
  local i
  for ((i = 0; i < 60; i++)); do
    pg_isready -q -h 127.0.0.1 -p "$PG_PORT" && break
    sleep 0.5
  done
  pg_isready -q -h 127.0.0.1 -p "$PG_PORT" || { log "PostgreSQL is not ready"; return 1; }
  # The application role may create databases: the tests clone a template per test.
  su postgres -c "psql -q -p $PG_PORT -v ON_ERROR_STOP=1" <<SQL
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
    CREATE ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
  END IF;
  -- The worker's role: reads and writes data, owns nothing, changes no schema.
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_APP_USER') THEN
    CREATE ROLE $PG_APP_USER LOGIN;
  END IF;
  ALTER ROLE $PG_APP_USER PASSWORD '$PG_APP_PASSWORD';
END
\$\$;
SELECT 'CREATE DATABASE $PG_DB OWNER $PG_USER'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$PG_DB')\gexec
SQL
}

resolve_kafka() {
  if [ -f "$KAFKA_DIR/libs/.complete" ]; then return 0; fi
  log "resolving Apache Kafka jars with Maven"
  rm -rf "$KAFKA_DIR/libs"
  mvn -q -B -Dstyle.color=never -f "$ROOT/scripts/kafka/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_DIR/libs"
  touch "$KAFKA_DIR/libs/.complete"
}

start_kafka() {
  if port_open "$KAFKA_PORT"; then
    log "Kafka already listening on $KAFKA_PORT: reusing it"
    return 0
  fi
  resolve_kafka
  mkdir -p "$KAFKA_DIR"
  cat >"$KAFKA_DIR/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$KAFKA_DIR/data
num.partitions=6
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=24
PROPS
  if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
    local cluster_id
    # Like Kafka's own Uuid.randomUuid(): never an id starting with "-", which the
    # storage tool's argument parser would read as an option (1 run in 64 failed so).
    cluster_id="$(python3 -c '
import base64, uuid
while True:
    cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not cid.startswith("-"):
        print(cid)
        break
')"
    log "formatting Kafka storage (cluster $cluster_id)"
    java -cp "$KAFKA_DIR/libs/*" kafka.tools.StorageTool format \
      -t "$cluster_id" -c "$KAFKA_DIR/server.properties" >"$KAFKA_DIR/format.log" 2>&1 ||
      { cat "$KAFKA_DIR/format.log" >&2; return 1; }
  fi
  log "starting Kafka on 127.0.0.1:$KAFKA_PORT"
  nohup java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
    -cp "$KAFKA_DIR/libs/*" kafka.Kafka "$KAFKA_DIR/server.properties" \
    >"$KAFKA_DIR/kafka.log" 2>&1 </dev/null &
  echo $! >"$KAFKA_DIR/kafka.pid"
  wait_port "$KAFKA_PORT" 300 Kafka || { tail -n 30 "$KAFKA_DIR/kafka.log" >&2; return 1; }
}

stop_kafka() {
  if [ ! -f "$KAFKA_DIR/kafka.pid" ] && port_open "$KAFKA_PORT"; then
    # Started from another checkout: find the broker by its command line.
    mkdir -p "$KAFKA_DIR"
    pgrep -f "kafka\.Kafka .*server\.properties" | head -n 1 >"$KAFKA_DIR/kafka.pid" || true
    [ -s "$KAFKA_DIR/kafka.pid" ] || rm -f "$KAFKA_DIR/kafka.pid"
  fi
  if [ -f "$KAFKA_DIR/kafka.pid" ] && kill -0 "$(cat "$KAFKA_DIR/kafka.pid")" 2>/dev/null; then
    kill "$(cat "$KAFKA_DIR/kafka.pid")"
    local i
    for ((i = 0; i < 240; i++)); do
      kill -0 "$(cat "$KAFKA_DIR/kafka.pid")" 2>/dev/null || break
      sleep 0.5
    done
    # Never leave a half-stopped broker holding the data directory's lock.
    kill -9 "$(cat "$KAFKA_DIR/kafka.pid")" 2>/dev/null || true
    rm -f "$KAFKA_DIR/kafka.pid"
    log "Kafka stopped"
  fi
}

print_env() {
  echo "export DATABASE_URL=postgresql://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB"
  echo "export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT"
  echo "export STOCKWORKER_APP_DATABASE_URL=postgresql://$PG_APP_USER:$PG_APP_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB"
}

case "${1:-start}" in
  start)
    ensure_packages
    start_postgres
    start_kafka
    log "ready: PostgreSQL on $PG_PORT, Kafka on $KAFKA_PORT"
    ;;
  stop)
    stop_kafka
    ver="$(pg_version)"
    [ -n "$ver" ] && pg_ctlcluster "$ver" main stop 2>/dev/null || true
    ;;
  # One service at a time, for the fault tests (tests/faults) and for drills.
  stop-postgres)
    ver="$(pg_version)"
    pg_ctlcluster "$ver" main stop -m fast
    log "PostgreSQL stopped"
    ;;
  start-postgres) start_postgres ;;
  stop-kafka) stop_kafka ;;
  start-kafka) start_kafka ;;
  status)
    pg_isready -h 127.0.0.1 -p "$PG_PORT" || true
    if port_open "$KAFKA_PORT"; then echo "Kafka: listening on $KAFKA_PORT"; else echo "Kafka: down"; fi
    ;;
  env) print_env ;;
  *)
    echo "usage: $0 start|stop|status|env|stop-postgres|start-postgres|stop-kafka|start-kafka" >&2
    exit 2
    ;;
esac
