#!/usr/bin/env bash
# Builds service binaries the way their images are built: static (CGO off), -trimpath,
# stripped, with the service's own version stamped in (scripts/version.sh), from the
# service's module and the platform, avro and proto modules it replaces, with the
# workspace off. Usage: scripts/build.sh OUTDIR SERVICE...
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:?usage: scripts/build.sh OUTDIR SERVICE...}
shift
mkdir -p "$out"
out=$(cd "$out" && pwd)
for svc in "$@"; do
  version=$("$ROOT/scripts/version.sh" "$svc")
  (cd "$ROOT/services/$svc" && CGO_ENABLED=0 GOWORK=off go build -trimpath \
     -ldflags "-s -w -X main.version=$version" -o "$out/$svc" "./cmd/$svc")
done
