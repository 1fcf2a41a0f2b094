# logitscope - build the library, the CLI and the tests.
#   make              library (build/liblogitscope.a) and CLI (build/logitscope)
#   make test         C unit tests, then the Python tests (oracle, CLI)
#   make test-sanitize  the same under AddressSanitizer + UBSan (build-san/)
#   make bench        benchmarks against PyTorch (bench/run)
#   make python       the Python package's extension in place (python/logitscope/)
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
PKGS    = libcjson libpcre2-8 libcurl libcrypto
MHD_LIBS = $(shell pkg-config --libs libmicrohttpd)
LIBS    = $(shell pkg-config --libs $(PKGS)) -lm -pthread
PLPLOT_CFLAGS = $(shell pkg-config --cflags plplot)
PLPLOT_LIBS   = $(shell pkg-config --libs plplot)

# The SIMD levels are built only for their architecture (dispatch.c names
# them under the same conditions), so `make` works unchanged on aarch64.
TARGET_ARCH_NAME := $(shell $(CC) -dumpmachine)
X86_SRC   = src/kernels/avx2.c src/kernels/avx512.c
ifneq ($(filter x86_64% i686% i386%,$(TARGET_ARCH_NAME)),)
  ARCH_SRC = $(X86_SRC)
endif
LIB_SRC   = $(wildcard src/*.c) $(filter-out $(X86_SRC),$(wildcard src/kernels/*.c)) $(ARCH_SRC)
TOOL_SRC  = $(wildcard tools/*.c)
CLI_SRC   = $(wildcard tools/common/*.c)
SERVER_SRC = $(wildcard server/*.c)
UNIT_SRC  = $(wildcard tests/unit/test_*.c)
LIB_OBJ   = $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
TOOL_OBJ  = $(TOOL_SRC:%.c=$(BUILD)/obj/%.o) $(SERVER_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ   = $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_BIN  = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
BENCH_SRC = $(wildcard bench/*.c)
BENCH_BIN = $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: all test unit-test py-test test-sanitize bench clean fixtures fuzz-build fuzz python
all: $(BUILD)/liblogitscope.a $(BUILD)/logitscope $(BENCH_BIN)

HDRS = $(wildcard include/*.h src/*.h src/kernels/*.h tools/common/*.h server/*.h tests/unit/*.h)
$(BUILD)/obj/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# SIMD kernels: compiled for their instruction set, chosen at run time.
$(BUILD)/obj/src/kernels/avx2.o: CFLAGS += -mavx2 -mfma -mf16c
$(BUILD)/obj/src/kernels/avx512.o: CFLAGS += $(AVX512_FLAGS)

# the CLI: its commands (tools/cmd_*.c, and `serve` in server/) on its shared
# library (tools/common)
$(TOOL_OBJ) $(CLI_OBJ): CFLAGS += -Itools/common
$(BUILD)/obj/tools/cmd_plot.o $(BUILD)/obj/tools/common/plot_draw.o: CFLAGS += $(PLPLOT_CFLAGS)

# the reference kernels are written to be auto-vectorized
$(BUILD)/obj/src/kernels/ref.o: CFLAGS += -O3

$(BUILD)/liblogitscope.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libcli.a: $(CLI_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/logitscope: $(TOOL_OBJ) $(BUILD)/libcli.a $(BUILD)/liblogitscope.a
	$(CC) $(LDFLAGS) -o $@ $(TOOL_OBJ) $(BUILD)/libcli.a $(BUILD)/liblogitscope.a $(LIBS) $(MHD_LIBS) \
	    $(PLPLOT_LIBS)

# unit tests link the CLI's library too (the --hook parser, .npy/.npz, options)
$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libcli.a $(BUILD)/liblogitscope.a $(wildcard tests/unit/*.h tools/common/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itools/common $(LDFLAGS) -o $@ $< $(BUILD)/libcli.a $(BUILD)/liblogitscope.a \
	    $(LIBS) $(PLPLOT_LIBS)

# Benchmark helpers in C (bench/*.c), built only on the public header.
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
# the CLI's library (--hook specs, .npy/.npz, options) for the targets that need it
FUZZ_CLI_OBJ = $(CLI_SRC:%.c=build-fuzz/obj/%.o)
build-fuzz/obj/tools/common/%.o: tools/common/%.c $(wildcard include/*.h tools/common/*.h)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $(PLPLOT_CFLAGS) -Itools/common -fsanitize=fuzzer-no-link -c $< -o $@
build-fuzz/libcli.a: $(FUZZ_CLI_OBJ)
	@rm -f $@
	ar rcs $@ $^
build-fuzz/%: tests/fuzz/%.c build-fuzz/libcli.a build-fuzz/liblogitscope.a $(wildcard tests/fuzz/*.h)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -Itools/common -o $@ $< build-fuzz/libcli.a \
	    build-fuzz/liblogitscope.a $(LIBS) $(PLPLOT_LIBS)
# fuzz_server: the request handler (server/ without the HTTP glue and `serve`)
FUZZ_SERVER_OBJ = $(patsubst %.c,build-fuzz/obj/%.o,$(filter-out server/http.c server/serve.c,$(SERVER_SRC)))
build-fuzz/fuzz_server: tests/fuzz/fuzz_server.c $(FUZZ_SERVER_OBJ) build-fuzz/liblogitscope.a
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -Iserver -o $@ $< $(FUZZ_SERVER_OBJ) \
	    build-fuzz/liblogitscope.a $(LIBS)
fuzz: fuzz-build
	tests/fuzz/run $(FUZZ_SECONDS)

# the generated checkpoints the tests use (regenerated only when the generator changes)
fixtures:
	$(PYTHON) tests/gen_fixtures.py --ensure --all --out $(BUILD)/fixtures

unit-test: $(UNIT_BIN) fixtures
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; LSC_FIXTURES=$(BUILD)/fixtures $$t; done

# The Python package's extension, built in place (python/logitscope/_lsc*.so)
# from a -fPIC build of the library in build/pic (python/build_ffi.py; `pip
# install .` builds the same). Not under the sanitizers: python3 itself is not
# built with them, so tests/python/ is left out of test-sanitize.
PY_STAMP = build/pic/python.stamp
python: $(PY_STAMP)
$(PY_STAMP): $(LIB_SRC) $(wildcard include/*.h src/*.h) python/build_ffi.py
	$(PYTHON) python/build_ffi.py
	@touch $@
ifeq ($(SANITIZE),1)
PY_TEST_DEPS =
PY_TEST_ARGS = --ignore=tests/python
else
PY_TEST_DEPS = $(PY_STAMP)
PY_TEST_ARGS =
endif

py-test: all $(PY_TEST_DEPS)
	LOGITSCOPE_BUILD=$(BUILD) $(PYTHON) -m pytest -q tests $(PY_TEST_ARGS)

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
	rm -rf build build-san build-fuzz
