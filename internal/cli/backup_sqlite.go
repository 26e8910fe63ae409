package cli

import (
	"fmt"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/sqlite"
	"github.com/rewind-backup/rewind/internal/ui"
	"github.com/spf13/pflag"
)

// addSQLiteFlag adds --sqlite, shared by backup and watch.
func addSQLiteFlag(f *pflag.FlagSet, v *string) {
	f.StringVar(v, "sqlite", sqlite.ModeAuto, "how SQLite databases are stored: `auto` (a consistent version, read inside a read transaction; their -wal, -shm and -journal left out) or raw (their bytes as they are)")
}

func checkSQLiteFlag(v string) error {
	switch v {
	case sqlite.ModeAuto, sqlite.ModeRaw:
		return nil
	}
	return fmt.Errorf("--sqlite %q: give auto (capture SQLite databases consistently, the default) or raw (store their bytes as they are)", v)
}

// sqliteSummary is what backup --json's summary says of SQLite databases
// besides the snapshot summary's sqlite_captured (docs/JSON.md).
type sqliteSummary struct {
	// SQLiteSiblingsLeftOut counts -wal, -shm and -journal files of
	// captured databases, which are not stored.
	SQLiteSiblingsLeftOut int64                `json:"sqlite_siblings_left_out"`
	SQLiteStoredRaw       []snapshot.FileError `json:"sqlite_stored_raw,omitempty"`
}

func newSQLiteSummary(a *archiver.Archiver) sqliteSummary {
	return sqliteSummary{SQLiteSiblingsLeftOut: a.SQLiteSiblingsLeftOut(), SQLiteStoredRaw: a.SQLiteRawFiles()}
}

// printSQLiteSummary says, in backup's text summary, how many databases
// were captured and which SQLite-headed files were stored as bytes.
func printSQLiteSummary(g *globals, a *archiver.Archiver) {
	for _, r := range a.SQLiteRawFiles() {
		g.ui.Warnf("warning: %s has a SQLite header but SQLite cannot read it; stored as a plain file: %s\n", shownPath(r.Path), r.Error)
	}
	n := a.SQLiteCaptured()
	if n == 0 {
		return
	}
	g.ui.Printf("SQLite:      %s captured consistently", ui.Count(int64(n), "database", "databases"))
	if k := a.SQLiteSiblingsLeftOut(); k > 0 {
		g.ui.Printf("; %s left out (-wal, -shm, -journal)", ui.Count(k, "companion file", "companion files"))
	}
	g.ui.Printf("\n")
}
