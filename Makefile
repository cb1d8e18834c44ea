# tailwart — build, run, check, bench, install.
# Every library flag comes from pkg-config (libspf2 ships no .pc file).
# Layout: lib/ and policy/ are static archives; each program links its own
# directory's objects on top of them. Adding a .c file needs no Makefile edit.

CC       ?= cc
PREFIX   ?= /usr/local
PKGS      = openssl libcares milter opendkim lmdb hiredis libsystemd
# Asked of pkg-config when a recipe first needs them, not when make reads this
# file: on a fresh machine `make run` installs the -dev packages (deps) before
# anything is compiled, and the targets that install call $(MAKE) again after
# deps anyway.  A missing package is an error, not an empty flag list.
PKG_CFLAGS = $(eval PKG_CFLAGS := $(call pkg_ask,--cflags))$(PKG_CFLAGS)
PKG_LIBS   = $(eval PKG_LIBS := $(call pkg_ask,--libs) -lspf2 -pthread)$(PKG_LIBS)
pkg_ask    = $(if $(shell pkg-config --exists $(PKGS) 2>/dev/null && echo y),$(shell pkg-config $(1) $(PKGS)),$(error pkg-config: $(PKGS) not all installed: run `make deps` as root))
WARN      = -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
            -Wmissing-prototypes -Wformat=2 -Wno-format-nonliteral
CFLAGS   ?= -O2 -g
# override: `make CFLAGS=...` (the ASan tree) keeps the project's flags
override CFLAGS += -std=gnu11 $(WARN) -D_GNU_SOURCE -Ilib -Ipolicy $(PKG_CFLAGS)
LDFLAGS  ?=
B        ?= build
SBINDIR   = $(PREFIX)/sbin
MANDIR    = $(PREFIX)/share/man
DOCDIR    = $(PREFIX)/share/doc/tailwart
# Debian 12 keeps packaged units in /lib/systemd/system
UNITDIR  ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)

LIB_SRC    := $(wildcard lib/*.c)
POLICY_SRC := $(wildcard policy/*.c)
GATE_SRC   := $(wildcard gate/*.c)
RELAY_SRC  := $(wildcard relay/*.c)
MILTER_SRC := $(wildcard milter/*.c)
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
HELPER_SRC := $(wildcard tests/helpers/*.c)

obj = $(patsubst %.c,$(B)/%.o,$(1))
LIB_A    := $(B)/libtw.a
POLICY_A := $(B)/libtwpolicy.a
PROGS    := $(if $(GATE_SRC),$(B)/tailwart-gate) $(if $(RELAY_SRC),$(B)/tailwart-relay) \
            $(if $(MILTER_SRC),$(B)/tailwart-milter)
UNITS    := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC))
HELPERS  := $(patsubst tests/helpers/%.c,$(B)/tests/%,$(HELPER_SRC))
MANS     := $(patsubst docs/%.md,$(B)/man/%,$(wildcard docs/*.[1-8].md))

.PHONY: all deps run check check-unit check-asan bench install clean stop
.PHONY: fuzz fuzz-build
.PHONY: container-check
.PHONY: fresh-check man deb
all: $(PROGS) $(UNITS) $(HELPERS)

$(B)/%.o: %.c $(wildcard lib/*.h policy/*.h gate/*.h relay/*.h milter/*.h)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(LIB_A): $(call obj,$(LIB_SRC))
	@rm -f $@; ar rcs $@ $^
$(POLICY_A): $(call obj,$(POLICY_SRC)) | $(LIB_A)
	@rm -f $@; ar rcs $@ $^

$(B)/tailwart-gate: $(call obj,$(GATE_SRC)) $(POLICY_A) $(LIB_A)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(call obj,$(GATE_SRC)) $(POLICY_A) $(LIB_A) $(PKG_LIBS)
$(B)/tailwart-relay: $(call obj,$(RELAY_SRC)) $(POLICY_A) $(LIB_A)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(call obj,$(RELAY_SRC)) $(POLICY_A) $(LIB_A) $(PKG_LIBS)
$(B)/tailwart-milter: $(call obj,$(MILTER_SRC)) $(POLICY_A) $(LIB_A)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(call obj,$(MILTER_SRC)) $(POLICY_A) $(LIB_A) $(PKG_LIBS)

# Unit tests link lib/ and policy/ (and may include a program's .c directly
# to test its static functions).
$(B)/tests/%: tests/unit/%.c $(wildcard tests/unit/*.h) $(POLICY_A) $(LIB_A)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(POLICY_A) $(LIB_A) $(PKG_LIBS)
$(B)/tests/%: tests/helpers/%.c $(POLICY_A) $(LIB_A)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(POLICY_A) $(LIB_A) $(PKG_LIBS)

# Install what is missing on Debian 12 (root), once.
deps:
	@sh tests/peers/deps.sh

# Start the gate and the relay with the sample configs in front of a local
# Postfix backend on loopback, and print how to send a test message.
run: deps
	@$(MAKE) --no-print-directory all
	@sh tests/peers/run.sh

stop:
	@sh tests/peers/run.sh stop

# Everything: unit tests (normal and ASan/UBSan builds) and real-peer tests.
check: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory B=build-asan CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" all
	@sh tests/run

check-unit: deps
	@$(MAKE) --no-print-directory all
	@TW_ONLY=unit sh tests/run

bench: deps
	@$(MAKE) --no-print-directory all
	@sh tests/bench/run.sh
	@bash tests/bench/policy.sh
	@bash tests/bench/milter.sh
	@bash tests/bench/relay.sh
	@bash tests/bench/backends.sh
	@bash tests/bench/syscalls.sh

# The container image and deploy/compose.yaml under podman (root; installs
# podman & co. itself): see tests/container/container-check.sh.
container-check:
	@sh tests/container/container-check.sh

# The README's first commands on a fresh Debian 12 root (mmdebstrap), root
# only, a few minutes: see tests/fresh/fresh-check.sh.
fresh-check: deps
	@sh tests/fresh/fresh-check.sh

# Manual pages: roff generated from docs/NAME.SECTION.md with lowdown.
man: $(MANS)
$(B)/man/%: docs/%.md docs/md2man.sh
	@mkdir -p $(dir $@)
	@echo "  MAN     $@"
	@sh docs/md2man.sh $< $@

# What the Debian package installs (debian/rules calls this with PREFIX=/usr):
# programs, units, manual pages, docs, and the sample configs in /etc/tailwart
# unless they exist.  With DESTDIR empty, as root, it also does what the
# package's postinst does: the system user tailwart, its state and spool
# directories, smarthost.conf readable by its group.
install: all man
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(UNITDIR)/tailwart-.service.d \
		$(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(DOCDIR) $(DESTDIR)/etc/tailwart
	install -m 0755 $(PROGS) $(DESTDIR)$(SBINDIR)/
	for u in systemd/*.service; do \
		sed 's,/usr/sbin/,$(SBINDIR)/,g' $$u >$(DESTDIR)$(UNITDIR)/$${u#systemd/} && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$${u#systemd/} || exit 1; done
	install -m 0644 systemd/tailwart-.service.d/*.conf $(DESTDIR)$(UNITDIR)/tailwart-.service.d/
	install -m 0644 $(filter %.5,$(MANS)) $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 $(filter %.8,$(MANS)) $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 README.md docs/*.md $(DESTDIR)$(DOCDIR)/
	test -e $(DESTDIR)/etc/tailwart/gate.conf || install -m 0644 gate.conf $(DESTDIR)/etc/tailwart/gate.conf
	test -e $(DESTDIR)/etc/tailwart/smarthost.conf || install -m 0640 smarthost.conf $(DESTDIR)/etc/tailwart/smarthost.conf
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" -eq 0 ]; then \
		getent passwd tailwart >/dev/null || useradd --system --user-group --no-create-home \
			--home-dir /var/lib/tailwart --shell /usr/sbin/nologin tailwart || exit 1; \
		install -d -o tailwart -g tailwart -m 0750 /var/lib/tailwart /var/spool/tailwart || exit 1; \
		chgrp tailwart /etc/tailwart/smarthost.conf || exit 1; \
		echo "install: then: systemctl daemon-reload; systemctl enable --now tailwart-gate tailwart-relay"; \
	else \
		echo "install: the system user tailwart and /var/lib/tailwart, /var/spool/tailwart (owned by it) are"; \
		echo "install: left to the package (or to 'make install' as root with no DESTDIR)"; \
	fi

# The Debian package (debian/), built from a copy of the tree's files (tracked
# and new, not ignored) in $(B)/deb: $(B)/deb/tailwart_VERSION_ARCH.deb.
deb:
	rm -rf $(B)/deb && mkdir -p $(B)/deb/tailwart
	git ls-files -co --exclude-standard | tar --ignore-failed-read -cf - -T - | tar -C $(B)/deb/tailwart -xf -
	cd $(B)/deb/tailwart && dpkg-buildpackage -us -uc -b
	@ls $(B)/deb/*.deb

# Fuzzing (clang + libFuzzer). `make fuzz` builds every tests/fuzz/fuzz_*.c
# into $(FUZZ_B)/ (all objects with -fsanitize=fuzzer-no-link,address,
# undefined; each program's objects but its main() in an archive, so a
# target links what it calls) and runs each for FUZZ_SECONDS on a scratch
# copy of tests/fuzz/corpus/<target>/. See tests/fuzz/README.md.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_B       ?= build-fuzz
FUZZ_CFLAGS   = -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
FUZZ_SRC     := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_PROGS   := $(patsubst tests/fuzz/%.c,$(B)/fuzz/%,$(FUZZ_SRC))
FUZZ_ARCH    := $(B)/libgate.a $(B)/librelay.a $(B)/libmilter.a

fuzz: deps
	@$(MAKE) --no-print-directory B=$(FUZZ_B) CC=$(FUZZ_CC) CFLAGS="$(FUZZ_CFLAGS)" fuzz-build
	@sh tests/fuzz/run.sh $(FUZZ_B)/fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-build: $(FUZZ_PROGS)
$(B)/libgate.a: $(call obj,$(filter-out gate/gate_main.c,$(GATE_SRC)))
	@rm -f $@; ar rcs $@ $^
$(B)/librelay.a: $(call obj,$(filter-out relay/relay_main.c,$(RELAY_SRC)))
	@rm -f $@; ar rcs $@ $^
$(B)/libmilter.a: $(call obj,$(filter-out milter/milter_main.c,$(MILTER_SRC)))
	@rm -f $@; ar rcs $@ $^
$(B)/fuzz/%: tests/fuzz/%.c tests/fuzz/fuzz.h $(FUZZ_ARCH) $(POLICY_A) $(LIB_A)
	@mkdir -p $(dir $@)
	@echo "  FUZZ    $@"
	@$(CC) $(CFLAGS) -fsanitize=fuzzer -Itests/fuzz $(LDFLAGS) -o $@ $< $(FUZZ_ARCH) $(POLICY_A) $(LIB_A) $(PKG_LIBS)

clean:
	rm -rf build build-asan build-fuzz
