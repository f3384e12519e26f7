# The two commands of the README, and a few more for developers.
#   make run    install what is missing, build, create ./iotprov-data once, start
#   make test   install what is missing, build, run every test (the pg label
#               starts private PostgreSQL clusters), then again under
#               ASan+UBSan, then every fuzz target for a bounded time
.POSIX:
JOBS      ?= 2
DATA_DIR  ?= ./iotprov-data
FUZZ_SECONDS ?= 20
BUILD     := build
ASAN      := build-asan
FUZZB     := build-fuzz

.PHONY: all deps build run test test-load test-fast test-pg test-asan fuzz bench bench-store clean

all: build

deps:
	@scripts/install-deps

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	@if [ ! -d "$(DATA_DIR)" ]; then $(BUILD)/iotprov init --data-dir "$(DATA_DIR)"; fi
	@exec $(BUILD)/iotprov up --data-dir "$(DATA_DIR)"

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -LE load
	@$(MAKE) --no-print-directory test-load
	@$(MAKE) --no-print-directory test-asan
	@$(MAKE) --no-print-directory fuzz

# The load tests (label load: 10,000 simulated devices through the broker,
# a few minutes), on the optimized build only.
test-load: build
	@cd $(BUILD) && ctest --output-on-failure -L load

test-fast: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -L unit

# Only the PostgreSQL variants (store conformance and registry on a private
# cluster each; see tests/pg/pg_cluster.py).
test-pg: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -L pg

test-asan: deps
	@cmake -S . -B $(ASAN) -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang \
		-DIOTP_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN) -j $(JOBS)
	@cd $(ASAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --output-on-failure -j $(JOBS) -LE load

fuzz: deps
	@cmake -S . -B $(FUZZB) -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang \
		-DIOTP_FUZZ=ON >/dev/null
	@cmake --build $(FUZZB) -j $(JOBS) --target fuzz_all
	@scripts/run-fuzz $(FUZZB) $(FUZZ_SECONDS)

bench: build
	@scripts/bench-table $(BUILD)

# The store benchmark on SQLite and on a private durable PostgreSQL cluster.
bench-store: build
	@tests/pg/pg_cluster.py run --durable -- $(BUILD)/bench_store

clean:
	rm -rf $(BUILD) $(ASAN) $(FUZZB)
