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

# fuzz runs every fuzz target for FUZZTIME each (seed corpora in testdata/
# run in `make test` anyway).
FUZZTIME ?= 30s
FUZZ_TARGETS = \
	./internal/chunker:FuzzChunker \
	./internal/crypto:FuzzOpen \
	./internal/crypto:FuzzParseKeyFile \
	./internal/index:FuzzDecode \
	./internal/pack:FuzzParseHeader \
	./internal/repository:FuzzDecodeConfig \
	./internal/snapshot:FuzzSnapshotJSON \
	./internal/tree:FuzzTree

fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name ($$pkg)"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done
