#!/usr/bin/env bash
# Prints the version a service is built with: its own services/<name>/VERSION (a semantic
# version its team bumps when it releases) plus the commit, and ".dirty" for uncommitted
# changes: 1.1.0+3f2c1ab, 1.1.0+3f2c1ab.dirty. Outside a git checkout: 1.1.0+unknown.
# ORDERFLOW_VERSION, when set, is printed instead (image builds have no .git).
set -euo pipefail
if [[ -n ${ORDERFLOW_VERSION:-} ]]; then echo "$ORDERFLOW_VERSION"; exit 0; fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
svc=${1:?usage: scripts/version.sh SERVICE}
file=$ROOT/services/$svc/VERSION
[[ -f $file ]] || { echo "no $file: unknown service $svc" >&2; exit 2; }
base=$(tr -d '[:space:]' <"$file")
commit=$(git -C "$ROOT" rev-parse --short=7 HEAD 2>/dev/null || echo unknown)
dirty=""
if [[ $commit != unknown ]] && ! git -C "$ROOT" diff --quiet HEAD -- "services/$svc" platform avro proto go.work 2>/dev/null; then
  dirty=.dirty
fi
echo "$base+$commit$dirty"
