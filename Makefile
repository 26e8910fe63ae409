# rewind: the targets a developer and CI use.
GO ?= go

.PHONY: build test bench bench-smoke bench-smoke-pg fuzz

# build makes a static binary (no cgo: rewind needs none), so the same
# file runs on any Linux of the architecture and inside the rescue image
# (rewind rescue build, docs/RECOVERY.md).
build:
	CGO_ENABLED=0 $(GO) build -o bin/rewind ./cmd/rewind

# test installs what the tests need (see scripts/test-deps.sh; the SMTP
# server and promtool of the notification and metrics tests come from
# scripts/smtp.sh and scripts/promtool.sh, PostgreSQL 15 and pgBackRest
# from scripts/postgres.sh, MariaDB 10.11 from scripts/mariadb.sh, QEMU from scripts/qemu.sh), runs every
# test, then every fuzz target for TEST_FUZZTIME each (scripts/fuzz.sh finds
# them, so new targets run without being listed here). A fuzz failure fails
# the target.
TEST_FUZZTIME ?= 3s
test:
	bash scripts/test-deps.sh
	bash scripts/minio.sh
	bash scripts/postgres.sh
	bash scripts/mariadb.sh
	bash scripts/fuse.sh
	bash scripts/qemu.sh
	bash scripts/recovery.sh
	bash scripts/smtp.sh
	bash scripts/promtool.sh
	$(GO) test -count=1 -timeout 30m ./...
	GO="$(GO)" FUZZTIME=$(TEST_FUZZTIME) bash scripts/fuzz.sh

# bench runs the comparison against restic and borg and rewrites BENCHMARKS.md.
bench:
	$(GO) run ./bench $(BENCHFLAGS)

bench-smoke:
	$(GO) run ./bench -smoke

# bench-smoke-pg runs the PostgreSQL section alone at pgbench scale 1.
bench-smoke-pg:
	$(GO) run ./bench -smoke -pg only

.PHONY: bench-smoke-mysql

# bench-smoke-mysql runs the MariaDB section alone on 8 MB, 10 s of writes.
bench-smoke-mysql:
	$(GO) run ./bench -smoke -mysql only

.PHONY: bench-mount bench-images

# bench-mount and bench-images run the mount and image sections of issue
# 14 alone (root; FUSE, restic) and rewrite their sections of BENCHMARKS.md.
bench-mount:
	$(GO) run ./bench -mount only

bench-images:
	$(GO) run ./bench -images only

.PHONY: bench-drill

# bench-drill runs the bare-metal recovery section of issue 15 alone (root,
# QEMU: drill, recover and a plain restore of the tests' server) and
# rewrites its section of BENCHMARKS.md.
bench-drill:
	$(GO) run ./bench -drill only

# fuzz runs every fuzz target for FUZZTIME each, for long runs: e.g.
# `make fuzz FUZZTIME=10m`. Seed corpora are in each package's
# testdata/fuzz/<Target>; a failing input is written there too.
FUZZTIME ?= 30s

fuzz:
	GO="$(GO)" FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh
