# logitscope - build the library, the CLI and the tests.
#   make              library (build/liblogitscope.a) and CLI (build/logitscope)
#   make test         C unit tests, then the Python tests (oracle, CLI)
#   make test-sanitize  the same under AddressSanitizer + UBSan (build-san/)
#   make bench        benchmarks against PyTorch (bench/run)
CC      ?= gcc
BUILD   ?= build
PYTHON  ?= python3
OPT     ?= -O2
CFLAGS_BASE = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
              -fno-strict-aliasing -pthread -Iinclude -Isrc $(OPT) -g
ifeq ($(SANITIZE),1)
  CFLAGS_BASE += -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
  LDFLAGS += -fsanitize=address,undefined
endif
CFLAGS += $(CFLAGS_BASE)
AVX512_FLAGS = -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma -mf16c
PKG_CONFIG ?= pkg-config
PKGS    = libcjson libpcre2-8 libcurl libcrypto
LIBS    = $(shell $(PKG_CONFIG) --libs $(PKGS)) -lm -pthread
PLPLOT_CFLAGS = $(shell $(PKG_CONFIG) --cflags plplot)
PLPLOT_LIBS   = $(shell $(PKG_CONFIG) --libs plplot)

# The SIMD levels are built only for their architecture (dispatch.c names
# them under the same conditions), so `make` works unchanged on aarch64.
TARGET_ARCH_NAME := $(shell $(CC) -dumpmachine)
X86_SRC   = src/kernels/avx2.c src/kernels/avx512.c
ARM_SRC   = src/kernels/neon.c
ifneq ($(filter x86_64% i686% i386%,$(TARGET_ARCH_NAME)),)
  ARCH_SRC = $(X86_SRC)
endif
ifneq ($(filter aarch64%,$(TARGET_ARCH_NAME)),)
  ARCH_SRC = $(ARM_SRC)
endif
LIB_SRC   = $(wildcard src/*.c) $(filter-out $(X86_SRC) $(ARM_SRC),$(wildcard src/kernels/*.c)) \
            $(ARCH_SRC)
TOOL_SRC  = $(wildcard tools/*.c)
UNIT_SRC  = $(wildcard tests/unit/test_*.c)
LIB_OBJ   = $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
TOOL_OBJ  = $(TOOL_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_BIN  = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
BENCH_SRC = $(wildcard bench/*.c)
BENCH_BIN = $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: all test unit-test py-test test-sanitize bench clean fixtures fuzz-build fuzz test-arm64
all: $(BUILD)/liblogitscope.a $(BUILD)/logitscope $(BENCH_BIN)

HDRS = $(wildcard include/*.h src/*.h src/kernels/*.h tools/*.h tests/unit/*.h)
$(BUILD)/obj/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# SIMD kernels: compiled for their instruction set, chosen at run time.
$(BUILD)/obj/src/kernels/avx2.o: CFLAGS += -mavx2 -mfma -mf16c
$(BUILD)/obj/src/kernels/avx512.o: CFLAGS += $(AVX512_FLAGS)

$(BUILD)/obj/tools/plot.o $(BUILD)/obj/tools/plot_draw.o: CFLAGS += $(PLPLOT_CFLAGS)

# the reference kernels are written to be auto-vectorized
$(BUILD)/obj/src/kernels/ref.o: CFLAGS += -O3

$(BUILD)/liblogitscope.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/logitscope: $(TOOL_OBJ) $(BUILD)/liblogitscope.a
	$(CC) $(LDFLAGS) -o $@ $(TOOL_OBJ) $(BUILD)/liblogitscope.a $(LIBS) $(PLPLOT_LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/liblogitscope.a $(wildcard tests/unit/*.h tools/*.c tools/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/liblogitscope.a $(LIBS)

# The cross-architecture check's logits dump (tests/cross/run).
$(BUILD)/tests/logits_dump: tests/cross/logits_dump.c $(BUILD)/liblogitscope.a include/logitscope.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/liblogitscope.a $(LIBS)

# aarch64: cross-compiled (gcc-aarch64-linux-gnu, the libraries' arm64
# packages) into build-arm64/ and run under qemu-user: the C unit tests and
# logits against this machine's (correctness only; tests/cross/run).
test-arm64: fixtures $(BUILD)/tests/logits_dump
	tests/cross/run

# Benchmark helpers in C (bench/*.c): the public API, except kernels_bench.c,
# which times the kernels alone through src/kernels/levels.h.
$(BUILD)/bench/%: bench/%.c $(BUILD)/liblogitscope.a include/logitscope.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/liblogitscope.a $(LIBS)

# Fuzz targets (clang + libFuzzer, ASan + UBSan, any UB report fatal), one per
# parser of outside input (tests/fuzz/fuzz_*.c; see tests/fuzz/README.md):
#   make fuzz-build        build them into build-fuzz/
#   make fuzz              run each for FUZZ_SECONDS (default 10) from its seeds
#   tests/fuzz/run 600 fuzz_safetensors    a longer run of one target
# Warnings do not stop these builds: clang warns on things gcc does not.
FUZZ_SRC = $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN = $(FUZZ_SRC:tests/fuzz/%.c=build-fuzz/%)
FUZZ_LIB_OBJ = $(LIB_SRC:%.c=build-fuzz/obj/%.o)
FUZZ_CFLAGS = $(CFLAGS_BASE) -Wno-error -O1 -fsanitize=address,undefined \
              -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_SECONDS ?= 10
fuzz-build: $(FUZZ_BIN)
build-fuzz/obj/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $(SIMD_FLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
build-fuzz/obj/src/kernels/avx2.o: SIMD_FLAGS = -mavx2 -mfma -mf16c
build-fuzz/obj/src/kernels/avx512.o: SIMD_FLAGS = $(AVX512_FLAGS)
build-fuzz/liblogitscope.a: $(FUZZ_LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^
# the CLI's parsers (--hook specs, .npy/.npz) for the targets that need them
FUZZ_TOOL_OBJ = $(filter-out build-fuzz/obj/tools/main.o,$(TOOL_SRC:%.c=build-fuzz/obj/%.o))
build-fuzz/obj/tools/%.o: tools/%.c $(wildcard include/*.h tools/*.h)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $(PLPLOT_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
build-fuzz/libtools.a: $(FUZZ_TOOL_OBJ)
	@rm -f $@
	ar rcs $@ $^
build-fuzz/%: tests/fuzz/%.c build-fuzz/libtools.a build-fuzz/liblogitscope.a $(wildcard tests/fuzz/*.h)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -Itools -o $@ $< build-fuzz/libtools.a \
	    build-fuzz/liblogitscope.a $(LIBS) $(PLPLOT_LIBS)
fuzz: fuzz-build
	tests/fuzz/run $(FUZZ_SECONDS)

# the generated checkpoints the tests use (regenerated only when the generator changes)
fixtures:
	$(PYTHON) tests/gen_fixtures.py --ensure --all --out $(BUILD)/fixtures

unit-test: $(UNIT_BIN) fixtures
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; LSC_FIXTURES=$(BUILD)/fixtures $$t; done

py-test: all
	LOGITSCOPE_BUILD=$(BUILD) $(PYTHON) -m pytest -q tests

test: all unit-test py-test

# Every sanitizer report (leaks included) exits with 86, which no test expects,
# and tests/conftest.py fails any CLI run whose stderr holds a report.
SAN_ENV = ASAN_OPTIONS=detect_leaks=1:exitcode=86:strict_string_checks=1:check_initialization_order=1 \
          LSAN_OPTIONS=exitcode=86:suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
          UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=86
test-sanitize:
	$(SAN_ENV) $(MAKE) BUILD=build-san SANITIZE=1 OPT=-O1 test

bench: all
	bench/run

clean:
	rm -rf build build-san build-fuzz build-arm64
