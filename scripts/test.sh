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

# pdftotext checks that invoices and labels are real PDFs with extractable text.
if ! command -v pdftotext >/dev/null; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq poppler-utils >/dev/null
  fi
  command -v pdftotext >/dev/null || { echo "missing prerequisite: pdftotext (apt-get install poppler-utils)" >&2; exit 1; }
fi

# A fresh stack every run: no state leaks from one run into the next. The services run
# too, for the end-to-end tests; follow-ups fall due 3 s after dispatch.
"$STACK" wipe >/dev/null 2>&1 || true
export ORDERFLOW_FOLLOWUP_DELAY=3s
"$STACK" up
eval "$("$STACK" env)"

status=0
for mod in $(bash scripts/modules.sh); do
  echo "=== go test $mod"
  (cd "$mod" && go test -race -shuffle=on -count=1 -timeout 15m ./...) || status=1
done
exit $status
