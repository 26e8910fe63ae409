package sqlite

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// openDB opens (creating) a database with the real SQLite driver, in the
// journal mode given ("wal" or "delete").
func openDB(t testing.TB, path, journal string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode("+journal+")")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mustExec(t testing.TB, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// makeDB writes a database of n rows, each with a sequence number and
// some text, and returns its path; the connection stays open.
func makeDB(t testing.TB, dir, name, journal string, n int) (string, *sql.DB) {
	t.Helper()
	p := filepath.Join(dir, name)
	db := openDB(t, p, journal)
	mustExec(t, db, "CREATE TABLE rows (seq INTEGER PRIMARY KEY, body TEXT)")
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		if _, err := tx.Exec("INSERT INTO rows VALUES (?, ?)", i, strings.Repeat("x", 200)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return p, db
}

// readCopy opens a copy immutable and returns count(*) and max(seq) of
// rows, failing the test when integrity_check does not say ok.
func readCopy(t testing.TB, path string) (count, max int64) {
	t.Helper()
	db, err := sql.Open("sqlite", fileURI(path, "mode=ro&immutable=1"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRowContext(context.Background(), "PRAGMA integrity_check").Scan(&res); err != nil || res != "ok" {
		t.Fatalf("integrity_check of %s: %q %v", path, res, err)
	}
	if err := db.QueryRow("SELECT count(*), coalesce(max(seq),0) FROM rows").Scan(&count, &max); err != nil {
		t.Fatal(err)
	}
	return count, max
}

// listDir names the entries of dir.
func listDir(t testing.TB, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}
