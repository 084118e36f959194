# spuff — see README.md. `make demo` and `make test` work on a fresh Debian
# machine: `make deps` installs what they need, cached under ~/.cache/spuff.

SHELL        := /bin/bash
GO           ?= go
CACHE        ?= $(HOME)/.cache/spuff
BIN          := bin
VERSION      ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS      := -s -w -X main.version=$(VERSION) -X github.com/spuff-dev/spuff/app/cli.Version=$(VERSION) -X github.com/spuff-dev/spuff/guest/guestcmd.Version=$(VERSION)
STATICCHECK  := $(CACHE)/bin/staticcheck
GUEST_CMDS   := ./guest/cmd/spuff-guest ./guest/cmd/docker-credential-spuff
HOST_CMDS    := ./app/cmd/spuff-app ./app/cmd/spuff ./app/cmd/spuff-cloud
FUZZTIME     ?= 60s
# Packages that build without cgo on darwin (everything but the cgo-only files).
DARWIN_PKGS  := ./...

export PATH := $(CACHE)/bin:$(PATH)

.PHONY: all build build-host build-guest deps check fmt vet staticcheck vet-darwin test test-short fuzz fuzz-short bench demo clean

all: build

build: build-host build-guest

# On Linux the host binaries need no cgo (tray, notifications and the Secret
# Service speak D-Bus in Go); without it spuff-app maps no libc and is 1.7 MB
# smaller in RSS. Go's own resolver then names hosts: an ssh:// shed known
# only by mDNS (.local) or another NSS module needs `make build HOST_CGO=`.
# macOS keeps Go's default (cgo: the tray, Touch ID and the keychain).
HOST_CGO     ?= $(if $(filter linux,$(shell $(GO) env GOOS)),CGO_ENABLED=0)

build-host:
	@mkdir -p $(BIN)
	$(HOST_CGO) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ $(HOST_CMDS)

build-guest:
	@for arch in amd64 arm64; do \
	  mkdir -p $(BIN)/linux-$$arch; \
	  echo "guest linux/$$arch"; \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/linux-$$arch/ $(GUEST_CMDS) || exit 1; \
	done

# deps installs the real peers the tests talk to (idempotent, cached).
deps:
	@for s in scripts/setup-*.sh; do echo "== $$s"; bash "$$s" || exit 1; done


fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

vet-darwin:
	GOOS=darwin CGO_ENABLED=0 $(GO) vet $(DARWIN_PKGS)

# staticcheck's one pin is in scripts/lib.sh; setup-go-tools.sh rebuilds on a new pin.
staticcheck:
	@bash scripts/setup-go-tools.sh
	$(STATICCHECK) ./...

# test: the whole suite against real peers, with a short fuzz pass.
test: deps
	$(GO) build ./... && CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build $(GUEST_CMDS)
	$(GO) test -count=1 -timeout 25m ./...
	$(MAKE) --no-print-directory fuzz-short

check: fmt vet vet-darwin staticcheck test

# Every fuzz target, FUZZTIME each. fuzz-short, run by `make test`, gives
# each target a fixed number of inputs rather than a duration: see
# scripts/fuzz.sh for why a duration can flake on this Go release.
fuzz:
	@scripts/fuzz.sh $(FUZZTIME)

fuzz-short:
	@scripts/fuzz.sh 20000x

# bench: every figure beside its peer, measured in the same run. The
# end-to-end ones (./test) run the real processes; the package ones show
# where the time goes.
BENCH_PKGS := ./app/broker ./app/audit ./app/approval ./app/keychain ./helpers/sshkeys ./helpers/awssts ./helpers/dockercreds ./guest/sshagent ./guest/awsendpoint ./provisioning/qemu
bench: deps
	@bash scripts/setup-aws.sh bench
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./test/
	$(GO) test -run '^$$' -bench . -timeout 30m $(BENCH_PKGS)

demo: deps build
	@scripts/demo.sh

clean:
	rm -rf $(BIN)
