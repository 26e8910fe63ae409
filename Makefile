# rewind: the targets a developer and CI use.
GO ?= go

.PHONY: build test bench bench-smoke fuzz

build:
	$(GO) build -o bin/rewind ./cmd/rewind

# test installs what the tests need (see scripts/test-deps.sh) and runs every test.
test:
	bash scripts/test-deps.sh
	$(GO) test -count=1 ./...

# bench runs the comparison against restic and borg and rewrites BENCHMARKS.md.
bench:
	$(GO) run ./bench $(BENCHFLAGS)

bench-smoke:
	$(GO) run ./bench -smoke
