#!/usr/bin/env bash
# Regenerates every generated file from its source of truth: Go types from avro/*/*.avsc.
# The output is byte-for-byte reproducible; CI runs this and fails on any diff.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
for dir in avro/*/; do
  svc=$(basename "$dir")
  mapfile -t schemas < <(LC_ALL=C ls "$dir"*.avsc)
  [[ ${#schemas[@]} -gt 0 ]] || continue
  args=()
  for s in "${schemas[@]}"; do args+=("$ROOT/$s"); done
  (cd deploy/tools && GOWORK=off go run github.com/hamba/avro/v2/cmd/avrogen \
    -pkg "$svc" -encoders -fullschema -tags json:snake \
    -pkgdoc "Package $svc holds the Go types of the events the $svc service publishes, generated from avro/$svc/*.avsc." \
    -o "$ROOT/${dir}events.gen.go" "${args[@]}")
done
gofmt -l avro | (! grep .) || { echo "gen: generated code is not gofmt-clean" >&2; exit 1; }
