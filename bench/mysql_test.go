package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSmokeMySQL runs the MariaDB section alone on a tiny database
// (`bench -smoke -mysql only`: 8 MB, 10 s of writes at 50 transactions/s):
// the peer through every step, and rewind's commands where this rewind has
// them. Any step that errors fails it: the harness exits non-zero when a
// peer step or a restore check fails, and a rewind command that exists but
// fails is reported "not run: failed", which fails here. A rewind without
// the mysql commands yet is let through ("not run: this rewind has no").
// It checks the tables are there and filled, never a speed. Without
// MariaDB or restic it skips, except on CI (CI=true), where it fails.
func TestSmokeMySQL(t *testing.T) {
	ci := os.Getenv("CI") == "true"
	if err := checkMyTools(); err != nil {
		if ci {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	if testing.Short() && !ci {
		t.Skip("runs MariaDB, mariabackup and restic; skipped with -short")
	}
	out := runSmokeSection(t, "mysql")
	if !strings.Contains(out, myTitle) {
		t.Fatalf("no section %q", myTitle)
	}
	tables := parseTables(out)
	targets, ok := tables["### MariaDB: targets (issue 13)"]
	if !ok {
		t.Fatal("no targets table")
	}
	for _, what := range []string{myTargetBackup, myTargetRestore} {
		cells, ok := targets.rows[what]
		if !ok {
			t.Errorf("the targets table has no row %q", what)
			continue
		}
		if v := cells["peer"]; v == "" || v == "–" {
			t.Errorf("row %q: the peer was not measured", what)
		}
		checkRewindCell(t, what, cells)
	}
	if cells, ok := targets.rows[myTargetRPO]; !ok {
		t.Errorf("the targets table has no row %q", myTargetRPO)
	} else {
		checkRewindCell(t, myTargetRPO, cells)
		if cells["peer"] != "–" {
			t.Errorf("RPO row: the peer has %q, want – (rewind only)", cells["peer"])
		}
	}
	raw, ok := tables["### MariaDB: raw figures"]
	if !ok {
		t.Fatal("no raw figures table")
	}
	for _, row := range []string{"backup: wall (CPU)", "backup: phases", "repository after the backup", "restore to T: wall (CPU of the tools)",
		"restore to T: phases", "restored database checked against T"} {
		if v := raw.rows[row]["peer"]; v == "" || v == "–" {
			t.Errorf("raw figures, row %q: the peer's cell is %q", row, v)
		}
	}
}

// checkRewindCell: a rewind measure is either filled and judged, or not
// run because this rewind lacks the command; a failure is an error.
func checkRewindCell(t *testing.T, what string, cells map[string]string) {
	t.Helper()
	met := cells["met"]
	switch {
	case strings.Contains(met, "failed"):
		t.Errorf("row %q: rewind failed: %s", what, met)
	case strings.HasPrefix(met, "not run"):
		t.Logf("row %q: %s", what, met)
	case cells["rewind"] == "" || cells["rewind"] == "–":
		t.Errorf("row %q is judged (%q) without a rewind figure", what, met)
	}
}

// TestSpliceMySQL: the section replaces its old self, and without one goes
// after the PostgreSQL section, before the continuous-protection one.
func TestSpliceMySQL(t *testing.T) {
	doc := "# B\n\n" + pgTitle + "\n\npg\n\n" + myTitle + "\n\nold\n\n" + cpTitle + "\n\ncp\n"
	got := spliceTitled(doc, myTitle, "\n"+myTitle+"\n\nnew\n")
	if want := "# B\n\n" + pgTitle + "\n\npg\n\n" + myTitle + "\n\nnew\n\n" + cpTitle + "\n\ncp\n"; got != want {
		t.Errorf("replace:\n%q\nwant\n%q", got, want)
	}
	none := "# B\n\n" + pgTitle + "\n\npg\n\n" + cpTitle + "\n\ncp\n"
	got = spliceTitled(none, myTitle, myTitle+"\n\nnew\n")
	if want := "# B\n\n" + pgTitle + "\n\npg\n\n" + myTitle + "\n\nnew\n\n" + cpTitle + "\n\ncp\n"; got != want {
		t.Errorf("insert:\n%q\nwant\n%q", got, want)
	}
	if titledSection(none, myTitle) != "" {
		t.Error("a section found where there is none")
	}
}

// TestMyLags: a commit's RPO is the time to the first store covering it,
// by GTID (within its domain) or by binlog file and position; commits no
// store covers are counted, and a partial last line is left out.
func TestMyLags(t *testing.T) {
	p := filepath.Join(t.TempDir(), "stats.jsonl")
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	lines := []string{
		`{"time":"2026-12-07T10:00:00.100Z","gtid":"0-1-5","file":"mysql-bin.000001","pos":1000}`,
		`{"time":"2026-12-07T10:00:00.600Z","gtid_pos":"0-1-9,1-1-3","file":"mysql-bin.000001","pos":2000}`,
		`{"file":"mysql-bin.000002","end":400,"time":"2026-12-07T10:00:01.000Z","bytes":10}`,
		`{"time":"2026-12-07T10:00:01.5`,
	}
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	stores, err := readMyStats(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(stores) != 3 {
		t.Fatalf("read %d stores, want 3 (the cut line left out)", len(stores))
	}
	commits := []myCommit{
		{Time: t0, GTID: "0-1-4", File: "mysql-bin.000001", Pos: 900},                             // store 1: 100 ms
		{Time: t0.Add(200 * time.Millisecond), GTID: "0-1-7"},                                     // store 2: 400 ms
		{Time: t0.Add(700 * time.Millisecond), GTID: "2-1-1", File: "mysql-bin.000002", Pos: 300}, // no domain 2: by position, store 3: 300 ms
		{Time: t0.Add(800 * time.Millisecond), File: "mysql-bin.000002", Pos: 500},                // never
	}
	lags, missing := myLags(stores, commits)
	if missing != 1 {
		t.Errorf("missing = %d, want 1", missing)
	}
	want := []time.Duration{100 * time.Millisecond, 300 * time.Millisecond, 400 * time.Millisecond}
	if len(lags) != len(want) {
		t.Fatalf("lags = %v, want %v", lags, want)
	}
	for i := range want {
		if lags[i] != want[i] {
			t.Errorf("lags = %v, want %v", lags, want)
			break
		}
	}
	if percentile(lags, 100) != 400*time.Millisecond || percentile(lags, 50) != 300*time.Millisecond {
		t.Errorf("percentiles of %v wrong", lags)
	}
}

// FuzzMyStats: any --stats file content is read without a panic, and the
// lags computed from it are never negative.
func FuzzMyStats(f *testing.F) {
	f.Add([]byte(`{"file":"mysql-bin.000001","end":400,"gtid":"0-1-7","time":"2026-12-07T10:00:01Z","bytes":10}` + "\n"))
	f.Add([]byte(`{"gtid_pos":"0-1-9,1-1-3,x-y-z,,5-5","time":"2026-12-07T10:00:01.5Z"}`))
	f.Add([]byte(`{"time":"bad"}` + "\n" + `{"file":7,"end":"x"}`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "stats.jsonl")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		stores, err := readMyStats(p)
		if err != nil {
			return
		}
		t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
		lags, _ := myLags(stores, []myCommit{{Time: t0, GTID: "0-1-5", File: "mysql-bin.000001", Pos: 100}, {Time: t0, GTID: "bad"}})
		for _, l := range lags {
			if l < 0 {
				t.Fatalf("negative lag %v", l)
			}
		}
	})
}
