# Prometheus-style Makefile for veeam_failover_exporter.
GO          ?= go
GOFMT       ?= gofmt
STATICCHECK ?= $(shell $(GO) env GOPATH)/bin/staticcheck
BIN         ?= veeam_failover_exporter
TOOL        ?= veeam_failover_tool
PKGS        := ./...

# Build metadata stamped into every binary (see .promu.yml for promu builds).
# VERSION comes from the VERSION file; the rest from git when there is one.
VERSION    ?= $(shell cat VERSION)
REVISION   ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BRANCH     ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
BUILD_USER ?= $(shell id -un 2>/dev/null || echo unknown)@$(shell hostname 2>/dev/null || echo unknown)
BUILD_DATE ?= $(shell date -u +%Y%m%d-%H:%M:%S)
LDFLAGS    := -X github.com/prometheus/common/version.Version=$(VERSION) \
              -X github.com/prometheus/common/version.Revision=$(REVISION) \
              -X github.com/prometheus/common/version.Branch=$(BRANCH) \
              -X github.com/prometheus/common/version.BuildUser=$(BUILD_USER) \
              -X github.com/prometheus/common/version.BuildDate=$(BUILD_DATE)

# Platforms of `make crossbuild`, as in .promu.yml.
PLATFORMS ?= linux/amd64 linux/arm64 windows/amd64

# Docker image (`make docker`): built from source for the build's platform.
DOCKER_IMAGE ?= veeam-failover-exporter
DOCKER_TAG   ?= $(VERSION)

.PHONY: all build crossbuild docker test test-short lint fmt vet staticcheck bench demo fuzz \
        kubernetes-rules clean

all: lint build test

# The host's binaries: ./$(BIN) and the command-line tool ./$(TOOL).
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) .
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(TOOL) ./cmd/veeam_failover_tool

# One binary per platform in .build/<os>-<arch>/, each built for its platform.
crossbuild:
	@set -e; for p in $(PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; ext=; [ "$$os" = windows ] && ext=.exe; \
		echo ">> $$os/$$arch -> .build/$$os-$$arch/$(BIN)$$ext"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags "$(LDFLAGS)" \
			-o .build/$$os-$$arch/$(BIN)$$ext . ; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags "$(LDFLAGS)" \
			-o .build/$$os-$$arch/$(TOOL)$$ext ./cmd/veeam_failover_tool ; \
	done

docker:
	docker build --build-arg REVISION=$(REVISION) \
		--build-arg BRANCH=$(BRANCH) -t $(DOCKER_IMAGE):$(DOCKER_TAG) .

# The PrometheusRule of examples/kubernetes, generated from the shipped rules.
kubernetes-rules:
	./examples/kubernetes/generate-prometheusrule.sh > examples/kubernetes/prometheusrule.yaml

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

# Benchmark report (see bench/README.md).
bench:
	$(GO) run ./bench

demo: build
	./$(BIN) --demo

# Short fuzzing of every fuzz target (seconds each).
FUZZTIME ?= 10s
fuzz:
	./.ci/fuzz.sh $(FUZZTIME)

clean:
	rm -rf $(BIN) $(TOOL) .build bench/report.json
