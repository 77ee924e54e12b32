# avnode: `make run` starts a node on the embedded default config,
# `make test` runs every test. Both build what they need.

GO       ?= go
BIN      := bin
# Every package runs under the race detector: most tests drive real networking.
# -p 1: one package at a time, so that networks of real nodes do not starve each other.
RACE_PKGS := ./...
# Brief fuzzing of every decoder in `make test`, counted in inputs: a duration
# races the fuzz coordinator's deadline on a busy machine (go.dev/issue/75804).
# `make test-long` fuzzes each for two minutes.
FUZZTIME ?= 20000x

# Stamp the commit into the binaries (`avnode version`), even where GOFLAGS
# turns it off; auto leaves it out where the source is not a checkout.
BUILDVCS := -buildvcs=auto

.PHONY: build cross run install uninstall test test-deps test-long vet fmt fuzz proto clean

# The node, its shipped roles (found next to the binary), and the example
# third-party role built out of tree (its own module, requiring only the sdk).
build:
	$(GO) build $(BUILDVCS) -o $(BIN)/avnode ./cmd/avnode
	$(GO) build $(BUILDVCS) -o $(BIN)/avnode-beacon ./roles/beacon
	$(GO) build $(BUILDVCS) -o $(BIN)/avnode-mirror ./roles/mirror
	$(GO) build $(BUILDVCS) -o $(BIN)/avnode-relay ./roles/relay
	$(GO) build $(BUILDVCS) -o $(BIN)/avnode-receiver ./roles/receiver
	$(GO) build $(BUILDVCS) -o $(BIN)/avnode-satellite ./roles/satellite
	cd sdk/examples/pinner && $(GO) build $(BUILDVCS) -o ../../../$(BIN)/avnode-pinner .
	cd sdk/examples/chat && $(GO) build $(BUILDVCS) -o ../../../$(BIN)/avnode-chat .

# The node (with the CLI), the shipped roles and the examples build for
# these systems too; built to a temporary folder and thrown away, tests are not
# run there. What needs Linux (peer credentials of the control API outside
# Linux and macOS, Landlock, namespaces) says so at run time.
CROSS := linux/arm64 darwin/arm64
cross:
	@out=$$(mktemp -d) && trap 'rm -rf "$$out"' EXIT && \
	for target in $(CROSS); do \
	  echo "cross $$target"; \
	  export GOOS=$${target%/*} GOARCH=$${target#*/}; \
	  $(GO) build -o "$$out/" ./cmd/avnode ./roles/... || exit 1; \
	  (cd sdk/examples/pinner && $(GO) build -o "$$out/" .) || exit 1; \
	  (cd sdk/examples/chat && $(GO) build -o "$$out/" .) || exit 1; \
	done

run: build
	$(BIN)/avnode run

# make install [PREFIX=/usr/local] [DESTDIR=]: the node and the shipped roles
# in one folder (the node finds its roles next to its binary), shell
# completions, man pages, and the systemd units with the binary's path in
# them (configs/systemd/README.md). `make uninstall` takes them away.
PREFIX  ?= /usr/local
BINDIR  := $(PREFIX)/bin
ROLES   := beacon mirror relay receiver satellite
SHARE   := $(DESTDIR)$(PREFIX)/share
UNITDIR := $(DESTDIR)$(PREFIX)/lib/systemd
INSTALLED := $(DESTDIR)$(BINDIR)/avnode $(ROLES:%=$(DESTDIR)$(BINDIR)/avnode-%) \
	$(SHARE)/bash-completion/completions/avnode $(SHARE)/zsh/site-functions/_avnode \
	$(SHARE)/fish/vendor_completions.d/avnode.fish \
	$(UNITDIR)/system/avnode.service $(UNITDIR)/user/avnode.service \
	$(DESTDIR)$(PREFIX)/lib/sysusers.d/avnode.conf

install: build
	install -d $(DESTDIR)$(BINDIR) $(SHARE)/man/man1 $(SHARE)/bash-completion/completions \
	  $(SHARE)/zsh/site-functions $(SHARE)/fish/vendor_completions.d \
	  $(UNITDIR)/system $(UNITDIR)/user $(DESTDIR)$(PREFIX)/lib/sysusers.d
	install -m 0755 $(BIN)/avnode $(ROLES:%=$(BIN)/avnode-%) $(DESTDIR)$(BINDIR)/
	$(BIN)/avnode completion bash > $(SHARE)/bash-completion/completions/avnode
	$(BIN)/avnode completion zsh > $(SHARE)/zsh/site-functions/_avnode
	$(BIN)/avnode completion fish > $(SHARE)/fish/vendor_completions.d/avnode.fish
	$(BIN)/avnode man $(SHARE)/man/man1
	for kind in system user; do \
	  sed 's|@BINDIR@|$(BINDIR)|g' configs/systemd/$$kind/avnode.service > $(UNITDIR)/$$kind/avnode.service || exit 1; \
	done
	install -m 0644 configs/systemd/sysusers.conf $(DESTDIR)$(PREFIX)/lib/sysusers.d/avnode.conf
	@echo "installed avnode in $(DESTDIR)$(BINDIR); as a service: configs/systemd/README.md"

uninstall:
	rm -f $(INSTALLED) $(SHARE)/man/man1/avnode.1 $(SHARE)/man/man1/avnode-*.1

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	cd sdk && $(GO) vet ./...
	cd sdk/examples/pinner && $(GO) vet ./...
	cd sdk/examples/chat && $(GO) vet ./...

test: build cross vet test-deps
	$(GO) test -race -count=1 -p 1 -parallel 3 -timeout 40m -skip '^TestWAN$$' $(RACE_PKGS)
	# TestWAN in a process of its own: it runs whole simulated networks in a
	# synctest bubble, and a bubble started right after the churn test's real
	# network, in the same process, crashed the runtime twice here (a timer
	# channel's SIGSEGV, a race-runtime CHECK).
	$(GO) test -race -count=1 -timeout 20m -run '^TestWAN$$' ./core/bench
	cd sdk && $(GO) test -race -count=1 -timeout 5m ./...
	cd sdk/examples/pinner && $(GO) test -race -count=1 ./...
	cd sdk/examples/chat && $(GO) test -race -count=1 ./...
	$(MAKE) fuzz

# The NAT traversal test (cmd/avnode) builds network namespaces with iproute2
# and iptables routers, the gateway test drives a headless Chromium, and the
# DNS responder's test asks it with dig and curl: install them from Debian's
# packages when missing.
test-deps:
	@if ! command -v iptables >/dev/null || ! command -v ip >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing iptables and iproute2 for the NAT traversal test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iptables iproute2 >/dev/null; \
	  else \
	    echo "note: the NAT traversal test needs root with iptables and iproute2; without network namespaces it skips"; \
	  fi; \
	fi
	@if ! command -v chromium >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium for the gateway's browser test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	  else \
	    echo "note: the gateway's browser test needs chromium; without it the test skips (and fails when CI is set)"; \
	  fi; \
	fi
	@if ! command -v dig >/dev/null || ! command -v curl >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing dig (bind9-dnsutils) and curl for the DNS responder's test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends bind9-dnsutils curl >/dev/null; \
	  else \
	    echo "note: the DNS responder's test needs dig (bind9-dnsutils) and curl; without them it skips (and fails when CI is set)"; \
	  fi; \
	fi

# The reliability matrix at full size (README, "Tests"): with AVNODE_TEST_LONG=1
# the churn line runs on 100 nodes and the datastore survives a hundred kill -9s;
# then every decoder is fuzzed for two minutes.
LONG_TESTS := 'Survive|Kill9|Flood|Mutated'
test-long: build
	AVNODE_TEST_LONG=1 $(GO) test -race -count=1 -p 1 -timeout 60m -run $(LONG_TESTS) ./core/...
	$(MAKE) fuzz FUZZTIME=2m

# Each fuzz target runs on its own: go test accepts one -fuzz pattern at a time.
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for target in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$target ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

# Regenerates the committed protobuf code (needs protoc and protoc-gen-go v1.36.12:
# apt-get install protobuf-compiler; go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12;
# and protoc-gen-go-grpc v1.6.2 for the plugin protocol).
proto:
	protoc --proto_path=. --go_out=. --go_opt=module=github.com/avnode/avnode core/names/pb/names.proto
	cd sdk && protoc --proto_path=. --go_out=. --go_opt=module=github.com/avnode/avnode/sdk \
	  --go-grpc_out=. --go-grpc_opt=module=github.com/avnode/avnode/sdk pluginpb/plugin.proto

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN)
