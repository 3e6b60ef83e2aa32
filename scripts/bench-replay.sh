#!/usr/bin/env bash
# `make bench-replay`: replay throughput. On a private infrastructure stack (ports
# 17500+, started from scratch and stopped afterwards) a generator writes synthetic order
# histories (ORDERS orders, five events each; 200000 gives 1M events) to the real topics
# with the real schemas, then `shop replay --model order-view` rebuilds the order view
# from them twice (first build, then a rebuild beside the built model with a swap), and
# `--verify` compares the result. Results: bench/out/replay.json and the printed lines.
# Nothing is asserted.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export ORDERFLOW_STACK_DIR=$ROOT/.local/bench-replay
export ORDERFLOW_PORT_BASE=17500
ORDERS=${ORDERS:-200000}
# As make bench: a fresh cluster creates each 16 MiB WAL segment while commits wait
# (ADR 0017), which a cluster in service does not. A rebuild of the order view writes
# about 250 MB of WAL per million events; 64 segments cover the three runs.
export ORDERFLOW_PG_PREALLOCATE_WAL=${ORDERFLOW_PG_PREALLOCATE_WAL:-64}
STACK=deploy/local/stack.sh
if ! command -v jq >/dev/null; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null
  fi
  command -v jq >/dev/null || { echo "missing prerequisite: jq (apt-get install jq)" >&2; exit 1; }
fi
trap '$STACK down' EXIT
$STACK wipe >/dev/null 2>&1 || true
$STACK up --infra
eval "$($STACK env)"
mkdir -p bench/out
(cd tests/e2e && go build -o "$ROOT/.local/bin/replaygen" ./cmd/replaygen)
"$ROOT/.local/bin/replaygen" -orders "$ORDERS"

out=bench/out/replay.json
: >"$out"
for run in "first build" "rebuild and swap" "verify"; do
  args=(--model order-view --json)
  [[ $run == verify ]] && args+=(--verify)
  echo "--- $run"
  # shellcheck disable=SC2016 # the jq program is not shell
  $STACK run shop replay "${args[@]}" 2>"$ORDERFLOW_STACK_DIR/logs/replay.log" | tee -a "$out" | jq -r '
    if .phase then empty
    else "\(.model): \(.records) records (\(.events) events) in \(.duration_ns / 1e9 * 100 | round / 100) s = \(.records_per_second | round) records/s (writer waited \(.read_wait_ns / 1e9 * 100 | round / 100) s for reads, wrote \(.write_ns / 1e9 * 100 | round / 100) s, indexed \(.index_ns / 1e9 * 100 | round / 100) s)"
         + (if .swapped then ", swapped in as epoch \(.epoch)" else "" end)
         + (if .report then ", verify: " + (if .report.identical then "identical" else "DIFFERENT" end)
              + " (" + ([.report.tables[] | "\(.table) \(.live_rows) rows"] | join(", ")) + ")" else "" end)
    end'
done
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
