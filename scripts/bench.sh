#!/usr/bin/env bash
# `make bench`: the whole suite under an open-loop load through the shop's REST API, on a
# private stack (ports 17xxx) started from scratch and stopped afterwards. Everything runs
# on this machine: Kafka, PostgreSQL, the registry, Mailpit, the five services and the
# load generator. Results: bench/out/bench.json, bench/out/latency.svg and the printed
# table; nothing is asserted. BENCH_ARGS passes flags to the generator, for example
# BENCH_ARGS='-rates 100,300 -step 30s'.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export ORDERFLOW_STACK_DIR=$ROOT/.local/bench
export ORDERFLOW_PORT_BASE=17000
# A fresh cluster creates each WAL segment while commits wait (pg_preallocate_wal in
# deploy/local/stack.sh); the benchmark measures one that has them, as a cluster in
# service does. 64 segments, 1 GiB, cover a run with the default steps.
export ORDERFLOW_PG_PREALLOCATE_WAL=${ORDERFLOW_PG_PREALLOCATE_WAL:-64}
# PostgreSQL's shared memory on 2 MiB pages, reserved for the run and given back after it
# when run as root (pg_reserve_huge_pages in deploy/local/stack.sh, ADR 0023); the report
# says which pages it ran on. ORDERFLOW_PG_RESERVE_HUGE_PAGES=0 leaves the machine's as
# they are.
export ORDERFLOW_PG_RESERVE_HUGE_PAGES=${ORDERFLOW_PG_RESERVE_HUGE_PAGES:-1}
trap 'deploy/local/stack.sh down' EXIT
deploy/local/stack.sh wipe >/dev/null 2>&1 || true
deploy/local/stack.sh up
eval "$(deploy/local/stack.sh env)"
mkdir -p bench/out
(cd tests/e2e && go build -o "$ROOT/.local/bin/bench" ./cmd/bench)
# shellcheck disable=SC2086 # BENCH_ARGS is a list of flags
"$ROOT/.local/bin/bench" -out bench/out ${BENCH_ARGS:-} 2>&1 | tee bench/out/bench.txt
