#!/usr/bin/env bash
# `make test`: starts a private test stack (Postgres, Kafka, schema registry, Mailpit) on
# its own ports (base 16000, so a running `make up` on 15000 is untouched), runs every
# module's tests against it with the race detector in random order, and stops the stack
# whatever happened. Exits non-zero on any failure.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export ORDERFLOW_STACK_DIR=${ORDERFLOW_TEST_STACK_DIR:-$ROOT/.local/test}
export ORDERFLOW_PORT_BASE=${ORDERFLOW_TEST_PORT_BASE:-16000}
STACK=deploy/local/stack.sh

cleanup() {
  local rc=$?
  "$STACK" down || true
  if [[ $rc -ne 0 ]]; then
    echo "--- last lines of the test stack's logs ($ORDERFLOW_STACK_DIR/logs)" >&2
    tail -n 15 "$ORDERFLOW_STACK_DIR"/logs/*.log >&2 2>/dev/null || true
  fi
  exit $rc
}
trap cleanup EXIT

# A fresh stack every run: no state leaks from one run into the next.
"$STACK" down >/dev/null 2>&1 || true
rm -rf "$ORDERFLOW_STACK_DIR"
"$STACK" up --infra
eval "$("$STACK" env)"

status=0
for mod in $(bash scripts/modules.sh); do
  echo "=== go test $mod"
  (cd "$mod" && go test -race -shuffle=on -count=1 -timeout 15m ./...) || status=1
done
exit $status
