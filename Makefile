# punchclock — see README.md. The two commands a newcomer needs:
#   make demo   a simulated terminal: agent + virtual readers + broker
#   make test   every test, with -race (installs mosquitto and nats-server first if missing)

GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
BIN     := bin

.PHONY: all build demo test setup vet fmt fuzz bench chaos cross clean

all: build

build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/punchclock ./cmd/punchclock
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/punchsim ./cmd/punchsim

demo: build
	$(BIN)/punchsim demo -agent $(BIN)/punchclock

# setup installs what the integration tests need (Debian's mosquitto).
setup:
	@scripts/setup.sh

test: setup
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) test -race -count=1 -timeout 20m ./...

# chaos runs the fault suite's long form (docs/reliability.md): hundreds of
# kill -9 cycles, minutes of network faults, broker restarts, three brokers.
# `make test` runs its short form.
chaos: setup
	PUNCHCLOCK_CHAOS=long $(GO) test -race -count=1 -timeout 60m -v ./internal/chaos
	PUNCHCLOCK_CHAOS=long $(GO) test -count=1 -timeout 20m -run 'PowerCut' -v ./internal/lazyfs

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzFramer -fuzztime 30s ./reader/rdm6300

# bench measures the agent against this machine's own limits in one run and
# prints the table (docs/performance.md); the report is also kept in bin/.
bench: setup build cross
	$(BIN)/punchsim bench -agent $(BIN)/punchclock -o $(BIN)/bench.md

cross:
	scripts/cross-build.sh $(VERSION)

clean:
	rm -rf $(BIN)

# release builds the stripped, stamped binaries of every terminal into
# dist/ and fails if the armv6 one reaches 10 MiB; deb also packages them
# (nfpm, packaging/nfpm.yaml). See docs/packaging.md.
.PHONY: release deb
release:
	scripts/build-release.sh $(VERSION)

deb:
	scripts/build-release.sh -deb $(VERSION)
