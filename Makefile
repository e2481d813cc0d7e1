# roomcast: one hand-written Makefile, the project's only entry point.
#
#   make deps      install the Debian packages that are missing (as root)
#   make           build roomcastd, roomcastctl, libroomcast (.so and .a)
#   make check     the whole suite: unit + integration, again under
#                  ASan/UBSan, then every fuzz target for a short time
#   make demo      start a local sidecar and example apps, show a message
#   make install   PREFIX=/usr/local DESTDIR= (binaries, library, header, .pc)
#   make lint      clang-format check
#   make fuzz      run every fuzz target longer (FUZZ_SECONDS=300)
#   make soak      the chaos loop for DURATION (e.g. DURATION=30m), memory
#                  and delivery charted; valgrind over the integration suite
#   make bench     throughput, latency, fanout, memory against raw ZeroMQ
#                  and Redis (tests/bench/run.sh; not part of check)
#   make scale     100 sidecars on this machine, then 200 behind two
#                  proxies: convergence, detection, idle cost, delivery
#                  (tests/scale/run.sh; not part of check)
#   make clean
#
# Build variants live side by side: build/release (default), build/asan
# (SAN=1), build/fuzz (clang + libFuzzer).

VERSION  := 0.1.0
PREFIX   ?= /usr/local
DESTDIR  ?=
BUILD    ?= build/release
SAN      ?=
FUZZ     ?=
FUZZ_SECONDS ?= 300

PKGS := libzmq libczmq libsodium msgpack
DEBS := build-essential pkg-config libzmq3-dev libczmq-dev libsodium-dev \
        libmsgpack-dev libcmocka-dev clang libclang-rt-14-dev clang-format \
        iproute2 procps systemd shellcheck

CC       ?= cc
CFLAGS   ?= -O2 -g
WARN     := -Wall -Wextra -Werror -Wshadow -Wpointer-arith \
            -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla
CPPFLAGS += -Ilibclient -Isidecar -Idiscovery -D_GNU_SOURCE \
            -DROOMCAST_VERSION_STRING='"$(VERSION)"'
DEPFLAGS := -MMD -MP
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

ifeq ($(SAN),1)
  CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer \
             -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
endif
ifeq ($(FUZZ),1)
  CC      := clang
  CFLAGS  += -fsanitize=fuzzer-no-link,address,undefined \
             -fno-omit-frame-pointer -DRC_FUZZING
  LDFLAGS += -fsanitize=address,undefined
endif

# Quiet by default; make V=1 shows the commands.
ifeq ($(V),1)
  Q :=
  say = @true
else
  Q := @
  say = @printf '  %-6s %s\n'
endif

ALL_CFLAGS = -std=gnu11 -fPIC $(WARN) $(CFLAGS) $(PKG_CFLAGS) $(DEPFLAGS)

# Sources: every .c in a module folder is part of it; the two mains are not.
LIB_SRC    := $(wildcard libclient/*.c)
DAEMON_SRC := $(filter-out sidecar/roomcastd.c sidecar/roomcastctl.c, \
                $(wildcard sidecar/*.c)) $(wildcard discovery/*.c)
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
INTEG_SRC  := $(wildcard tests/integration/test_*.c)
INTEG_HELP := $(filter-out $(INTEG_SRC), $(wildcard tests/integration/*.c))
FUZZ_SRC   := $(wildcard tests/fuzz/fuzz_*.c)
TOOL_SRC   := $(wildcard tests/tools/*.c)
EXAMPLE_SRC := $(wildcard examples/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIB_OBJ    := $(call obj,$(LIB_SRC))
DAEMON_OBJ := $(call obj,$(DAEMON_SRC))
LIBA       := $(BUILD)/libroomcast.a
LIBSO      := $(BUILD)/libroomcast.so
RCDA       := $(BUILD)/librcd.a
ROOMCASTD  := $(BUILD)/roomcastd
CTL        := $(BUILD)/roomcastctl
UNIT_BIN   := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRC))
INTEG_BIN  := $(patsubst tests/integration/%.c,$(BUILD)/tests/integration/%,$(INTEG_SRC))
FUZZ_BIN   := $(patsubst tests/fuzz/%.c,$(BUILD)/tests/fuzz/%,$(FUZZ_SRC))
TOOL_BIN   := $(patsubst tests/tools/%.c,$(BUILD)/tests/tools/%,$(TOOL_SRC))
EXAMPLE_BIN := $(patsubst examples/%.c,$(BUILD)/examples/%,$(EXAMPLE_SRC))

.PHONY: all build tests deps check demo install uninstall clean lint fuzz \
        fuzz-build unit integration bench soak scale
.DEFAULT_GOAL := all
.SECONDARY:

all: build
build: $(ROOMCASTD) $(CTL) $(LIBA) $(LIBSO) $(BUILD)/roomcast.pc $(EXAMPLE_BIN)
tests: build $(UNIT_BIN) $(INTEG_BIN) $(TOOL_BIN)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(say) CC $<
	$(Q)$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

$(LIBA): $(LIB_OBJ)
	@mkdir -p $(@D)
	$(say) AR $@
	$(Q)rm -f $@ && ar rcs $@ $^

$(LIBSO): $(LIB_OBJ)
	$(say) LD $@
	$(Q)$(CC) -shared -Wl,-soname,libroomcast.so.0 $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(RCDA): $(DAEMON_OBJ)
	@mkdir -p $(@D)
	$(say) AR $@
	$(Q)rm -f $@ && ar rcs $@ $^

$(ROOMCASTD): $(call obj,sidecar/roomcastd.c) $(RCDA) $(LIBA)
	$(say) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(CTL): $(call obj,sidecar/roomcastctl.c) $(RCDA) $(LIBA)
	$(say) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(BUILD)/roomcast.pc: libclient/roomcast.pc.in Makefile
	@mkdir -p $(@D)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' $< > $@

$(BUILD)/tests/unit/%: $(call obj,tests/unit/%.c) $(RCDA) $(LIBA)
	@mkdir -p $(@D)
	$(say) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lcmocka -lm

$(BUILD)/tests/integration/%: $(call obj,tests/integration/%.c) \
		$(call obj,$(INTEG_HELP)) $(LIBA)
	@mkdir -p $(@D)
	$(say) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lcmocka -lm

$(BUILD)/tests/tools/%: $(call obj,tests/tools/%.c) $(RCDA) $(LIBA)
	@mkdir -p $(@D)
	$(say) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm -lpthread

$(BUILD)/examples/%: $(call obj,examples/%.c) $(LIBA)
	@mkdir -p $(@D)
	$(say) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(BUILD)/tests/fuzz/%: $(call obj,tests/fuzz/%.c) $(RCDA) $(LIBA)
	@mkdir -p $(@D)
	$(say) LD $@
	$(Q)$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(PKG_LIBS) -lm

fuzz-build: $(FUZZ_BIN)

# --- the two commands -----------------------------------------------------

deps:
	@tests/deps.sh $(DEBS)

check: deps
	@tests/check.sh

demo: deps
	@$(MAKE) --no-print-directory -j2 build
	@examples/demo.sh $(BUILD)

soak: deps
	@$(MAKE) --no-print-directory -j2 BUILD=build/release tests
	@tests/chaos/soak.sh build/release $(DURATION)

bench: deps
	@$(MAKE) --no-print-directory -j2 BUILD=build/release tests
	@tests/bench/run.sh build/release

scale: deps
	@$(MAKE) --no-print-directory -j2 BUILD=build/release tests
	@tests/scale/run.sh build/release

unit: tests
	@tests/run-tests.sh $(BUILD) unit

integration: tests
	@tests/run-tests.sh $(BUILD) integration

fuzz: deps
	@$(MAKE) --no-print-directory -j2 BUILD=build/fuzz FUZZ=1 fuzz-build
	@tests/run-fuzz.sh build/fuzz $(FUZZ_SECONDS)

lint:
	@clang-format --dry-run --Werror $(shell git ls-files '*.c' '*.h')

# --- install --------------------------------------------------------------

install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib \
	    $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 0755 $(ROOMCASTD) $(CTL) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 $(LIBA) $(DESTDIR)$(PREFIX)/lib/
	install -m 0755 $(LIBSO) $(DESTDIR)$(PREFIX)/lib/libroomcast.so.$(VERSION)
	ln -sf libroomcast.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libroomcast.so.0
	ln -sf libroomcast.so.0 $(DESTDIR)$(PREFIX)/lib/libroomcast.so
	install -m 0644 libclient/roomcast.h $(DESTDIR)$(PREFIX)/include/
	install -m 0644 $(BUILD)/roomcast.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/roomcastd $(DESTDIR)$(PREFIX)/bin/roomcastctl \
	    $(DESTDIR)$(PREFIX)/lib/libroomcast.* \
	    $(DESTDIR)$(PREFIX)/include/roomcast.h \
	    $(DESTDIR)$(PREFIX)/lib/pkgconfig/roomcast.pc

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
