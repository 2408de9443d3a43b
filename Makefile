# Prometheus-style Makefile for veeam_failover_exporter.
GO          ?= go
GOFMT       ?= gofmt
STATICCHECK ?= $(shell $(GO) env GOPATH)/bin/staticcheck
BIN         ?= veeam_failover_exporter
PKGS        := ./...

VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BRANCH   ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -X github.com/prometheus/common/version.Version=$(VERSION) \
            -X github.com/prometheus/common/version.Revision=$(REVISION) \
            -X github.com/prometheus/common/version.Branch=$(BRANCH) \
            -X github.com/prometheus/common/version.BuildUser=$(USER)@$(shell hostname)

.PHONY: all build test test-short lint fmt vet staticcheck bench demo fuzz clean

all: lint build test

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) .
	mkdir -p .build/linux-amd64 && cp $(BIN) .build/linux-amd64/$(BIN)

# The README's test command: every package, the end-to-end tests included.
test:
	$(GO) test -count=1 -timeout 30m $(PKGS)

test-short:
	$(GO) test -short -count=1 $(PKGS)

lint: fmt vet staticcheck

fmt:
	@out=$$($(GOFMT) -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

staticcheck:
	$(STATICCHECK) $(PKGS)

# Benchmark report (issue "Performance at service-provider scale").
bench:
	$(GO) run ./bench

demo: build
	./$(BIN) --demo

# Short fuzzing of every fuzz target (seconds each).
FUZZTIME ?= 10s
fuzz:
	./.ci/fuzz.sh $(FUZZTIME)

clean:
	rm -rf $(BIN) .build bench/report.json
