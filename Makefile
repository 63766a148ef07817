# sluice — `make demo` and `make test` are all a newcomer needs (Go installed).
GO        ?= go
BIN       := bin/sluice
# Fuzzing budgets are counts, not durations: Go's fuzzing coordinator can
# fail a target with a bare "context deadline exceeded" (no input found)
# when a -fuzztime deadline expires while a starved worker is mid-input.
FUZZTIME  ?= 20000x
# Fuzz targets run briefly by `make test`: package:target.
FUZZ      := ./source/avro:FuzzAvroDecode ./source/avro:FuzzSkipPlan ./source/avro:FuzzOCF ./sql:FuzzSQL \
             ./checkpoint:FuzzCheckpointDecode ./source/jsonrow:FuzzJSONRow \
             ./engine/config:FuzzJobFile ./sink/object:FuzzDecodeState \
             ./engine/avro:FuzzVarint ./engine/avro:FuzzContainer ./sql:FuzzShuffleMerge \
             ./checkpoint:FuzzStateManifestDecode ./source/kafka:FuzzDecodeRates \
             ./sql:FuzzShuffleMessage

.PHONY: all build test unit fuzz bench demo lint clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/sluice

## demo: the default job on its embedded Kafka with generated traffic (Ctrl-C drains)
demo: build
	./$(BIN) dev

## test: lint, every test with -race, then each fuzz target briefly
test: lint unit fuzz

# The Kafka source's latency and fairness tests measure time on a 2-core
# machine, so they run alone, after the other packages. Their latency bounds
# run without the race detector, which multiplies the CPU cost of every
# record and with it every latency they measure (quiet-partition p99: 8 ms
# without it, 1.6 s with it); the rest of the package runs with it. The
# engine's synctest tests prove the bundle and backpressure rules
# deterministically, so these run as smoke tests (-short: one short drain,
# a 5 s stall); without -short they also compare throughputs.
TIMED     := ./source/kafka
LATENCY   := TestQuietPartitionLatency|TestBackpressureIsolation

unit:
	$(GO) test -race -timeout 20m $$($(GO) list ./... | grep -v -x -F "$$($(GO) list $(TIMED))")
	$(GO) test -race -timeout 20m -skip '^($(LATENCY))$$' $(TIMED)
	$(GO) test -short -timeout 20m -run '^($(LATENCY))$$' $(TIMED)

fuzz:
	@set -e; for f in $(FUZZ); do \
	  pkg=$${f%%:*}; target=$${f##*:}; \
	  if grep -qs "func $$target(" $$pkg/*_test.go; then \
	    echo "fuzz $$pkg $$target ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 2000x $$pkg; \
	  else echo "fuzz target $$target missing in $$pkg" >&2; exit 1; fi; \
	done

## bench: the benchmark suite; writes bench/RESULTS.md (BEFORE=rev adds that revision's end-to-end figures, measured alternately in the same sitting)
bench:
	$(GO) run ./bench/cmd/results -out bench/RESULTS.md $(if $(BEFORE),-before $(BEFORE))

lint:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

clean:
	rm -rf bin .sluice out
