package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSmoke builds the harness and runs `bench -smoke` end to end, as
// `make bench-smoke` does: tiny data, one round, rewind, restic and borg,
// then a short continuous-protection run (2,000 files, 3 s at 10 and 100
// operations per second).
// It checks that every table and row is there and filled; it asserts no
// speed. Without restic or borg it skips, except on CI (CI=true), where it
// fails. With RWBENCH_REWIND_OPTIONAL=1, a rewind that does not build or
// fails is let through (its cells are empty); without it rewind must work.
// RWBENCH_REWIND=/path/to/rewind runs a prebuilt rewind instead of
// building ./cmd/rewind.
func TestSmoke(t *testing.T) {
	ci := os.Getenv("CI") == "true"
	for _, bin := range []string{"restic", "borg"} {
		if _, err := exec.LookPath(bin); err != nil {
			if ci {
				t.Fatalf("%s is missing on CI (scripts/test-deps.sh installs it): %v", bin, err)
			}
			t.Skipf("%s is not installed", bin)
		}
	}
	if testing.Short() && !ci {
		t.Skip("runs every tool; skipped with -short")
	}
	if _, err := os.Stat("/dev/shm"); err != nil {
		t.Fatalf("the harness needs tmpfs at /dev/shm: %v", err)
	}
	optional := os.Getenv(optionalEnv) == "1"

	bench := filepath.Join(t.TempDir(), "bench")
	if out, err := exec.Command("go", "build", "-o", bench, ".").CombinedOutput(); err != nil {
		t.Fatalf("build the harness: %v\n%s", err, out)
	}
	var stdout, stderr bytes.Buffer
	args := []string{"-smoke"}
	if bin := os.Getenv("RWBENCH_REWIND"); bin != "" {
		args = append(args, "-rewind", bin) // a prebuilt rewind instead of ./cmd/rewind
	}
	cmd := exec.Command(bench, args...)
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("bench -smoke: %v\nstderr:\n%s", err, tail(stderr.String(), 60))
	}
	out := stdout.String()
	t.Logf("bench -smoke printed:\n%s", out)

	tables := parseTables(out)
	tools := []string{"rewind", "restic", "borg"}
	if optional && !strings.Contains(tables["### Time: wall (user+sys CPU), median of 1 round(s)"].header, "rewind") {
		t.Log("rewind left out of the run (RWBENCH_REWIND_OPTIONAL=1)")
		tools = []string{"restic", "borg"}
	}
	check := func(title string, rows []string, columns []string) {
		t.Helper()
		tb, ok := tables[title]
		if !ok {
			t.Errorf("no table %q", title)
			return
		}
		for _, row := range rows {
			cells, ok := tb.rows[row]
			if !ok {
				t.Errorf("table %q has no row %q", title, row)
				continue
			}
			for _, col := range columns {
				v, ok := cells[col]
				switch {
				case !ok:
					t.Errorf("table %q has no column %q", title, col)
				case v == "–" && !(optional && strings.Contains(col, "rewind")):
					t.Errorf("table %q, row %q, column %q is empty", title, row, col)
				}
			}
		}
	}
	ratioCols := func() []string {
		if tools[0] != "rewind" {
			return nil
		}
		return []string{"rewind/restic", "rewind/borg"}
	}
	withRatios := append(append([]string{}, tools...), ratioCols()...)
	check("### Time: wall (user+sys CPU), median of 1 round(s)", toolSteps, withRatios)
	check("### Peak RSS", toolSteps, withRatios)
	check("### Repository on disk", []string{sizeInitial, sizeUnchanged, sizeIncremental, bytesAdded}, withRatios)
	check("### Repository on disk", []string{"added / changed"}, tools)
	check("### Machine limits (2 workers where parallel)", limitSteps, []string{"wall (CPU)", "peak RSS"})
	if len(tools) == 3 {
		check("### Machine limits (2 workers where parallel)", limitSteps, []string{"rewind / limit"})
	}
	if !strings.Contains(out, "## Targets (issue 3)") || !strings.Contains(out, "| tree | initial |") {
		t.Error("no targets table")
	}
	if tools[0] == "rewind" {
		check("### Continuous protection: delay from write to snapshot", []string{"10 ops/s", "100 ops/s"},
			[]string{"delay p50", "p99", "max", "not captured", "watcher CPU", "stored per op"})
		check("### Continuous protection: targets (issue 6)", []string{"delay p99 ≤ 3 s at 100 ops/s", "every change captured"},
			[]string{"measured", "met"})
	}
	if strings.Contains(out, "# Benchmarks") {
		t.Error("smoke printed the BENCHMARKS.md document; it must print the tables only")
	}
}

// table is one parsed Markdown table: its header line and, by first cell,
// each row's cells by column name.
type table struct {
	header string
	rows   map[string]map[string]string
}

// parseTables reads every Markdown table under a "### " heading. A title
// seen twice (one table per set) keeps the first.
func parseTables(md string) map[string]table {
	tables := map[string]table{}
	var title string
	var cols []string
	for _, line := range strings.Split(md, "\n") {
		switch {
		case strings.HasPrefix(line, "#"):
			title, cols = line, nil
		case !strings.HasPrefix(line, "|") || title == "":
			cols = nil
		case strings.HasPrefix(line, "|---"):
		case cols == nil:
			cols = splitRow(line)
			if _, seen := tables[title]; !seen {
				tables[title] = table{header: line, rows: map[string]map[string]string{}}
			}
		default:
			cells := splitRow(line)
			row := map[string]string{}
			for i, c := range cells {
				if i < len(cols) {
					row[cols[i]] = c
				}
			}
			if tb := tables[title]; tb.rows != nil {
				if _, seen := tb.rows[cells[0]]; !seen {
					tb.rows[cells[0]] = row
				}
			}
		}
	}
	return tables
}

func splitRow(line string) []string {
	// An escaped \| inside a cell (a shell pipe in a code span) is not a
	// separator.
	const esc = "\x00"
	line = strings.ReplaceAll(line, `\|`, esc)
	parts := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
	for i := range parts {
		parts[i] = strings.ReplaceAll(parts[i], esc, `\|`)
	}
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestSmokePG runs the PostgreSQL section alone on a pgbench database of
// scale 1 (`bench -smoke -pg only`): both tools through every step, the
// restore to T checked by the harness. It checks that the targets and raw
// tables are there and filled, never a speed. Without PostgreSQL 15 or
// pgbackrest it skips, except on CI (CI=true), where it fails.
func TestSmokePG(t *testing.T) {
	ci := os.Getenv("CI") == "true"
	if _, err := checkPgTools("/usr/lib/postgresql/15/bin"); err != nil {
		if ci {
			t.Fatalf("%v", err)
		}
		t.Skip(err)
	}
	if testing.Short() && !ci {
		t.Skip("runs PostgreSQL and pgBackRest; skipped with -short")
	}
	out := runSmokeSection(t, "pg")
	if !strings.Contains(out, pgTitle) {
		t.Errorf("no section %q", pgTitle)
	}
	tables := parseTables(out)
	filled := func(title string, rows, cols []string) {
		t.Helper()
		tb, ok := tables[title]
		if !ok {
			t.Errorf("no table %q", title)
			return
		}
		for _, row := range rows {
			cells, ok := tb.rows[row]
			if !ok {
				t.Errorf("table %q has no row %q", title, row)
				continue
			}
			for _, col := range cols {
				if v, ok := cells[col]; !ok || v == "–" || v == "" {
					t.Errorf("table %q, row %q, column %q is empty", title, row, col)
				}
			}
		}
	}
	var measures []string
	for _, tg := range pgTargets {
		measures = append(measures, tg.what)
	}
	filled("### PostgreSQL: targets (issue 12)", measures, []string{"rewind", "pgBackRest", "rewind / pgBackRest", "met"})
	filled("### PostgreSQL: raw figures", []string{"full: wall (CPU)", "repository after the full", "incremental: wall (CPU)",
		"incremental: bytes added", "restore to T: wall (CPU of the tool)", "pgbench_history rows at T (checked in the restore)"},
		[]string{"rewind", "pgBackRest"})
	// The pg receive rows are measured (rewind only: pgBackRest's cells
	// are "–"), and their raw figures are there.
	tb := tables["### PostgreSQL: targets (issue 12)"]
	for _, row := range []string{pgRPOTitle, pgLossTitle} {
		cells, ok := tb.rows[row]
		if !ok {
			t.Errorf("the targets table has no row %q", row)
			continue
		}
		if v := cells["rewind"]; v == "" || v == "–" || strings.HasPrefix(cells["met"], "not measured") {
			t.Errorf("row %q is not measured: rewind %q, met %q", row, v, cells["met"])
		}
		if v := cells["pgBackRest"]; v != "–" {
			t.Errorf("row %q: pgBackRest has %q, want – (rewind only)", row, v)
		}
	}
	if cells := tb.rows[pgLossTitle]; !strings.HasPrefix(cells["rewind"], "0 of ") {
		t.Errorf("--synchronous lost acknowledged commits: %q", cells["rewind"])
	}
	filled("### PostgreSQL: `rewind pg receive` (rewind only)", []string{
		"RPO, asynchronous: commit to WAL stored, p50 / p99 / max",
		"RPO, `--synchronous`: commit to WAL stored, p50 / p99 / max",
		"loss: `pg restore --latest --start` until recovery's end",
	}, []string{"rewind"})
}

// TestSplicePG: the PostgreSQL section replaces its old self and leaves the
// file sets' sections alone; a document without one gets it before the
// notes.
func TestSplicePG(t *testing.T) {
	doc := "# Benchmarks\n\n## Set tree\n\ntree tables\n\n" + pgTitle + "\n\nold pg\n\n## Notes from the run\n\n- n\n\n## Reproduce\n\nr\n"
	got := spliceTitled(doc, pgTitle, "\n"+pgTitle+"\n\nnew pg\n")
	want := "# Benchmarks\n\n## Set tree\n\ntree tables\n\n" + pgTitle + "\n\nnew pg\n\n## Notes from the run\n\n- n\n\n## Reproduce\n\nr\n"
	if got != want {
		t.Errorf("replace:\n%q\nwant\n%q", got, want)
	}
	if sec := titledSection(doc, pgTitle); sec != pgTitle+"\n\nold pg\n\n" {
		t.Errorf("pgSection = %q", sec)
	}
	noPG := "# Benchmarks\n\n## Set tree\n\nt\n\n## Notes from the run\n\n- n\n"
	got = spliceTitled(noPG, pgTitle, pgTitle+"\n\nnew\n")
	if want := "# Benchmarks\n\n## Set tree\n\nt\n\n" + pgTitle + "\n\nnew\n\n## Notes from the run\n\n- n\n"; got != want {
		t.Errorf("insert:\n%q\nwant\n%q", got, want)
	}
	if titledSection(noPG, pgTitle) != "" {
		t.Error("a section found where there is none")
	}
}
