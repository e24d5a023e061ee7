# ringflow: one Makefile for the library, the tools, the tests, the benchmarks and fuzzers.
#
#   make                 build libringflow.{a,so}, ringflow.pc, examples (MODE=release)
#   make test            install missing packages, build, run every test: unit and
#                        integration tests, the same under ASan+UBSan, the concurrency
#                        tests under TSan, the embedding example, fuzz corpus replays
#   make run             install, build and start ringflowd on 127.0.0.1:8080 (README)
#   make bench           build and run the benchmarks (bench/README.md)
#   make install PREFIX=/usr/local [DESTDIR=]
#   make format          clang-format every C/C++ source in place
#   MODE=release|debug|asan|tsan   builds into build/$(MODE)/ so modes never mix
#   V=1                  print full command lines
#
# Every dependency is found with pkg-config; scripts/pkgconfig holds .pc files for the two
# Debian packages that ship none (mimalloc, wslay). scripts/deps.sh installs packages; the
# build/.deps stamp makes that one dpkg query per package per clean checkout.

MODE ?= release
BUILD := build/$(MODE)
PREFIX ?= /usr/local
DESTDIR ?=

ifeq ($(V),1)
Q :=
else
Q := @
endif

export PKG_CONFIG_PATH := $(CURDIR)/scripts/pkgconfig$(if $(PKG_CONFIG_PATH),:$(PKG_CONFIG_PATH))
# Make 4.3's $(shell) does not see exported variables: name the path explicitly.
PKGCONF := PKG_CONFIG_PATH=$(PKG_CONFIG_PATH) pkg-config

CC ?= cc
CXX ?= g++
ifeq ($(CC),cc)
CC := gcc
endif

# Libraries the engine links. mimalloc and xxhash are private; jansson and liburing
# appear in the public header.
LIB_PKGS := liburing jansson ck mimalloc libxxhash libwslay libcrypto hiredis rdkafka
LIB_PKGS_PUBLIC := liburing jansson
PKG_CFLAGS = $(shell $(PKGCONF) --cflags $(LIB_PKGS))
PKG_LIBS = $(shell $(PKGCONF) --libs $(LIB_PKGS)) -lpthread

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
BASE_CFLAGS := -std=c17 -D_GNU_SOURCE -fPIC -g $(WARN) -I. -Iinclude -MMD -MP
BASE_CXXFLAGS := -std=c++17 -D_GNU_SOURCE -g -Wall -Wextra -I. -Iinclude -MMD -MP

ifeq ($(MODE),release)
OPT := -O2
else ifeq ($(MODE),debug)
OPT := -O0 -DRF_DEBUG
else ifeq ($(MODE),asan)
OPT := -O1 -DRF_DEBUG -DRF_SYSTEM_ALLOC -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
SAN_LDFLAGS := -fsanitize=address,undefined
else ifeq ($(MODE),tsan)
OPT := -O1 -DRF_DEBUG -DRF_SYSTEM_ALLOC -fno-omit-frame-pointer -fsanitize=thread -Wno-tsan
SAN_LDFLAGS := -fsanitize=thread
else ifeq ($(MODE),fuzz)
# libFuzzer: everything built by clang with coverage; only the targets link -fsanitize=fuzzer.
CC := clang
CXX := clang++
OPT := -O1 -DRF_DEBUG -DRF_SYSTEM_ALLOC -fno-omit-frame-pointer \
       -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
SAN_LDFLAGS := -fsanitize=address,undefined
else
$(error MODE must be release, debug, asan, tsan or fuzz)
endif

CFLAGS_ALL = $(BASE_CFLAGS) $(OPT) $(PKG_CFLAGS) $(CFLAGS)
LDFLAGS_ALL = $(SAN_LDFLAGS) $(LDFLAGS)

# --- sources ----------------------------------------------------------------------------

LIB_SRCS := $(wildcard engine/*.c sched/*.c net/*.c storage/*.c)
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIB_A := $(BUILD)/libringflow.a
LIB_SO := $(BUILD)/libringflow.so
PC := $(BUILD)/ringflow.pc

TEST_SRCS := $(wildcard tests/*/test_*.c)
TEST_BINS := $(TEST_SRCS:%.c=$(BUILD)/%)
# A test whose source says RF_TEST_CONCURRENT also runs under TSan.
TSAN_TEST_SRCS := $(shell grep -l RF_TEST_CONCURRENT $(TEST_SRCS) /dev/null 2>/dev/null)
TEST_HELPER_SRCS := $(wildcard tests/support/*.c)
TEST_HELPER_OBJS := $(TEST_HELPER_SRCS:%.c=$(BUILD)/%.o)

# Fuzz targets: fuzz/<name>.c holds one LLVMFuzzerTestOneInput, fuzz/corpus/<name>/ its
# seeds. Every mode builds a replay binary (the target plus fuzz/driver/replay.c) that runs
# the corpus once, as a test; MODE=fuzz builds the libFuzzer binaries `make fuzz` runs.
FUZZ_SRCS := $(wildcard fuzz/*.c)
FUZZ_NAMES := $(FUZZ_SRCS:fuzz/%.c=%)
FUZZ_REPLAYS := $(FUZZ_NAMES:%=$(BUILD)/fuzz/replay-%)
FUZZ_TIME ?= 60

STAGE := $(BUILD)/stage
EMBED := $(BUILD)/examples/embed

DEPS_STAMP := build/.deps

.PHONY: bench-triggers bench-storage all lib test test-unit test-asan test-tsan test-embed run bench bench-build bench-compare crash-test \
        install format clean deps check-format fuzz fuzz-build tools
.DELETE_ON_ERROR:

all: lib tools $(EMBED) $(BUILD)/ringflow-load

lib: $(LIB_A) $(LIB_SO) $(PC)

deps: $(DEPS_STAMP)
$(DEPS_STAMP): scripts/deps.sh
	$(Q)scripts/deps.sh
	$(Q)mkdir -p $(@D) && touch $@

# Every object waits for the packages (order-only: a newer stamp rebuilds nothing).
$(BUILD)/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/%.o: %.cc | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CXX     $<")
	$(Q)$(CXX) $(BASE_CXXFLAGS) $(OPT) $(PKG_CFLAGS) $(BENCH_CFLAGS) $(CXXFLAGS) -c $< -o $@

$(LIB_A): $(LIB_OBJS)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(LIB_SO): $(LIB_OBJS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -shared -Wl,-soname,libringflow.so.0 -o $@ $^ $(LDFLAGS_ALL) $(PKG_LIBS)

$(PC): Makefile
	@mkdir -p $(@D)
	$(Q)printf '%s\n' \
	  'prefix=$(PREFIX)' 'includedir=$${prefix}/include' 'libdir=$${prefix}/lib' '' \
	  'Name: ringflow' 'Description: high-throughput graph execution engine on io_uring' \
	  'Version: 0.1.0' 'Requires: $(LIB_PKGS_PUBLIC)' 'Requires.private: ck libxxhash libcrypto hiredis' \
	  'Cflags: -I$${includedir}' 'Libs: -L$${libdir} -lringflow' \
	  'Libs.private: -lmimalloc -lwslay -lrdkafka -lpthread' > $@

# --- command-line tools ------------------------------------------------------------------

# engine/cmd/<tool>.c holds a main(); each links the static library.
TOOL_SRCS := $(wildcard engine/cmd/*.c)
TOOLS := $(TOOL_SRCS:engine/cmd/%.c=$(BUILD)/%)

$(BUILD)/%: engine/cmd/%.c $(LIB_A) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS_ALL) $< $(LIB_A) -o $@ $(LDFLAGS_ALL) $(PKG_LIBS)

tools: $(TOOLS)

# --- install, and a staged install the example is built against -------------------------

install: lib
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 include/ringflow.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(LIB_A) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(LIB_SO) $(DESTDIR)$(PREFIX)/lib/libringflow.so.0
	ln -sf libringflow.so.0 $(DESTDIR)$(PREFIX)/lib/libringflow.so
	sed 's|^prefix=.*|prefix=$(PREFIX)|' $(PC) > $(DESTDIR)$(PREFIX)/lib/pkgconfig/ringflow.pc

# The example is compiled exactly as a user would: against an installed tree, through
# ringflow.pc, linking the static library.
$(STAGE)/.done: $(LIB_A) $(LIB_SO) $(PC) include/ringflow.h
	$(Q)$(MAKE) --no-print-directory install PREFIX=$(CURDIR)/$(STAGE) DESTDIR= >/dev/null
	$(Q)touch $@

$(EMBED): examples/embed.c $(STAGE)/.done
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $< (against $(STAGE)/lib/pkgconfig/ringflow.pc)")
	$(Q)PKG_CONFIG_PATH=$(CURDIR)/$(STAGE)/lib/pkgconfig:$(PKG_CONFIG_PATH) && \
	  $(CC) -std=c17 -D_GNU_SOURCE -Wall -Wextra $(OPT) $(SAN_LDFLAGS) \
	  $$(pkg-config --cflags ringflow) $< -o $@ \
	  $$(pkg-config --static --libs ringflow | sed 's/-lringflow/-l:libringflow.a/')

# --- tests -------------------------------------------------------------------------------

$(BUILD)/tests/%: tests/%.c $(LIB_A) $(TEST_HELPER_OBJS) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS_ALL) -DRF_BUILD_DIR='"$(BUILD)"' $< $(TEST_HELPER_OBJS) $(LIB_A) -o $@ $(LDFLAGS_ALL) \
	  $(PKG_LIBS) $$(pkg-config --libs cmocka)

# Corpus replays: the target's source, the replay driver and the library.
$(BUILD)/fuzz/replay-%: fuzz/%.c fuzz/driver/replay.c $(LIB_A) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $< (corpus replay)")
	$(Q)$(CC) $(CFLAGS_ALL) -DRF_FUZZ_CORPUS='"fuzz/corpus/$*"' $< fuzz/driver/replay.c \
	  $(LIB_A) -o $@ $(LDFLAGS_ALL) $(PKG_LIBS)

# The mock Kafka cluster the Kafka tests start (tests/tools/kmock.c): a separate process,
# built without sanitizers in every mode (librdkafka's threads under TSan crash it; what
# the tests check is the daemon, which is built in the mode).
KMOCK := $(BUILD)/tests/tools/kmock
$(KMOCK): tests/tools/kmock.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) -std=c17 -D_GNU_SOURCE -O2 -Wall -Wextra $< -o $@ $$(pkg-config --libs rdkafka)

# Unit and integration tests, and the fuzz corpus replays, in the current MODE.
test-unit: $(TEST_BINS) $(EMBED) $(FUZZ_REPLAYS) tools $(KMOCK)
	$(Q)scripts/run-tests.sh "$(MODE)" $(TEST_BINS) $(EMBED) $(FUZZ_REPLAYS)

test-asan:
	$(Q)$(MAKE) --no-print-directory MODE=asan test-unit

test-tsan:
	$(Q)$(MAKE) --no-print-directory MODE=tsan tools build/tsan/tests/tools/kmock \
	  $(TSAN_TEST_SRCS:%.c=build/tsan/%)
	$(Q)scripts/run-tests.sh tsan $(TSAN_TEST_SRCS:%.c=build/tsan/%)

# Every mode runs even when an earlier one failed; the closing line adds them up.
test: $(DEPS_STAMP)
	$(Q)mkdir -p build && rm -f build/test-counts
	$(Q)export RF_TEST_COUNTS=$(CURDIR)/build/test-counts; st=0; \
	  $(MAKE) --no-print-directory MODE=release test-unit || st=1; \
	  $(MAKE) --no-print-directory test-asan || st=1; \
	  $(MAKE) --no-print-directory test-tsan || st=1; \
	  awk '{p+=$$1; f+=$$2; s+=$$3} END {printf "all modes: %d passed, %d failed, %d skipped\n", p, f, s}' \
	    build/test-counts; \
	  exit $$st

# The long crash test: SIGKILL at random moments under concurrent submissions, restart,
# check every acknowledged execution; RF_CRASH_ITERATIONS rounds (make test runs 4).
RF_CRASH_ITERATIONS ?= 100
crash-test: $(BUILD)/tests/daemon/test_durable tools
	$(Q)RF_CRASH_ITERATIONS=$(RF_CRASH_ITERATIONS) RF_TEST_FILTER=test_crash_loop \
	  RF_TEST_TIMEOUT_S=3600 scripts/run-tests.sh $(MODE) $(BUILD)/tests/daemon/test_durable

# The daemon on 127.0.0.1:8080 with embedded defaults (no Redis, no Kafka) and the example
# graphs registered; Ctrl-C stops it gracefully. RUN_FLAGS adds flags (ringflowd --help).
run: tools
	$(BUILD)/ringflowd --listen 127.0.0.1:8080 --graphs-dir examples \
	  --data-dir $(CURDIR)/build/run-data $(RUN_FLAGS)

# --- benchmarks ----------------------------------------------------------------------------

BENCH_CFLAGS = $(shell $(PKGCONF) --cflags benchmark tbb)
BENCH_DAG := $(BUILD)/bench/dag
BENCH_MICRO := $(BUILD)/bench/micro
BENCH_DAG_OBJS := $(BUILD)/bench/dag.o $(BUILD)/bench/shapes.o $(BUILD)/bench/dag_tbb.o
BENCH_MICRO_OBJS := $(BUILD)/bench/micro.o $(BUILD)/bench/micro_ops.o
BENCH_LANG := $(BUILD)/bench/lang
BENCH_RCACHE := $(BUILD)/bench/rcache

$(BENCH_RCACHE): $(BUILD)/bench/rcache.o $(BUILD)/bench/load/hist.o $(LIB_A)
	$(Q)$(CC) -o $@ $^ $(LDFLAGS_ALL) $(PKG_LIBS) -lm

$(BENCH_LANG): $(BUILD)/bench/lang.o $(LIB_A)
	$(Q)$(CC) -o $@ $^ $(LDFLAGS_ALL) $(PKG_LIBS)

$(BENCH_DAG): $(BENCH_DAG_OBJS) $(LIB_A)
	$(Q)$(CXX) -o $@ $^ $(LDFLAGS_ALL) $(PKG_LIBS) $$(pkg-config --libs tbb)

$(BENCH_MICRO): $(BENCH_MICRO_OBJS) $(LIB_A)
	$(Q)$(CXX) -o $@ $^ $(LDFLAGS_ALL) $(PKG_LIBS) $$(pkg-config --libs benchmark)

# ringflow-load: the io_uring HTTP/WebSocket load generator (a client: no libringflow).
LOAD_SRCS := $(wildcard bench/load/*.c)
LOAD := $(BUILD)/ringflow-load
$(LOAD): $(LOAD_SRCS:%.c=$(BUILD)/%.o)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -o $@ $^ $(LDFLAGS_ALL) $$($(PKGCONF) --libs liburing jansson libcrypto) -lm

bench-build: $(BENCH_DAG) $(BENCH_MICRO) $(BENCH_LANG) $(BENCH_RCACHE) $(LOAD)

bench: bench-build
	$(BENCH_MICRO) --benchmark_min_time=0.2
	$(BENCH_DAG)
	$(BENCH_LANG)

# ringflowd and ringflow-load against nginx and wrk (bench/compare.sh; README "Benchmarks").
bench-compare: bench-build tools
	$(Q)scripts/deps.sh --bench
	bench/compare.sh

# Kafka-triggered against HTTP-triggered executions/s (bench/triggers.sh).
bench-triggers: bench-build tools $(KMOCK)
	bench/triggers.sh

# Durability sync vs none, recovery of 1,000,000 executions, the Redis cache-hit path vs
# redis-benchmark (bench/storage.sh; README "Benchmarks").
bench-storage: bench-build tools
	$(Q)scripts/deps.sh --bench
	bench/storage.sh

# --- fuzzing (MODE=fuzz, clang's libFuzzer) -------------------------------------------------

ifeq ($(MODE),fuzz)
$(BUILD)/fuzz/%: fuzz/%.c $(LIB_A)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $< (libFuzzer)")
	$(Q)$(CC) $(CFLAGS_ALL) $< $(LIB_A) -o $@ -fsanitize=fuzzer,address,undefined $(PKG_LIBS)

fuzz-build: $(FUZZ_NAMES:%=$(BUILD)/fuzz/%)

# Each target runs FUZZ_TIME seconds; new inputs land in build/fuzz/new/<name>/ (copy the
# interesting ones into fuzz/corpus/<name>/ to keep them).
fuzz: fuzz-build
	$(Q)for n in $(FUZZ_NAMES); do \
	  mkdir -p $(BUILD)/new/$$n; \
	  echo "== fuzz $$n for $(FUZZ_TIME) s"; \
	  $(BUILD)/fuzz/$$n -max_total_time=$(FUZZ_TIME) -print_final_stats=1 \
	    $$( [ -f fuzz/$$n.dict ] && echo -dict=fuzz/$$n.dict ) \
	    $(BUILD)/new/$$n fuzz/corpus/$$n || exit 1; \
	done
else
fuzz fuzz-build:
	$(Q)$(MAKE) --no-print-directory MODE=fuzz $@
endif

# --- housekeeping --------------------------------------------------------------------------

FORMAT_SRCS = $(wildcard include/*.h engine/*.[ch] sched/*.[ch] net/*.[ch] storage/*.[ch] \
                tests/*/*.[ch] bench/*.[ch] bench/*.cc fuzz/*.c examples/*.c)
format:
	clang-format -i $(FORMAT_SRCS)

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
