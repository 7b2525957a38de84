# configs/ - what `make install` puts where, and `make uninstall` takes back.
#
#   make install [PREFIX=/usr/local] [DESTDIR=]
# Programs go to $(PREFIX)/bin; nemod, the sandbox runtime and its python shim side by side
# in $(PREFIX)/libexec/nemo (nemod finds the runtime next to its own binary, and the runtime
# finds the shim next to itself), with $(PREFIX)/sbin/nemod a link to it. Configs go to
# /etc/nemo and are never overwritten: the shipped ones are also kept in
# $(PREFIX)/share/nemo/configs to compare with. The unit goes to $(PREFIX)/lib/systemd/system
# (systemd reads /usr/local/lib/systemd/system too), with its paths made to match PREFIX.
PREFIX     ?= /usr/local
DESTDIR    ?=
BINDIR     := $(PREFIX)/bin
SBINDIR    := $(PREFIX)/sbin
NEMO_LIBEXECDIR := $(PREFIX)/libexec/nemo
NEMO_DATADIR    := $(PREFIX)/share/nemo
DOCDIR     := $(PREFIX)/share/doc/nemo
MANDIR     := $(PREFIX)/share/man
UNITDIR    := $(PREFIX)/lib/systemd/system
CONFDIR    := /etc/nemo

NEMO_VERSION_STR = $(shell sed -n 's/^\#define NEMO_VERSION "\(.*\)"/\1/p' include/nemo/version.h)
INSTALL_BINS := nemoctl nemo-nf nemo-gen
# the sample functions: what sandbox/ builds in build/functions, less its test-* functions
SAMPLE_FNS = $(filter-out $(BUILD)/functions/test-%,$(filter $(BUILD)/functions/%,$(SOS)))
INSTALL_DOCS = README.md $(wildcard */README.md experiments/*/README.md docs/*.md DESIGN.md)

# man pages from each program's --help (help2man); section 8 for the daemon
MAN1 := $(foreach p,nemoctl nemo-nf nemo-gen,$(BUILD)/man/$(p).1)
MAN8 := $(BUILD)/man/nemod.8
$(BUILD)/man/%.1: $(BIN)/%
	@mkdir -p $(@D)
	help2man -N -s 1 --version-string="$(NEMO_VERSION_STR)" -o $@ ./$<
$(BUILD)/man/%.8: $(BIN)/%
	@mkdir -p $(@D)
	help2man -N -s 8 --version-string="$(NEMO_VERSION_STR)" -o $@ ./$<

.PHONY: man install uninstall
man: $(MAN1) $(MAN8)

install: all man
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(NEMO_LIBEXECDIR) \
		$(DESTDIR)$(NEMO_DATADIR)/functions $(DESTDIR)$(NEMO_DATADIR)/configs \
		$(DESTDIR)$(DOCDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(UNITDIR)
	install -m 0755 $(foreach p,$(INSTALL_BINS),$(BIN)/$(p)) $(DESTDIR)$(BINDIR)/
	install -m 0755 $(BIN)/nemod $(BIN)/nemo-sbx-runtime $(DESTDIR)$(NEMO_LIBEXECDIR)/
	install -m 0644 $(BIN)/nemo-sbx-shim.py $(BIN)/nemo-sbx-zygote.so $(DESTDIR)$(NEMO_LIBEXECDIR)/
	ln -sfn $$(realpath -m --relative-to=$(SBINDIR) $(NEMO_LIBEXECDIR))/nemod \
		$(DESTDIR)$(SBINDIR)/nemod
	for f in $(SAMPLE_FNS); do \
		if [ -x $$f ]; then m=0755; else m=0644; fi; \
		install -m $$m $$f $(DESTDIR)$(NEMO_DATADIR)/functions/ || exit 1; done
	install -m 0644 configs/*.json $(DESTDIR)$(NEMO_DATADIR)/configs/
	install -d -m 0755 $(DESTDIR)$(CONFDIR)
	@for f in configs/*.json; do \
		dst=$(DESTDIR)$(CONFDIR)/$$(basename $$f); \
		if [ -e $$dst ]; then \
			if cmp -s $$f $$dst; then :; else \
			echo "install: kept $$dst (yours); the shipped one is" \
				"$(NEMO_DATADIR)/configs/$$(basename $$f)"; fi; \
		else install -m 0644 $$f $$dst && echo "install: $$dst"; fi; done
	@# the API token: made here, readable by root only, so that nemod need not write /etc
	@tok=$(DESTDIR)$(CONFDIR)/token; if [ ! -e $$tok ]; then \
		(umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > $$tok) && \
		echo "install: $$tok (a new API token, mode 0600)"; fi
	sed -e 's|/usr/local/sbin/|$(SBINDIR)/|g' -e 's|/usr/local/share/doc/nemo|$(DOCDIR)|g' \
		configs/nemod.service > $(DESTDIR)$(UNITDIR)/nemod.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/nemod.service
	for d in $(INSTALL_DOCS); do \
		install -D -m 0644 $$d $(DESTDIR)$(DOCDIR)/$$d || exit 1; done
	install -m 0644 $(MAN1) $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 $(MAN8) $(DESTDIR)$(MANDIR)/man8/
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; \
		echo "install: done; start nemod with: systemctl enable --now nemod"; fi

# Takes back what install put in place, except /etc/nemo (configs and token are the
# operator's, as a Debian package keeps them until purged) and /var/lib/nemo (the store).
uninstall:
	@if [ -z "$(DESTDIR)" ] && systemctl is-active -q nemod 2>/dev/null; then \
		echo "uninstall: nemod is running: systemctl disable --now nemod first" >&2; exit 1; fi
	rm -f $(foreach p,$(INSTALL_BINS),$(DESTDIR)$(BINDIR)/$(p)) $(DESTDIR)$(SBINDIR)/nemod
	rm -rf $(DESTDIR)$(NEMO_LIBEXECDIR) $(DESTDIR)$(NEMO_DATADIR) $(DESTDIR)$(DOCDIR)
	rm -f $(DESTDIR)$(UNITDIR)/nemod.service
	rm -f $(foreach p,nemoctl nemo-nf nemo-gen,$(DESTDIR)$(MANDIR)/man1/$(p).1) \
		$(DESTDIR)$(MANDIR)/man8/nemod.8
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
	@echo "uninstall: kept $(DESTDIR)$(CONFDIR) and /var/lib/nemo; remove them to purge"

# where install puts things, for scripts (tests/vm/guest-check)
.PHONY: print-install-dirs
print-install-dirs:
	@echo bindir=$(BINDIR); echo sbindir=$(SBINDIR); echo libexecdir=$(NEMO_LIBEXECDIR); \
		echo datadir=$(NEMO_DATADIR); echo docdir=$(DOCDIR); echo unitdir=$(UNITDIR); \
		echo confdir=$(CONFDIR)
