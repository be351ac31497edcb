# fleetcal — the two commands of the README are `make run` and `make test`.
# Each installs what it needs (scripts/setup.sh) before doing its job.

GO ?= go
EXAMPLE ?= examples/fashion-mnist/config.json
OUT ?= out/fashion-mnist

.PHONY: setup run test vet fuzz bench build

setup:
	./scripts/setup.sh

build: setup
	$(GO) build -o bin/ ./cmd/...

# The main job: quantize the shipped example (embedded NATS, local workers).
run: build
	./bin/coordinator quantize -c $(EXAMPLE) -o $(OUT)

vet: setup
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

# The tests: everything CI runs.
test: vet
	./scripts/setup.sh --test
	$(GO) test -count=1 -timeout 30m ./...

fuzz: setup
	$(GO) test ./model -run XXX -fuzz FuzzLoad -fuzztime 60s
	$(GO) test ./model -run XXX -fuzz FuzzInferTypes -fuzztime 60s
	$(GO) test ./data -run XXX -fuzz FuzzReadNpy -fuzztime 60s
	$(GO) test ./reduce -run XXX -fuzz FuzzDecode -fuzztime 60s
	$(GO) test ./cluster -run XXX -fuzz FuzzDecodeOutputs -fuzztime 60s
	$(GO) test ./sharding -run XXX -fuzz FuzzParseKey -fuzztime 60s

bench: setup
	$(GO) test ./engine -run XXX -bench . -benchtime 3x -count 5
