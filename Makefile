# moqgate build and test plumbing.
#
#   make run            go run ./cmd/moqgate (pass flags with ARGS="serve --listen :4443")
#   make build          static binary in bin/moqgate
#   make test           install missing test peers, then vet, gofmt check, go test
#   make test-race      the same with the race detector (GOTESTFLAGS=-race)
#   make deps           only install what the tests need (ffmpeg, chromium, srt-tools, web/)
#   make ui-bundle      rebuild the committed player bundles in internal/ui/assets/vendor
#   make fuzz           fuzz every Fuzz target for FUZZTIME each (go test already runs the seeds)
#   make docker         docker build -t moqgate .

GO           ?= go
ARGS         ?=
GOTESTFLAGS  ?=
TEST_TIMEOUT ?= 20m
FUZZTIME     ?= 30s
PKGS         ?= ./...

# Go files to check with gofmt: everything but web/, .git and testdata.
GOFILES = $(shell find . \( -path ./web -o -path ./.git -o -name testdata \) -prune -o -name '*.go' -print)

.PHONY: all run build test test-race deps system-deps web ui-bundle ui-bundle-check vet fmt-check go-test fuzz docker clean

all: build

run:
	$(GO) run ./cmd/moqgate $(ARGS)

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/moqgate ./cmd/moqgate

test: deps vet fmt-check ui-bundle-check go-test

test-race:
	$(MAKE) test GOTESTFLAGS=-race

deps: system-deps web

# ffmpeg, Chromium and srt-tools (srt-live-transmit, the reference libsrt)
# for the interop tests, curl for the README's examples:
# installed with apt when missing and running as root; otherwise the tests
# that need them skip (or fail when CI=true).
system-deps:
	@missing=""; \
	command -v ffmpeg >/dev/null 2>&1 || missing="$$missing ffmpeg"; \
	command -v ffprobe >/dev/null 2>&1 || missing="$$missing ffprobe"; \
	command -v curl >/dev/null 2>&1 || missing="$$missing curl"; \
	command -v srt-live-transmit >/dev/null 2>&1 || missing="$$missing srt-tools"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing ffmpeg chromium curl srt-tools (missing:$$missing)"; \
		apt-get -o DPkg::Lock::Timeout=600 update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q ffmpeg chromium curl srt-tools; \
	else \
		echo "warning: missing$$missing; run as root: apt-get install -y ffmpeg chromium curl srt-tools" >&2; \
	fi

# web/: npm ci when the lock file is newer than the install, then the bundles.
web: web/dist/.built

web/node_modules/.package-lock.json: web/package.json web/package-lock.json
	npm ci --prefix web --no-audit --no-fund
	@touch $@

web/dist/.built: web/node_modules/.package-lock.json web/build.mjs $(wildcard web/src/*) $(wildcard web/pages/*)
	npm run --prefix web build
	@touch $@

# The players the embedded pages use (@moq/watch, hls.js), bundled from
# web/package-lock.json and committed so that `go run` needs no npm step.
UI_VENDOR = internal/ui/assets/vendor

ui-bundle: web/node_modules/.package-lock.json
	node web/ui-bundle.mjs $(UI_VENDOR)

# Fails when the committed bundles differ from what ui-bundle makes now
# (esbuild's output is deterministic).
ui-bundle-check: web/node_modules/.package-lock.json
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	node web/ui-bundle.mjs "$$tmp" >/dev/null && \
	if ! diff -r -q "$$tmp" $(UI_VENDOR); then \
		echo "$(UI_VENDOR) is stale: run make ui-bundle and commit it" >&2; exit 1; fi

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l $(GOFILES)); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

go-test:
	$(GO) test $(GOTESTFLAGS) -timeout $(TEST_TIMEOUT) $(PKGS)

fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$f"; \
			$(GO) test $$pkg -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME); \
		done; \
	done

docker:
	docker build -t moqgate .

clean:
	rm -rf bin web/dist
