# varmenne — the two commands a newcomer needs are `make run` and `make test`.
GO       ?= go
DATA     ?= varmenne-data
BIN      := bin/varmenne
BENCHBIN := bin/varmenne-bench

.PHONY: all build run test test-deps vet fmt-check bench bench-quick bench-go clean deb

all: build

## build: the CA (bin/varmenne) and, beside it, the ACME load generator (bin/varmenne-bench)
build:
	$(GO) build -o $(BIN) ./cmd/varmenne
	$(GO) build -o $(BENCHBIN) ./cmd/varmenne-bench

## deb: the Debian package bin/varmenne_VERSION_ARCH.deb (binary, systemd unit, /etc/varmenne;
## docs/install.md), built through nfpm's Go API (packaging/deb)
deb:
	$(GO) build -o $(BIN) ./cmd/varmenne
	$(GO) run ./packaging/cmd/varmenne-deb -binary $(BIN) -out bin

## run: start the server on the embedded default (SQLite, development PKI) in ./$(DATA)
run: build
	./$(BIN) serve --data $(DATA)

## test: every test, with the race detector, after installing what the tests need
## (the end-to-end packages first: they are the longest, so they start while the rest run beside them),
## and beside them, at the lowest CPU priority, every fuzz target briefly (scripts/fuzz-brief: the
## end-to-end tests leave a third of the two cores idle while they wait); both must pass
test: test-deps vet fmt-check
	@log=$$(mktemp); \
	echo "GO=$(GO) FUZZTIME=$(FUZZTIME) nice -n 19 ./scripts/fuzz-brief (beside the tests; its output follows them)"; \
	GO=$(GO) FUZZTIME=$(FUZZTIME) nice -n 19 ./scripts/fuzz-brief >"$$log" 2>&1 & fuzz=$$!; \
	echo "$(GO) test -race -count=1 -timeout 30m ./test/e2e/ ./test/clients/ ./..."; \
	$(GO) test -race -count=1 -timeout 30m ./test/e2e/ ./test/clients/ ./...; tests=$$?; \
	wait $$fuzz; fuzzed=$$?; cat "$$log"; rm -f "$$log"; \
	test $$tests -eq 0 && test $$fuzzed -eq 0

## fuzz: every fuzz target for FUZZTIME each (default 3s; make fuzz FUZZTIME=5m for a longer hunt)
.PHONY: fuzz
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./scripts/fuzz-brief

## test-deps: install the real ACME clients the end-to-end tests drive (Debian packages)
test-deps:
	./scripts/install-test-deps

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on: $$out"; exit 1; fi

## bench: raw signing, varmenne end to end (SQLite, PostgreSQL; file and SoftHSM keys; C = 1, 8, 32),
## Pebble and step-ca, CRLs; prints one table and writes bench/results/<date>.md (under 15 minutes)
bench: test-deps
	$(GO) run ./bench/suite

## bench-quick: a one-minute subset of bench
bench-quick: test-deps
	$(GO) run ./bench/suite -quick

## bench-go: the Go benchmarks of the packages
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin
