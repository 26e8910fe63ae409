package main

import (
	"os"
	"strings"
	"testing"
)

// TestSmokeSQLite builds the harness and runs `bench -smoke -sqlite only`:
// a 4 MB database, 8 s of commits under rewind watch. Its tables must be
// there and filled, every captured version must pass the check, and no
// commit may go unstored; it asserts no speed.
func TestSmokeSQLite(t *testing.T) {
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip("runs rewind watch under load; skipped with -short")
	}
	out := runSmokeSection(t, "sqlite")
	tables := parseTables(out)
	tg, ok := tables["### SQLite: targets (issue 13)"]
	if !ok {
		t.Fatalf("no targets table")
	}
	rows := map[string]bool{}
	for row, cells := range tg.rows {
		rows[row] = true
		if cells["measured"] == "" {
			t.Errorf("target %q is not measured", row)
		}
	}
	integrity := "every captured version passes integrity_check: 100%"
	if c := tg.rows[integrity]; c["met"] != "yes" {
		t.Errorf("not every captured version passed: %q", c["measured"])
	}
	raw, ok := tables["### SQLite: raw figures"]
	if !ok {
		t.Fatalf("no raw figures")
	}
	for _, row := range []string{"database size", "RPO p50 / p99 / max", "commits never stored", "versions failing the check"} {
		if v := raw.rows[row]["rewind"]; v == "" {
			t.Errorf("raw figure %q is empty", row)
		}
	}
	if v := raw.rows["commits never stored"]["rewind"]; v != "0" {
		t.Errorf("commits never stored: %s", v)
	}
}

// TestSpliceSQLite: the SQLite section replaces its old self, and comes
// before the continuous-protection section when new.
func TestSpliceSQLite(t *testing.T) {
	doc := "# B\n\n" + pgTitle + "\n\npg\n\n" + cpTitle + "\n\ncp\n\n## Reproduce\n\nr\n"
	got := spliceTitled(doc, sqliteTitle, "\n"+sqliteTitle+"\n\nnew\n")
	want := "# B\n\n" + pgTitle + "\n\npg\n\n" + sqliteTitle + "\n\nnew\n\n" + cpTitle + "\n\ncp\n\n## Reproduce\n\nr\n"
	if got != want {
		t.Fatalf("added:\n%s\nwant:\n%s", got, want)
	}
	again := spliceTitled(got, sqliteTitle, sqliteTitle+"\n\nnewer\n")
	if !strings.Contains(again, sqliteTitle+"\n\nnewer\n\n"+cpTitle) || strings.Contains(again, "\nnew\n") {
		t.Fatalf("replaced:\n%s", again)
	}
}
