# orderflow: every entry point. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

STACK   := deploy/local/stack.sh
MODULES := $(shell bash scripts/modules.sh)

.PHONY: schemas-check schemas-release help up down status logs env demo test bench bench-platform bench-replay replay image gen gen-check lint build fmt

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

up: ## start Postgres, Kafka, the registry, Mailpit and the five services (idempotent)
	@$(STACK) up

down: ## stop everything `make up` started
	@$(STACK) down

status: ## one line per component
	@$(STACK) status

logs: ## the last lines of every log (make logs F=1 follows them)
	@$(STACK) logs $(if $(F),-f,)

env: ## shell exports with every address: eval "$$(make -s env)"
	@$(STACK) env

demo: up ## start the suite and show it working: a mix of orders, their outcome and timings
	@$(STACK) status
	@eval "$$($(STACK) env)" && cd tests/e2e && go run ./cmd/demo

test: ## start a private test stack, run every module's tests (-race -shuffle=on), stop it
	@bash scripts/test.sh

replay: ## rebuild read models from the topics while the suite runs: make replay SERVICE=shop [MODEL=order-view] [ARGS=--verify]
	@test -n "$(SERVICE)" || { echo "usage: make replay SERVICE=shop|inventory|billing|crm [MODEL=name] [ARGS='--verify | --from TIME | --dead-letter | --json']" >&2; exit 2; }
	@$(STACK) run $(SERVICE) replay $(if $(MODEL),--model $(MODEL),) $(ARGS)

bench-replay: ## replay throughput: 1M synthetic events into the shop order view on a private stack
	@BENCH_ARGS='$(BENCH_ARGS)' bash scripts/bench-replay.sh

bench-platform: ## outbox relay and consumer throughput, commit-to-consume latency
	@BENCH_LATENCY_RUNS='$(BENCH_LATENCY_RUNS)' bash scripts/bench-platform.sh

bench: ## the whole suite under open-loop load: orders/s, latency percentiles, per-hop latency, lag, CPU and memory
	@BENCH_ARGS='$(BENCH_ARGS)' bash scripts/bench.sh

build: ## build the five service binaries into bin/ exactly as their images do (static, each with its own version)
	@bash scripts/build.sh bin shop inventory billing logistics crm
	@for s in shop inventory billing logistics crm; do bin/$$s version; done

image: ## build one service's container image: make image SERVICE=shop (needs Docker)
	@test -n "$(SERVICE)" -a -f services/$(SERVICE)/Dockerfile || { echo "usage: make image SERVICE=shop|inventory|billing|logistics|crm" >&2; exit 2; }
	@command -v docker >/dev/null || { echo "make image needs Docker; 'make build' builds the same binaries without it" >&2; exit 1; }
	docker build -f services/$(SERVICE)/Dockerfile --build-arg VERSION=$$(bash scripts/version.sh $(SERVICE)) \
	  -t orderflow/$(SERVICE):$$(bash scripts/version.sh $(SERVICE) | tr + -) -t orderflow/$(SERVICE):dev .

schemas-check: ## fail when an .avsc change breaks BACKWARD_TRANSITIVE compatibility with a released version (avro/released.json)
	@cd avro && go run ./cmd/schemas check .

schemas-release: ## record the current version of every changed .avsc in avro/released.json (after schemas-check)
	@cd avro && go run ./cmd/schemas release .

gen: ## regenerate Go types from avro/*.avsc and the gRPC, REST gateway and OpenAPI code from proto/
	@bash scripts/gen.sh

gen-check: gen ## fail when generated code differs from what is committed
	@git diff --exit-code -- avro proto || { echo "generated code is stale: run make gen and commit" >&2; exit 1; }
	@test -z "$$(git status --porcelain -- avro proto)" || { git status --porcelain -- avro proto; echo "make gen created files that are not committed" >&2; exit 1; }

fmt: ## gofmt every module
	@gofmt -w $(MODULES)

lint: ## gofmt, go vet and shellcheck-free basics
	@out=$$(gofmt -l $(MODULES)); if [[ -n $$out ]]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@for m in $(MODULES); do (cd $$m && go vet ./...) || exit 1; done
