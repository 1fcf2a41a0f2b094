# logitscope - build the library, the CLI and the tests.
#   make              the library (build/liblogitscope.a and build/liblogitscope.so),
#                     the CLI (build/logitscope) and the benchmark helpers
#   make install PREFIX=/usr/local   header, both libraries, the CLI, logitscope.pc
#   make test         C unit tests, the page's node tests, then the Python tests (oracle, CLI, browser)
#   make test-sanitize  the same under AddressSanitizer + UBSan (build-san/)
#   make bench        benchmarks against PyTorch (bench/run)
#   make python       the Python package's extension in place (python/logitscope/)
CC      ?= gcc
BUILD   ?= build
PYTHON  ?= python3
OPT     ?= -O2
PREFIX  ?= /usr/local
# -MMD -MP: each object lists the headers it read (build/obj/**/*.d), so a
# changed header rebuilds exactly its users
CFLAGS_BASE = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
              -fno-strict-aliasing -pthread -Iinclude -Isrc $(OPT) -g -MMD -MP
ifeq ($(SANITIZE),1)
  CFLAGS_BASE += -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
  LDFLAGS += -fsanitize=address,undefined
endif
CFLAGS += $(CFLAGS_BASE)
AVX512_FLAGS = -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma -mf16c
PKG_CONFIG ?= pkg-config
PKGS    = libcjson libpcre2-8 libcurl libcrypto
MHD_LIBS = $(shell $(PKG_CONFIG) --libs libmicrohttpd)
LIBS    = $(shell $(PKG_CONFIG) --libs $(PKGS)) -lm -pthread
PLPLOT_CFLAGS = $(shell $(PKG_CONFIG) --cflags plplot 2>/dev/null)
PLPLOT_LIBS   = $(shell $(PKG_CONFIG) --libs plplot 2>/dev/null)

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

# The library's version; the shared library's soname carries the major.
VERSION   = $(shell sed -n 's/^\#define LSC_VERSION "\(.*\)"/\1/p' include/logitscope.h)
SOMAJOR   = $(firstword $(subst ., ,$(VERSION)))
SONAME    = liblogitscope.so.$(SOMAJOR)
TOOL_SRC  = $(wildcard tools/*.c)
CLI_SRC   = $(wildcard tools/common/*.c)
# without plplot (the aarch64 cross build of make test-arm64, which builds
# the library and the unit tests, not the CLI) the CLI's library leaves out
# the plot drawing
ifeq ($(shell $(PKG_CONFIG) --exists plplot && echo yes),)
  CLI_SRC := $(filter-out tools/common/plot_draw.c,$(CLI_SRC))
endif
SERVER_SRC = $(wildcard server/*.c)
UNIT_SRC  = $(wildcard tests/unit/test_*.c)
LIB_OBJ   = $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
TOOL_OBJ  = $(TOOL_SRC:%.c=$(BUILD)/obj/%.o) $(SERVER_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ   = $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_BIN  = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
BENCH_SRC = $(wildcard bench/*.c)
BENCH_BIN = $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: all test unit-test web-test py-test test-sanitize bench clean fixtures fuzz-build fuzz python install \
        test-arm64
all: $(BUILD)/liblogitscope.a $(BUILD)/liblogitscope.so $(BUILD)/logitscope $(BENCH_BIN)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# The library's objects serve both libraries: position-independent (so the
# static one also links into a shared object, e.g. a Python extension) and
# with only the header's LSC_API functions visible outside the .so.
$(LIB_OBJ): CFLAGS += -fPIC -fvisibility=hidden

# SIMD kernels: compiled for their instruction set, chosen at run time.
$(BUILD)/obj/src/kernels/avx2.o: CFLAGS += -mavx2 -mfma -mf16c
$(BUILD)/obj/src/kernels/avx512.o: CFLAGS += $(AVX512_FLAGS)

# the CLI: its commands (tools/cmd_*.c, and `serve` in server/) on its shared
# library (tools/common)
$(TOOL_OBJ) $(CLI_OBJ): CFLAGS += -Itools/common
$(BUILD)/obj/tools/cmd_plot.o $(BUILD)/obj/tools/common/plot_draw.o: CFLAGS += $(PLPLOT_CFLAGS)

# the reference kernels are written to be auto-vectorized
$(BUILD)/obj/src/kernels/ref.o: CFLAGS += -O3
# softmax_row.c's bits must not depend on the build: no a * b + c fused into an
# fma (-std=c11 already means this for gcc; clang fuses by default)
$(BUILD)/obj/src/softmax_row.o: CFLAGS += -O3 -ffp-contract=off

$(BUILD)/liblogitscope.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/liblogitscope.so.$(VERSION): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--no-undefined $(LDFLAGS) -o $@ $^ $(LIBS)
$(BUILD)/liblogitscope.so: $(BUILD)/liblogitscope.so.$(VERSION)
	ln -sf liblogitscope.so.$(VERSION) $(BUILD)/$(SONAME)
	ln -sf liblogitscope.so.$(VERSION) $@

# logitscope.pc for pkg-config is written for the PREFIX of each install
install: all
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' -e 's|@LIBS_PRIVATE@|$(LIBS)|' \
	    logitscope.pc.in > $(BUILD)/logitscope.pc
	install -m 644 include/logitscope.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(BUILD)/liblogitscope.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/liblogitscope.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/
	ln -sf liblogitscope.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/$(SONAME)
	ln -sf liblogitscope.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/liblogitscope.so
	install -m 644 $(BUILD)/logitscope.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/
	install -m 755 $(BUILD)/logitscope $(DESTDIR)$(PREFIX)/bin/

$(BUILD)/libcli.a: $(CLI_OBJ)
	@rm -f $@
	ar rcs $@ $^

# the explorer page (web/) embedded into the binary by a generator built here
WEB_FILES = $(sort $(wildcard web/*.html web/*.css web/js/*.mjs))
WEB_OBJ   = $(BUILD)/obj/gen/web_files.o
$(BUILD)/embed_files: scripts/embed_files.c
	@mkdir -p $(dir $@)
	$(CC) -O1 -o $@ $<
$(BUILD)/gen/web_files.c: $(WEB_FILES) $(BUILD)/embed_files
	@mkdir -p $(dir $@)
	$(BUILD)/embed_files $@ $(WEB_FILES)
$(WEB_OBJ): $(BUILD)/gen/web_files.c server/web_files.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Iserver -c $< -o $@

$(BUILD)/logitscope: $(TOOL_OBJ) $(WEB_OBJ) $(BUILD)/libcli.a $(BUILD)/liblogitscope.a
	$(CC) $(LDFLAGS) -o $@ $(TOOL_OBJ) $(WEB_OBJ) $(BUILD)/libcli.a $(BUILD)/liblogitscope.a $(LIBS) $(MHD_LIBS) \
	    $(PLPLOT_LIBS)

# unit tests link the CLI's library too (the --hook parser, .npy/.npz, options)
$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libcli.a $(BUILD)/liblogitscope.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itools/common $(LDFLAGS) -o $@ $< $(BUILD)/libcli.a $(BUILD)/liblogitscope.a \
	    $(LIBS) $(PLPLOT_LIBS)

# The cross-architecture check's logits and softmax dumps (tests/cross/run).
$(BUILD)/tests/logits_dump $(BUILD)/tests/softmax_dump: $(BUILD)/tests/%: tests/cross/%.c \
                                                       $(BUILD)/liblogitscope.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/liblogitscope.a $(LIBS)

# aarch64: cross-compiled (gcc-aarch64-linux-gnu, the libraries' arm64
# packages) into build-arm64/ and run under qemu-user: the C unit tests and
# logits against this machine's (correctness only; tests/cross/run).
test-arm64: fixtures $(BUILD)/tests/logits_dump $(BUILD)/tests/softmax_dump
	tests/cross/run

# Benchmark helpers in C (bench/*.c), on the public header; kernels_bench.c
# also times the internal kernels (src/kernels.h) one by one.
$(BUILD)/bench/%: bench/%.c $(BUILD)/liblogitscope.a
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
build-fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $(SIMD_FLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
build-fuzz/obj/src/kernels/avx2.o: SIMD_FLAGS = -mavx2 -mfma -mf16c
build-fuzz/obj/src/kernels/avx512.o: SIMD_FLAGS = $(AVX512_FLAGS)
build-fuzz/obj/src/softmax_row.o: SIMD_FLAGS = -ffp-contract=off
build-fuzz/liblogitscope.a: $(FUZZ_LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^
# the CLI's library (--hook specs, .npy/.npz, options) for the targets that need it
FUZZ_CLI_OBJ = $(CLI_SRC:%.c=build-fuzz/obj/%.o)
build-fuzz/obj/tools/common/%.o: tools/common/%.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $(PLPLOT_CFLAGS) -Itools/common -fsanitize=fuzzer-no-link -c $< -o $@
build-fuzz/libcli.a: $(FUZZ_CLI_OBJ)
	@rm -f $@
	ar rcs $@ $^
build-fuzz/%: tests/fuzz/%.c build-fuzz/libcli.a build-fuzz/liblogitscope.a
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -Itools/common -o $@ $< build-fuzz/libcli.a \
	    build-fuzz/liblogitscope.a $(LIBS) $(PLPLOT_LIBS)
# fuzz_server: the request handler (server/ without the HTTP glue and `serve`)
FUZZ_SERVER_OBJ = $(patsubst %.c,build-fuzz/obj/%.o,$(filter-out server/http.c server/serve.c,$(SERVER_SRC)))
$(FUZZ_SERVER_OBJ): FUZZ_CFLAGS += -Itools/common
build-fuzz/fuzz_server: tests/fuzz/fuzz_server.c $(FUZZ_SERVER_OBJ) $(BUILD)/gen/web_files.c \
                       build-fuzz/libcli.a build-fuzz/liblogitscope.a
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -Iserver -Itools/common -o $@ $< $(FUZZ_SERVER_OBJ) \
	    $(BUILD)/gen/web_files.c build-fuzz/libcli.a build-fuzz/liblogitscope.a $(LIBS) $(PLPLOT_LIBS)
fuzz: fuzz-build
	tests/fuzz/run $(FUZZ_SECONDS)

# the generated checkpoints the tests use (regenerated only when the generator changes)
fixtures:
	$(PYTHON) tests/gen_fixtures.py --ensure --all --out $(BUILD)/fixtures

# Skips are never silent: the C tests print "SKIP <what>: <why>" lines, kept
# in $(BUILD)/unit-skips.txt; pytest lists its skips with reasons (-rs) and
# its summary goes to $(BUILD)/pytest-junit.xml; tests/skips.py prints them
# all as the closing lines of `make test`.
unit-test: $(UNIT_BIN) fixtures
	@set -e; : > $(BUILD)/unit-skips.txt; for t in $(UNIT_BIN); do echo "== $$t"; \
	  LSC_FIXTURES=$(BUILD)/fixtures $$t > $(BUILD)/unit-out.txt 2>&1 || { cat $(BUILD)/unit-out.txt; exit 1; }; \
	  cat $(BUILD)/unit-out.txt; grep '^SKIP' $(BUILD)/unit-out.txt | sed "s|^SKIP |$$(basename $$t): |" >> $(BUILD)/unit-skips.txt || true; done

# The Python package's extension, built in place (python/logitscope/_lsc*.so)
# on build/liblogitscope.a (python/build_ffi.py; `pip install .` builds the
# same). Not under the sanitizers: python3 itself is not
# built with them, so tests/python/ is left out of test-sanitize.
PY_STAMP = build/python.stamp
python: $(PY_STAMP)
$(PY_STAMP): $(LIB_SRC) $(wildcard include/*.h src/*.h src/kernels/*.h) python/build_ffi.py
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
	LOGITSCOPE_BUILD=$(BUILD) $(PYTHON) -m pytest -q -rs --junitxml=$(BUILD)/pytest-junit.xml tests $(PY_TEST_ARGS)

# the explorer page's pure logic (web/js/logic.mjs) under Node's own runner;
# its browser tests (tests/web/test_explorer_page.py) run with the Python ones
web-test:
	node --test tests/web/

test: all unit-test web-test py-test
	@$(PYTHON) tests/skips.py $(BUILD)

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

# the headers each object, test and benchmark was built from (-MMD)
-include $(shell find $(BUILD) build-fuzz -name '*.d' 2>/dev/null)
