# turnkey — see README.md. Two commands matter: `make run` and `make test`.
#
# Layout: every src/<module>/*.c goes into libturnkey.a; src/main.c is the binary.
# tests/unit/test_<name>.c is one unit-test binary each (linked with the library).
# fuzz/fuzz_<name>.c is one libFuzzer target each, corpus in fuzz/corpus/<name>/.

MODE   ?= release
BUILD  := build/$(MODE)
PKGS   := libmicrohttpd jansson sqlite3 libpq libssl libcrypto zlib libcurl
DATA   ?= ./var
API    ?= 127.0.0.1:8080

# `make install`: PREFIX, DESTDIR (staging root, no root needed) and the usual directories.
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
DOCDIR     ?= $(PREFIX)/share/doc/turnkey
UNITDIR    ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= /etc
STATEDIR   ?= /var/lib/turnkey
# CC, CPPFLAGS, CFLAGS and LDFLAGS from the command line or environment are added to ours.

CSTD     := -std=c17 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Iinclude
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm

ifeq ($(MODE),asan)
  CC  ?= cc
  OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
else ifeq ($(MODE),tsan)
  OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=thread
else
  OPT := -O2 -g
endif

LIB_SRC  := $(sort $(wildcard src/*/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC := $(sort $(wildcard fuzz/fuzz_*.c))
FUZZ_BIN := $(FUZZ_SRC:fuzz/%.c=build/fuzz/%)
HDRS     := $(wildcard include/turnkey/*.h src/*/*.h tests/unit/*.h fuzz/*.h)

.PHONY: all build run test deps deps-test unit fuzz tsan bench clean format-check format install uninstall

all: build

deps:
	@scripts/deps.sh build

deps-test:
	@scripts/deps.sh test

build: $(BUILD)/turnkey

$(BUILD)/obj/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(OPT) $(CPPFLAGS) $(CFLAGS) $(PKG_CFLAGS) -c $< -o $@

$(BUILD)/libturnkey.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/turnkey: $(BUILD)/obj/src/main.o $(BUILD)/libturnkey.a
	$(CC) $(OPT) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libturnkey.a $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(OPT) $(CPPFLAGS) $(CFLAGS) $(PKG_CFLAGS) -Itests/unit -o $@ $< $(BUILD)/libturnkey.a $(LDFLAGS) $(PKG_LIBS)

unit: $(UNIT_BIN) $(BUILD)/turnkey

# libFuzzer targets: clang, ASan+UBSan; the library is compiled once with coverage
# instrumentation (fuzzer-no-link) and linked into every target.
FUZZ_CFLAGS := -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_OBJ := $(LIB_SRC:%.c=build/fuzz/obj/%.o)

build/fuzz/obj/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	clang $(CSTD) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(PKG_CFLAGS) -c $< -o $@

build/fuzz/libturnkey.a: $(FUZZ_OBJ)
	@rm -f $@
	ar rcs $@ $^

build/fuzz/%: fuzz/%.c build/fuzz/libturnkey.a $(HDRS)
	@mkdir -p $(dir $@)
	clang $(CSTD) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(PKG_CFLAGS) -o $@ $< build/fuzz/libturnkey.a $(PKG_LIBS)

fuzz: $(FUZZ_BIN)

# `make run`: install missing build deps, build, start the service on ./var (SQLite).
run: deps
	@$(MAKE) --no-print-directory build MODE=release
	@exec scripts/run.sh $(BUILD)/turnkey "$(DATA)" "$(API)"

# `make test`: install deps, build with sanitizers, run every test, print one summary line.
# The tsan tier (ThreadSanitizer build in build/tsan) runs after the ASan tiers. The release
# build (what `make run` and `make install` use) is built first: its -O2 warnings are errors too.
test: deps-test
	@$(MAKE) --no-print-directory build MODE=release
	@$(MAKE) --no-print-directory unit MODE=asan
	@$(MAKE) --no-print-directory fuzz
	@$(MAKE) --no-print-directory unit MODE=tsan
	@tests/run.sh build/asan

# `make tsan`: only the ThreadSanitizer tier (unit tests and the threaded integration suites
# against build/tsan/turnkey; see tests/run.sh).
tsan: deps-test
	@$(MAKE) --no-print-directory unit MODE=tsan
	@TK_ONLY=tsan tests/run.sh build/asan

# `make bench`: turnkey vs coturn vs a do-nothing relay, one table (bench/run.sh, < 10 min;
# TK_BENCH_QUICK=1 for a ~2-minute subset). The load generator links the release library.
BENCH_BIN := build/release/loadgen build/release/echopeer

build/release/loadgen: bench/loadgen.c build/release/libturnkey.a $(HDRS)
	$(CC) $(CSTD) -O2 -g $(PKG_CFLAGS) -o $@ $< build/release/libturnkey.a $(PKG_LIBS)

build/release/echopeer: bench/echopeer.c
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) -O2 -g -o $@ $< -lpthread

bench: deps-test
	@$(MAKE) --no-print-directory build $(BENCH_BIN) MODE=release
	@bench/run.sh build/release

# `make install [PREFIX=/usr/local] [DESTDIR=/staging]`: the binary, turnkey(8), an example
# configuration written by the binary itself (so it documents every option), the systemd unit
# and, unless one exists, SYSCONFDIR/turnkey/turnkey.conf (data = STATEDIR, all else default).
install: build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(DOCDIR) \
	    $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/turnkey
	install -m 0755 $(BUILD)/turnkey $(DESTDIR)$(BINDIR)/turnkey
	install -m 0644 man/turnkey.8 $(DESTDIR)$(MANDIR)/man8/turnkey.8
	env -i $(BUILD)/turnkey serve --print-config > $(BUILD)/turnkey.conf.example
	install -m 0644 $(BUILD)/turnkey.conf.example $(DESTDIR)$(DOCDIR)/turnkey.conf.example
	env -i $(BUILD)/turnkey serve --data $(STATEDIR) --print-config > $(BUILD)/turnkey.conf
	[ -e $(DESTDIR)$(SYSCONFDIR)/turnkey/turnkey.conf ] || \
	    install -m 0644 $(BUILD)/turnkey.conf $(DESTDIR)$(SYSCONFDIR)/turnkey/turnkey.conf
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' dist/turnkey.service \
	    > $(BUILD)/turnkey.service
	install -m 0644 $(BUILD)/turnkey.service $(DESTDIR)$(UNITDIR)/turnkey.service

# Leaves SYSCONFDIR/turnkey/turnkey.conf and the data directory alone.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/turnkey $(DESTDIR)$(MANDIR)/man8/turnkey.8 \
	    $(DESTDIR)$(DOCDIR)/turnkey.conf.example $(DESTDIR)$(UNITDIR)/turnkey.service
	-rmdir $(DESTDIR)$(DOCDIR)

# Every C file of the project against the committed .clang-format (CI runs it: .ci/run).
FMT_SRC = $(sort $(wildcard src/*.c src/*/*.c src/*/*.h include/turnkey/*.h tests/unit/*.c tests/unit/*.h fuzz/*.c fuzz/*.h bench/*.c))

format-check: deps-test
	@clang-format --dry-run --Werror $(FMT_SRC) && echo "format-check: $(words $(FMT_SRC)) files clean"

format: deps-test
	clang-format -i $(FMT_SRC)

clean:
	rm -rf build
