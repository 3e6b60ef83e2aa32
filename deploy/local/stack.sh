#!/usr/bin/env bash
# orderflow local stack without Docker: PostgreSQL (Debian packages), Apache Kafka in
# KRaft mode (official jars from Maven Central), the AxonOps Schema Registry (a go tool,
# schemas stored in its own Postgres database), Mailpit as the SMTP sink, and the five
# services, all on loopback.
#
#   stack.sh up [--infra]   start everything (or only Kafka, registry, Postgres, Mailpit)
#   stack.sh down           stop what this stack started
#   stack.sh status         one line per component
#   stack.sh logs [-f]      the last lines of every log (or follow them)
#   stack.sh env            shell exports with every address
#   stack.sh stop|start SVC one service alone (after up), e.g. to show the others cope
#   stack.sh kill SVC       one service killed outright (SIGKILL), as a crash would
#   stack.sh wipe           stop and delete all data of this stack
#
# Settings (environment):
#   ORDERFLOW_STACK_DIR   where data, logs and pid files live   (default: <repo>/.local/dev)
#   ORDERFLOW_PORT_BASE   ports are this base plus a fixed offset (default: 15000)
#   ORDERFLOW_CACHE_DIR   downloaded jars and built tools         (default: <repo>/.cache)
#   ORDERFLOW_KAFKA_JVM_OPTS  the broker's heap and collector options
#                         (default: -Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20)
#   ORDERFLOW_PG_PREALLOCATE_WAL  16 MiB WAL segments to create at `up` (default: 0;
#                         make bench: 64), see pg_preallocate_wal
#   ORDERFLOW_SERVICE_GODEBUG  the services' GODEBUG (default: schedtrace=2147483647,
#                         see service_env; empty gives the Go runtime's own behaviour)
#   ORDERFLOW_PG_HUGE_PAGES  PostgreSQL's huge_pages: off, try (default) or on
#   ORDERFLOW_PG_RESERVE_HUGE_PAGES  1: reserve the huge pages PostgreSQL's shared memory
#                         needs before starting it, as root, and give them back at `down`
#                         (default: 0; make bench: 1), see pg_reserve_huge_pages
#
# Every command is idempotent: `up` on a running stack only starts what is missing and
# waits for health; `down` on a stopped stack does nothing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STACK=${ORDERFLOW_STACK_DIR:-$ROOT/.local/dev}
CACHE=${ORDERFLOW_CACHE_DIR:-$ROOT/.cache}
BASE=${ORDERFLOW_PORT_BASE:-15000}
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$ROOT/deploy/local/kafka/pom.xml")

SERVICES=(shop inventory billing logistics crm)
PG_PORT=$((BASE + 432))
KAFKA_PORT=$((BASE + 92))
KAFKA_CONTROLLER_PORT=$((BASE + 93))
REGISTRY_PORT=$((BASE + 81))
SMTP_PORT=$((BASE + 25))
MAILPIT_HTTP_PORT=$((BASE + 825))
ADMIN_ROLE=orderflow

service_port() { # the HTTP port of service $1
  local i
  for i in "${!SERVICES[@]}"; do
    [[ ${SERVICES[$i]} == "$1" ]] && { echo $((BASE + 1 + i)); return; }
  done
  return 1
}

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] %s\n' "$*" >&2; exit 1; }

mkdir -p "$STACK/logs" "$STACK/run" "$CACHE"

# ---------------------------------------------------------------- prerequisites

as_root() { [[ $(id -u) -eq 0 ]]; }

apt_install() { # apt_install PACKAGE...: only as root, only when apt-get exists
  as_root && command -v apt-get >/dev/null || return 1
  log "installing $* from Debian packages"
  if [[ ! -f $CACHE/.apt-updated ]]; then
    apt-get update -qq >/dev/null && touch "$CACHE/.apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

pg_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [[ -x $d/initdb && -x $d/pg_ctl ]] && { echo "$d"; return; }
  done
  return 1
}

require_prereqs() {
  command -v go >/dev/null || die "missing prerequisite: go (install Go 1.26+ from https://go.dev/dl)"
  if ! command -v java >/dev/null; then
    apt_install openjdk-17-jre-headless || die "missing prerequisite: java 17+ (apt-get install openjdk-17-jre-headless)"
  fi
  if ! command -v mvn >/dev/null; then
    apt_install maven || die "missing prerequisite: mvn (apt-get install maven)"
  fi
  if ! pg_bindir >/dev/null; then
    apt_install postgresql || die "missing prerequisite: PostgreSQL server (apt-get install postgresql)"
  fi
  PGBIN=$(pg_bindir)
  command -v curl >/dev/null || apt_install curl || die "missing prerequisite: curl (apt-get install curl)"
}

# ---------------------------------------------------------------- processes

pidfile() { echo "$STACK/run/$1.pid"; }

running() { # running NAME: the process in NAME's pid file is alive
  local f; f=$(pidfile "$1")
  [[ -f $f ]] && kill -0 "$(cat "$f")" 2>/dev/null
}

start_bg() { # start_bg NAME CMD...: detached, own process group, logs to logs/NAME.log
  local name=$1; shift
  setsid "$@" >>"$STACK/logs/$name.log" 2>&1 < /dev/null &
  echo $! >"$(pidfile "$name")"
}

stop_bg() { # stop_bg NAME: TERM, wait up to 20 s, then KILL
  local name=$1 f pid i
  f=$(pidfile "$name")
  [[ -f $f ]] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name did not stop in 20 s, killing it"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$f"
}

wait_for() { # wait_for WHAT SECONDS CMD...: poll CMD until it succeeds
  local what=$1 secs=$2 i; shift 2
  for i in $(seq 1 $((secs * 5))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  die "$what did not become healthy in ${secs}s; see $STACK/logs"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

port_free() { # port_free PORT WHAT: stop with a clear line when another process holds it
  if port_open "$1"; then
    die "port $1 ($2) is taken by another process; stop it or set ORDERFLOW_PORT_BASE to another base"
  fi
}

secret() { # secret NAME: a random password kept in the stack dir, never in the repo
  local f="$STACK/secrets/$1"
  mkdir -p "$STACK/secrets"; chmod 700 "$STACK/secrets"
  [[ -s $f ]] || (umask 077; head -c 18 /dev/urandom | base64 | tr '+/' '-_' >"$f")
  cat "$f"
}

# ---------------------------------------------------------------- PostgreSQL

# The cluster lives under the stack dir. When running as root and the postgres user
# cannot reach that dir (a checkout under /root, say), it lives under /var/tmp instead,
# one folder per stack dir; `wipe` removes it with the stack.
PG_HOME=$STACK/pg
if as_root && id postgres >/dev/null 2>&1 && ! runuser -u postgres -- test -x "$STACK" 2>/dev/null; then
  PG_HOME="/var/tmp/orderflow-pg/$(printf '%s' "$STACK" | sha1sum | cut -c1-12)"
fi
PGDATA_DIR() { echo "$PG_HOME/data"; }
PGSOCK_DIR() { echo "$PG_HOME/run"; }
PGLOG() { echo "$PG_HOME/postgres.log"; }

pg_as() { # run a PostgreSQL binary as the cluster owner (postgres refuses to run as root)
  if as_root; then runuser -u postgres -- "$@"; else "$@"; fi
}

psql_admin() { # psql_admin DB SQL...
  local db=$1; shift
  pg_as "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$(PGSOCK_DIR)" -p "$PG_PORT" -U "$ADMIN_ROLE" -d "$db" "$@"
}

pg_init() {
  local data; data=$(PGDATA_DIR)
  [[ -f $data/PG_VERSION ]] && return 0
  log "creating PostgreSQL cluster in $data"
  mkdir -p "$data" "$(PGSOCK_DIR)"
  [[ $PG_HOME == "$STACK/pg" ]] || { mkdir -p "$PG_HOME"; chmod 755 "$(dirname "$PG_HOME")"; }
  local pwfile="$PG_HOME/.pwfile"
  (umask 077; secret "$ADMIN_ROLE" >"$pwfile")
  if as_root; then
    id postgres >/dev/null 2>&1 || die "missing prerequisite: the postgres system user (apt-get install postgresql)"
    chown -R postgres: "$PG_HOME"
  fi
  ln -sfn "$(PGLOG)" "$STACK/logs/postgres.log"
  pg_as "$PGBIN/initdb" -D "$data" -U "$ADMIN_ROLE" --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >"$STACK/logs/initdb.log" 2>&1 \
    || die "initdb failed; see $STACK/logs/initdb.log"
  rm -f "$pwfile"
  # Service roles may reach only the database named like them ("sameuser"), with their
  # password, over TCP or the Unix socket; the admin role reaches all. Services connect
  # through the socket, which skips the TCP stack on every round trip (alternating runs
  # on one stack at 100 orders/s: p50 146 ms against 203 ms over TCP; make bench from a
  # cold stack could not tell them apart, ADR 0007). The socket directory is private to
  # the cluster owner, who runs the stack.
  cat >"$data/pg_hba.conf" <<HBA
local   all       $ADMIN_ROLE            trust
local   sameuser  all                    scram-sha-256
host    all       $ADMIN_ROLE  127.0.0.1/32   scram-sha-256
host    sameuser  all          127.0.0.1/32   scram-sha-256
HBA
  cat >>"$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$(PGSOCK_DIR)'
unix_socket_permissions = 0700
max_connections = 300
shared_buffers = 256MB
fsync = on
synchronous_commit = on
log_min_messages = warning
# Prepared statements keep the generic plan made when their table was nearly empty (a
# sequential scan) until an ANALYZE or VACUUM of the table invalidates it. With the
# default one-minute naptime, the outbox and order tables of a fresh stack were scanned
# whole by every relay pass and order lock for its first one to three minutes (25M rows
# read in a make bench, 80M in 90 s at 100 orders/s; PostgreSQL used 6.8-6.9 ms of CPU
# per order at 100/s against 5.9 with 10 s); at 10 s autovacuum analyzes them early.
autovacuum_naptime = 10s
huge_pages = ${ORDERFLOW_PG_HUGE_PAGES:-try}
CONF
  if as_root; then chown postgres: "$data/pg_hba.conf" "$data/postgresql.conf"; fi
}

pg_up() {
  pg_init
  if ! pg_as "$PGBIN/pg_ctl" -D "$(PGDATA_DIR)" status >/dev/null 2>&1; then
    pg_reserve_huge_pages
    port_free "$PG_PORT" postgres
    touch "$(PGLOG)"
    if as_root; then chown postgres: "$(PGLOG)"; fi
    log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    pg_as "$PGBIN/pg_ctl" -D "$(PGDATA_DIR)" -l "$(PGLOG)" -w -t 60 start >/dev/null \
      || die "PostgreSQL did not start; see $STACK/logs/postgres.log"
  fi
  local db pw
  for db in "${SERVICES[@]}" schemaregistry; do
    pw=$(secret "$db")
    psql_admin postgres <<SQL
SELECT format('CREATE ROLE %I LOGIN', '$db') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$db')\gexec
ALTER ROLE "$db" LOGIN PASSWORD '$pw';
SELECT format('CREATE DATABASE %I OWNER %I', '$db', '$db') WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$db')\gexec
REVOKE ALL ON DATABASE "$db" FROM PUBLIC;
GRANT ALL ON DATABASE "$db" TO "$db";
SQL
  done
}

# A cluster younger than its first checkpoints has no used WAL segments to recycle, so each
# time its WAL crosses into a new 16 MiB segment the backend that gets there creates the
# file, writes it full of zeros and syncs it, holding the WAL write lock: every commit of
# every database waits. In a make bench at 100 orders/s that was a 100-215 ms stall of
# 20-30 commits every 5 s (the WAL grows 3.3 MB/s), the slowest seconds of the step. A
# cluster in service recycles segments at each checkpoint and never pays it. This creates
# $1 segments ahead and keeps them (min_wal_size): they are switched to at once, then
# recycled by the checkpoint into files for the WAL to come.
pg_preallocate_wal() { # pg_preallocate_wal SEGMENTS
  local n=$1 have
  [[ $n =~ ^[0-9]+$ ]] || die "ORDERFLOW_PG_PREALLOCATE_WAL must be a number of 16 MiB segments, not '$n'"
  ((n > 0)) || return 0
  psql_admin postgres -c "ALTER SYSTEM SET min_wal_size = '$((n * 16 + 80))MB'" -c "SELECT pg_reload_conf()" >/dev/null
  have=$(ls "$(PGDATA_DIR)/pg_wal" | grep -c '^[0-9A-F]\{24\}$' || true)
  ((have >= n)) && return 0
  log "preallocating $n WAL segments ($((n * 16)) MiB)"
  for _ in $(seq 1 "$n"); do
    echo "SELECT pg_logical_emit_message(false, 'orderflow', 'preallocate'); SELECT pg_switch_wal();"
  done | psql_admin postgres >/dev/null
  psql_admin postgres -c "CHECKPOINT" >/dev/null
}

pg_down() {
  [[ -n ${PGBIN:-} ]] || PGBIN=$(pg_bindir 2>/dev/null) || return 0
  if [[ -f $(PGDATA_DIR)/postmaster.pid ]]; then
    pg_as "$PGBIN/pg_ctl" -D "$(PGDATA_DIR)" -m fast -w stop >/dev/null 2>&1 || true
  fi
  pg_release_huge_pages
}

# Huge pages. PostgreSQL maps its shared memory (shared buffers and the rest: 290 MiB
# here) into every backend, and on the kernel's 4 KiB pages each backend keeps page
# tables of its own for what it touches: under make bench the machine held up to 52 MiB
# of page tables, more than its L3 cache, and every miss of the TLB reads them. On 2 MiB
# pages it held 16 MiB, and an order at 100/s cost PostgreSQL about a tenth less CPU
# (eight alternating pairs, ADR 0023). PostgreSQL uses huge pages when
# huge_pages is try (its default) or on and the kernel has enough of them free; most
# machines reserve none (vm.nr_hugepages = 0). With ORDERFLOW_PG_RESERVE_HUGE_PAGES=1
# the stack reserves what is missing before PostgreSQL starts, as root, and gives back
# what it reserved when it stops it; the count is kept in run/pg-huge-pages.
hugepages_file() { echo "$STACK/run/pg-huge-pages"; }

pg_reserve_huge_pages() {
  [[ ${ORDERFLOW_PG_RESERVE_HUGE_PAGES:-0} == 1 && ${ORDERFLOW_PG_HUGE_PAGES:-try} != off ]] || return 0
  local need free rsvd short total got
  need=$(pg_as "$PGBIN/postgres" -D "$(PGDATA_DIR)" -C shared_memory_size_in_huge_pages 2>/dev/null || true)
  if ! [[ $need =~ ^[0-9]+$ ]] || ((need <= 0)); then
    log "PostgreSQL cannot say how many huge pages it needs (shared_memory_size_in_huge_pages, PostgreSQL 15 or later); none reserved"
    return 0
  fi
  free=$(awk '/^HugePages_Free:/ {print $2}' /proc/meminfo)
  rsvd=$(awk '/^HugePages_Rsvd:/ {print $2}' /proc/meminfo)
  short=$((need - (${free:-0} - ${rsvd:-0})))
  ((short > 0)) || return 0
  if ! as_root; then
    log "PostgreSQL needs $need huge pages and $((need - short)) are free: it runs on 4 KiB pages unless root reserves them (sysctl vm.nr_hugepages)"
    return 0
  fi
  total=$(cat /proc/sys/vm/nr_hugepages)
  if ! set_nr_hugepages $((total + short)); then
    log "could not raise vm.nr_hugepages (a container's read-only /proc/sys?): PostgreSQL runs on 4 KiB pages"
    return 0
  fi
  got=$(($(cat /proc/sys/vm/nr_hugepages) - total))
  echo $(($(cat "$(hugepages_file)" 2>/dev/null || echo 0) + got)) >"$(hugepages_file)"
  if ((got < short)); then
    log "reserved $got of the $short huge pages PostgreSQL lacks (the kernel found no more free 2 MiB blocks): it runs on 4 KiB pages"
  else
    log "reserved $got huge pages for PostgreSQL's shared memory (vm.nr_hugepages $total -> $((total + got)))"
  fi
}

pg_release_huge_pages() {
  local f n total
  f=$(hugepages_file)
  if [[ ! -f $f ]] || ! as_root; then return 0; fi
  n=$(cat "$f")
  total=$(cat /proc/sys/vm/nr_hugepages)
  if ! set_nr_hugepages $((total > n ? total - n : 0)); then
    log "could not give back the $n huge pages reserved for PostgreSQL (vm.nr_hugepages stays $total); kept in $f for the next down"
    return 0
  fi
  rm -f "$f"
}

# set_nr_hugepages N: the kernel's count of reserved huge pages; fails, without ending
# the script, where /proc/sys cannot be written.
set_nr_hugepages() { { echo "$1" >/proc/sys/vm/nr_hugepages; } 2>/dev/null; }

# ---------------------------------------------------------------- Kafka

kafka_libs() {
  local dir="$CACHE/kafka-$KAFKA_VERSION"
  if [[ ! -f $dir/.complete ]]; then
    log "fetching Apache Kafka $KAFKA_VERSION and its dependencies from Maven Central"
    rm -rf "$dir"
    mvn -B -q -f "$ROOT/deploy/local/kafka/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$dir/libs" >"$STACK/logs/maven.log" 2>&1 \
      || die "could not fetch Kafka from Maven Central; see $STACK/logs/maven.log"
    touch "$dir/.complete"
  fi
  echo "$dir/libs"
}

kafka_up() {
  running kafka && return 0
  port_free "$KAFKA_PORT" kafka
  port_free "$KAFKA_CONTROLLER_PORT" "kafka controller"
  local libs data conf
  libs=$(kafka_libs)
  data="$STACK/kafka/data"
  conf="$STACK/kafka/server.properties"
  mkdir -p "$data"
  cat >"$conf" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$data
num.partitions=6
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.ms=-1
# A single local broker on a small machine: one network and one I/O thread. Each request
# crosses from a network thread to an I/O thread and back; on two cores shared with the
# whole suite, more threads only wake more often. Against two of each, in two alternating
# make bench pairs: 280.4 and 292.2 orders/s completed at 300/s offered against 250.4 and
# 250.9, p99 at 100/s 165.4 and 78.1 ms against 246.8 and 157.5 (performance log, session
# 21). Kafka's defaults (3 and 8) are for a broker with a machine of its own.
num.network.threads=1
num.io.threads=1
# The log cleaner's dedupe map lives on the heap (128 MiB by default): most of the
# broker's live set, which kept G1 in back-to-back concurrent marking cycles. 16 MiB
# covers a local broker's compacted topics.
log.cleaner.dedupe.buffer.size=16777216
PROPS
  cp "$ROOT/deploy/local/kafka/log4j2.yaml" "$STACK/kafka/log4j2.yaml"
  if [[ ! -f $data/meta.properties ]]; then
    log "formatting Kafka storage in $data"
    java -cp "$libs/*" kafka.tools.StorageTool format --ignore-formatted \
      -t "$(java -cp "$libs/*" kafka.tools.StorageTool random-uuid 2>/dev/null)" -c "$conf" \
      >>"$STACK/logs/kafka.log" 2>&1 || die "Kafka storage format failed; see $STACK/logs/kafka.log"
  fi
  log "starting Kafka $KAFKA_VERSION (KRaft) on 127.0.0.1:$KAFKA_PORT"
  # G1 with a 20 ms pause goal. Its young pauses (5-24 ms every few seconds) show in the
  # tail of commit-to-consume latency; Shenandoah's stay under a millisecond, but in
  # alternating runs it did not lower that tail and made the whole suite slower (its
  # barriers and concurrent cycles take CPU the services need): ADR 0008. The GC log is
  # in logs/kafka-gc.log; ORDERFLOW_KAFKA_JVM_OPTS replaces heap and collector options.
  # shellcheck disable=SC2086 # a list of JVM options
  start_bg kafka java ${ORDERFLOW_KAFKA_JVM_OPTS:--Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20} \
    -Xlog:gc:file="$STACK/logs/kafka-gc.log":time,uptime:filecount=2,filesize=10m \
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$STACK/kafka/log4j2.yaml" \
    -cp "$libs/*" kafka.Kafka "$conf"
}

kafka_ready() { port_open "$KAFKA_PORT" && grep -q "Kafka Server started" "$STACK/logs/kafka.log"; }

# ---------------------------------------------------------------- Go tools

go_tool_bin() { # go_tool_bin NAME PACKAGE: builds a tool from deploy/tools once per version
  local name=$1 pkg=$2 sum bin
  sum=$(sha1sum "$ROOT/deploy/tools/go.sum" | cut -c1-12)
  bin="$CACHE/bin/$name-$sum"
  if [[ ! -x $bin ]]; then
    log "building $name (go tool, first run only)"
    (cd "$ROOT/deploy/tools" && GOWORK=off go build -o "$bin" "$pkg") >"$STACK/logs/build-$name.log" 2>&1 \
      || die "could not build $name; see $STACK/logs/build-$name.log"
  fi
  echo "$bin"
}

registry_up() {
  running registry && return 0
  port_free "$REGISTRY_PORT" "schema registry"
  local bin; bin=$(go_tool_bin schema-registry github.com/axonops/axonops-schema-registry/cmd/schema-registry)
  cat >"$STACK/registry.yaml" <<YAML
server:
  host: 127.0.0.1
  port: $REGISTRY_PORT
storage:
  type: postgresql
  postgresql:
    host: 127.0.0.1
    port: $PG_PORT
    database: schemaregistry
    user: schemaregistry
    ssl_mode: disable
    max_open_conns: 10
    max_idle_conns: 5
compatibility:
  default_level: BACKWARD_TRANSITIVE
logging:
  level: warn
  format: json
security:
  auth:
    enabled: false
YAML
  log "starting the schema registry on 127.0.0.1:$REGISTRY_PORT (storage: Postgres database schemaregistry)"
  SCHEMA_REGISTRY_PG_PASSWORD=$(secret schemaregistry) start_bg registry "$bin" -config "$STACK/registry.yaml"
}

registry_ready() { curl -fsS "http://127.0.0.1:$REGISTRY_PORT/subjects" >/dev/null; }

mailpit_up() {
  running mailpit && return 0
  port_free "$SMTP_PORT" "mailpit smtp"
  port_free "$MAILPIT_HTTP_PORT" "mailpit http"
  local bin; bin=$(go_tool_bin mailpit github.com/axllent/mailpit)
  log "starting Mailpit: SMTP 127.0.0.1:$SMTP_PORT, web and API http://127.0.0.1:$MAILPIT_HTTP_PORT"
  start_bg mailpit "$bin" --listen "127.0.0.1:$MAILPIT_HTTP_PORT" --smtp "127.0.0.1:$SMTP_PORT" \
    --database "$STACK/mailpit.db" --max 0 --disable-version-check
}

mailpit_ready() { curl -fsS "http://127.0.0.1:$MAILPIT_HTTP_PORT/livez" >/dev/null; }

# ---------------------------------------------------------------- services

# GOMEMLIMIT, the Go runtime's soft memory limit, keeps each service under 100 MiB of RSS
# when several times more orders arrive than the suite can confirm: at 300 orders/s offered
# shop peaked at 87-88 MiB with it and 92-101 MiB without, completing as many (README,
# Performance). GOMAXPROCS=1: the whole suite shares the machine's cores, and no service
# needs more than a third of a core even at 300 orders/s offered; a second P per process
# only spins looking for work and wakes threads the other processes need. At 100 orders/s
# p99 was 82-109 ms in four of six make bench runs with it, 120-187 in all five without,
# and lower with it in four of five comparisons of neighbouring runs (ADR 0016). GOGC=400:
# a service keeps about 5 MiB live and allocates 15-16 MiB a second at 100 orders/s, so at the
# runtime's default (100) it collected several times a second; at 400, with GOMEMLIMIT
# capping the heap, it collects a quarter as often (ADR 0019). GODEBUG=schedtrace with a
# period of 24.8 days (one scheduler line on stderr per period, the first at start on a
# host up longer than that): the runtime's monitor thread then never sleeps deeply, and so
# is no longer woken by the first system call after every idle moment to watch the next
# 20 us; a service woken hundreds of times a second by events spent half its context
# switches and about 4% of a core there. make bench at 100 orders/s: 12.5-13.4 ms of CPU
# per order with it against 14.6-16.8 without, p99 20.2-28.5 ms against 31.8-68.6 (ADR 0022).
service_env() { # the environment service $1 runs with
  local svc=$1
  cat <<ENV
ORDERFLOW_SERVICE_HTTP_ADDR=127.0.0.1:$(service_port "$svc")
ORDERFLOW_KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT
ORDERFLOW_REGISTRY_URL=http://127.0.0.1:$REGISTRY_PORT
ORDERFLOW_DATABASE_URL=postgres://$svc:$(secret "$svc")@/$svc?host=$(PGSOCK_DIR)&port=$PG_PORT&sslmode=disable
ORDERFLOW_ADMIN_TOKEN=$(secret admin-token)
ORDERFLOW_SMTP_ADDR=127.0.0.1:$SMTP_PORT
ORDERFLOW_FOLLOWUP_DELAY=${ORDERFLOW_FOLLOWUP_DELAY:-30s}
GOMEMLIMIT=64MiB
GOGC=400
GOMAXPROCS=1
GODEBUG=${ORDERFLOW_SERVICE_GODEBUG-schedtrace=2147483647}
ENV
}

build_services() { # build_services NAME...: the binaries, with the version stamped in
  mkdir -p "$STACK/bin" "$STACK/logs"
  (cd "$ROOT" && for s in "$@"; do
     go build -ldflags "-X main.version=$(scripts/version.sh "$s")" -o "$STACK/bin/$s" "./services/$s/cmd/$s" || exit 1
   done) \
    >"$STACK/logs/build-services.log" 2>&1 || die "service build failed; see $STACK/logs/build-services.log"
}

write_env() { # write_env NAME: the service's environment file; prints its path
  # The environment goes through a private file, not the command line, where every
  # user of the machine could read the passwords in it.
  mkdir -p "$STACK/run"
  local envfile="$STACK/run/$1.env"
  (umask 077; service_env "$1" | sed "s/=\(.*\)/='\1'/" >"$envfile")
  echo "$envfile"
}

services_up() {
  log "building services"
  build_services "${SERVICES[@]}"
  local s
  for s in "${SERVICES[@]}"; do
    running "$s" && continue
    port_free "$(service_port "$s")" "$s"
    log "starting $s on 127.0.0.1:$(service_port "$s")"
    local envfile
    envfile=$(write_env "$s")
    start_bg "$s" bash -c "set -a; . '$envfile'; set +a; exec '$STACK/bin/$s' serve"
  done
  for s in "${SERVICES[@]}"; do
    wait_for "$s" 90 curl -fsS "http://127.0.0.1:$(service_port "$s")/readyz"
  done
}

# ---------------------------------------------------------------- commands

cmd_up() {
  require_prereqs
  pg_up
  pg_preallocate_wal "${ORDERFLOW_PG_PREALLOCATE_WAL:-0}"
  kafka_up
  registry_up
  mailpit_up
  wait_for kafka 90 kafka_ready
  wait_for "schema registry" 60 registry_ready
  # The contract (DESIGN.md section 3): every subject evolves BACKWARD_TRANSITIVE or stricter.
  curl -fsS -X PUT -H 'Content-Type: application/vnd.schemaregistry.v1+json' \
    -d '{"compatibility":"BACKWARD_TRANSITIVE"}' "http://127.0.0.1:$REGISTRY_PORT/config" >/dev/null \
    || die "could not set the registry's compatibility level"
  wait_for mailpit 30 mailpit_ready
  [[ ${1:-} == --infra ]] || services_up
  log "up; '$0 env' prints the addresses"
}

cmd_down() {
  local s
  for s in "${SERVICES[@]}"; do stop_bg "$s"; done
  stop_bg mailpit
  stop_bg registry
  stop_bg kafka
  pg_down
  log "down"
}

cmd_status() {
  local s url
  PGBIN=$(pg_bindir 2>/dev/null || true)
  if [[ -n $PGBIN ]] && [[ -f $(PGDATA_DIR)/postmaster.pid ]]; then
    printf '%-10s up    127.0.0.1:%s\n' postgres "$PG_PORT"
  else
    printf '%-10s down\n' postgres
  fi
  for s in kafka registry mailpit "${SERVICES[@]}"; do
    if running "$s"; then
      case $s in
        kafka) url="127.0.0.1:$KAFKA_PORT" ;;
        registry) url="http://127.0.0.1:$REGISTRY_PORT" ;;
        mailpit) url="http://127.0.0.1:$MAILPIT_HTTP_PORT" ;;
        *) url="http://127.0.0.1:$(service_port "$s")"
           curl -fsS "$url/readyz" >/dev/null 2>&1 && url="$url ready" || url="$url not-ready" ;;
      esac
      printf '%-10s up    %s\n' "$s" "$url"
    else
      printf '%-10s down\n' "$s"
    fi
  done
}

cmd_logs() {
  if [[ ${1:-} == -f ]]; then exec tail -n 20 -F "$STACK"/logs/*.log; fi
  tail -n 30 "$STACK"/logs/*.log
}

cmd_env() {
  local s u
  cat <<ENV
export ORDERFLOW_STACK_DIR='$STACK'
export ORDERFLOW_PORT_BASE='$BASE'
export ORDERFLOW_KAFKA_BROKERS='127.0.0.1:$KAFKA_PORT'
export ORDERFLOW_REGISTRY_URL='http://127.0.0.1:$REGISTRY_PORT'
export ORDERFLOW_PG_DATA='$(PGDATA_DIR)'
export ORDERFLOW_PG_ADMIN_URL='postgres://$ADMIN_ROLE:$(secret "$ADMIN_ROLE")@127.0.0.1:$PG_PORT/postgres?sslmode=disable'
export ORDERFLOW_SMTP_ADDR='127.0.0.1:$SMTP_PORT'
export ORDERFLOW_MAILPIT_URL='http://127.0.0.1:$MAILPIT_HTTP_PORT'
export ORDERFLOW_ADMIN_TOKEN='$(secret admin-token)'
ENV
  for s in "${SERVICES[@]}"; do
    u=$(tr '[:lower:]' '[:upper:]' <<<"$s")
    echo "export ORDERFLOW_${u}_URL='http://127.0.0.1:$(service_port "$s")'"
    echo "export ORDERFLOW_${u}_DATABASE_URL='postgres://$s:$(secret "$s")@127.0.0.1:$PG_PORT/$s?sslmode=disable'"
  done
}

cmd_service() { # cmd_service start|stop|kill NAME: one service alone, the rest untouched
  local action=$1 svc=${2:-}
  service_port "$svc" >/dev/null 2>&1 || die "unknown service ${svc:-(none)}; services: ${SERVICES[*]}"
  case $action in
    stop) stop_bg "$svc"; log "$svc stopped" ;;
    kill) # no graceful shutdown: its consumer groups see it vanish, as after a crash
      local f; f=$(pidfile "$svc")
      if [[ -f $f ]]; then
        local pid i; pid=$(cat "$f")
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done # its port frees once it is gone
        rm -f "$f"
      fi
      log "$svc killed" ;;
    start)
      if ! running "$svc"; then
        port_free "$(service_port "$svc")" "$svc"
        local envfile="$STACK/run/$svc.env"
        [[ -x $STACK/bin/$svc && -f $envfile ]] || die "$svc was never started by 'up'; run '$0 up' first"
        log "starting $svc on 127.0.0.1:$(service_port "$svc")"
        start_bg "$svc" bash -c "set -a; . '$envfile'; set +a; exec '$STACK/bin/$svc' serve"
      fi
      wait_for "$svc" 90 curl -fsS "http://127.0.0.1:$(service_port "$svc")/readyz" ;;
  esac
}

# A subcommand runs with its service's environment but the Go runtime's own GOMAXPROCS:
# it is a one-off the operator asked for, not one of the suite's long-running processes
# that share the cores one P each (ADR 0016). A rebuild of shop's order view from a
# million events went from 88k to 102-118k records/s with the machine's two Ps (its
# reading and decoding overlap its writing; session 23).
cmd_run() { # cmd_run NAME ARGS...: run a subcommand of a service's binary (replay, dlq, ...) with its environment
  local svc=${1:-}
  service_port "$svc" >/dev/null 2>&1 || die "unknown service ${svc:-(none)}; services: ${SERVICES[*]}"
  shift
  [[ -x $STACK/bin/$svc ]] || build_services "$svc"
  local envfile
  envfile=$(write_env "$svc")
  (set -a; . "$envfile"; set +a; unset GOMAXPROCS; exec "$STACK/bin/$svc" "$@")
}

cmd_wipe() { # stop, then delete every piece of state of this stack
  cmd_down
  rm -rf "$PG_HOME" "$STACK"
  log "wiped $STACK"
}

case ${1:-} in
  up) shift; cmd_up "$@" ;;
  wipe) cmd_wipe ;;
  start|stop|kill) cmd_service "$1" "${2:-}" ;;
  run) shift; cmd_run "$@" ;;
  down) cmd_down ;;
  status) cmd_status ;;
  logs) shift; cmd_logs "$@" ;;
  env) cmd_env ;;
  *) die "usage: $0 up [--infra] | down | status | logs [-f] | env | start SERVICE | stop SERVICE | kill SERVICE | run SERVICE ARGS... | wipe" ;;
esac
