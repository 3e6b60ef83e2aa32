#!/usr/bin/env bash
# Regenerates every generated file from its source of truth:
#   - Go types of the events from avro/*/*.avsc (hamba avrogen);
#   - Go messages, gRPC stubs, REST gateway handlers and OpenAPI documents from
#     proto/*/v1/*.proto (protoc from Debian's protobuf-compiler, plugins as go tools,
#     google/api/*.proto from the grpc-gateway v1 module's third_party tree).
# The output is byte-for-byte reproducible; CI runs this and fails on any diff.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

for dir in avro/*/; do
  svc=$(basename "$dir")
  mapfile -t schemas < <(LC_ALL=C find "$dir" -maxdepth 1 -name "*.avsc" | LC_ALL=C sort)
  [[ ${#schemas[@]} -gt 0 ]] || continue
  args=()
  for s in "${schemas[@]}"; do args+=("$ROOT/${s#./}"); done
  (cd deploy/tools && GOWORK=off go run github.com/hamba/avro/v2/cmd/avrogen \
    -pkg "$svc" -encoders -fullschema -tags json:snake \
    -pkgdoc "Package $svc holds the Go types of the events the $svc service publishes, generated from avro/$svc/*.avsc." \
    -o "$ROOT/${dir}events.gen.go" "${args[@]}")
done

[[ ${1:-} == avro ]] && exit 0 # only the Avro types (the rolling-upgrade test uses this)

if ! command -v protoc >/dev/null || [[ ! -f /usr/include/google/protobuf/timestamp.proto ]]; then
  echo "gen: installing protoc (Debian protobuf-compiler, libprotobuf-dev)" >&2
  if ! { apt-get install -y -q protobuf-compiler libprotobuf-dev >/dev/null 2>&1 ||
         { apt-get update -q >/dev/null && apt-get install -y -q protobuf-compiler libprotobuf-dev >/dev/null; }; }; then
    echo "gen: protoc is missing: apt-get install protobuf-compiler libprotobuf-dev" >&2
    exit 1
  fi
fi
BIN="$ROOT/.local/bin"
mkdir -p "$BIN"
plugins=(google.golang.org/protobuf/cmd/protoc-gen-go
  google.golang.org/grpc/cmd/protoc-gen-go-grpc
  github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway
  github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2)
(cd deploy/tools && GOWORK=off go build -o "$BIN/" "${plugins[@]}")
GOOGLEAPIS=$(cd deploy/tools && GOWORK=off go mod download -json github.com/grpc-ecosystem/grpc-gateway@v1.16.0 |
  sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')/third_party/googleapis
[[ -f "$GOOGLEAPIS/google/api/annotations.proto" ]] || { echo "gen: google/api protos not found under $GOOGLEAPIS" >&2; exit 1; }

cd proto
find . -name '*.pb.go' -o -name '*.pb.gw.go' -o -name '*.swagger.json' | xargs -r rm -f
mapfile -t protos < <(LC_ALL=C find . -name '*.proto' -path './*/v1/*' | sed 's|^\./||' | LC_ALL=C sort)
PATH="$BIN:$PATH" protoc -I . -I "$GOOGLEAPIS" -I /usr/include \
  --go_out=. --go_opt=paths=source_relative \
  --go-grpc_out=. --go-grpc_opt=paths=source_relative \
  --grpc-gateway_out=. --grpc-gateway_opt=paths=source_relative \
  --openapiv2_out=. --openapiv2_opt=json_names_for_fields=false \
  "${protos[@]}"
cd "$ROOT"

gofmt -l avro proto | (! grep .) || { echo "gen: generated code is not gofmt-clean" >&2; exit 1; }
