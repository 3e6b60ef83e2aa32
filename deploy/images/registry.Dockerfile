# The AxonOps Schema Registry, built from the version pinned in deploy/tools/go.mod
# (the same build `make up` runs without Docker).
FROM golang:1.26 AS build
WORKDIR /src
COPY deploy/tools/go.mod deploy/tools/go.sum ./
RUN CGO_ENABLED=0 GOWORK=off go build -trimpath -o /out/schema-registry github.com/axonops/axonops-schema-registry/cmd/schema-registry

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/schema-registry /schema-registry
USER nonroot
ENTRYPOINT ["/schema-registry"]
