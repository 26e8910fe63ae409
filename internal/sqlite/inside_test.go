package sqlite_test

// Tests of SQLite databases inside backup and watch: the archiver with
// the Hook that the CLI gives it, on real files and a real SQLite writer.

import (
	"bytes"
	"context"
	"database/sql"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/restorer"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/sqlite"
	"github.com/rewind-backup/rewind/internal/testutil"
	"github.com/rewind-backup/rewind/internal/tree"
)

// Options is archiver.Options; auto gives it the hook of --sqlite=auto.
type Options = archiver.Options

// Changes is archiver.Changes.
type Changes = archiver.Changes

func newTestRepo(t testing.TB, dir string) *repository.Repository {
	t.Helper()
	ctx := context.Background()
	be, err := local.Create(ctx, filepath.Join(dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := repository.Init(ctx, be, []byte("sqlite inside test"), repository.InitOptions{KDF: crypto.TestKDFParams})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// backup runs one archiver over paths and returns the snapshot it stored
// and the archiver.
func backup(t testing.TB, r *repository.Repository, opt Options, paths ...string) (*snapshot.Snapshot, *archiver.Archiver) {
	t.Helper()
	a, err := archiver.New(r, opt)
	if err != nil {
		t.Fatal(err)
	}
	sn, err := a.Snapshot(context.Background(), paths)
	if err != nil {
		t.Fatalf("backup %q: %v", paths, err)
	}
	return sn, a
}

// auto returns opt with the hook backup --sqlite=auto gives (timeout 0:
// the default).
func auto(opt Options, timeout time.Duration) Options {
	opt.SQLite = sqlite.Hook(sqlite.ModeAuto, sqlite.Options{Timeout: timeout}, 0)
	return opt
}

func lookup(t testing.TB, r *repository.Repository, sn *snapshot.Snapshot, p string) *tree.Node {
	t.Helper()
	n, err := snapshot.Lookup(context.Background(), r, sn, p)
	if err != nil {
		t.Fatalf("lookup %s: %v", p, err)
	}
	return n
}

func content(t testing.TB, r *repository.Repository, n *tree.Node) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := restorer.WriteContent(context.Background(), r, n, &buf); err != nil {
		t.Fatalf("content of %q: %v", n.Name, err)
	}
	return buf.Bytes()
}

func writeFile(t testing.TB, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func randomBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func hasError(errs []snapshot.FileError, p string) bool {
	for _, e := range errs {
		if e.Path == p {
			return true
		}
	}
	return false
}

// sqliteVersion writes the database a snapshot holds at p, with whatever
// the snapshot holds beside it (a -wal, with --sqlite=raw), into a new
// folder, and checks it as testutil.CheckSQLiteVersion does.
func sqliteVersion(t *testing.T, r *repository.Repository, sn *snapshot.Snapshot, p string) (int64, error) {
	t.Helper()
	dir := t.TempDir()
	for _, s := range []string{"", "-wal", "-journal"} {
		n, err := snapshot.Lookup(context.Background(), r, sn, p+s)
		if err != nil {
			continue
		}
		writeFile(t, filepath.Join(dir, "db"+s), content(t, r, n))
	}
	return testutil.CheckSQLiteVersion(filepath.Join(dir, "db"))
}

// TestSQLiteBackupUnderLoad backs up a folder holding a database that a
// real SQLite writer commits to (and checkpoints, in WAL mode), again and
// again, each backup with the previous as parent. Every stored version
// passes integrity_check and holds exactly the first k commits, never a
// row rolled back; the -wal, -shm and -journal are never stored; and the
// versions move forward.
func TestSQLiteBackupUnderLoad(t *testing.T) {
	for _, wal := range []bool{true, false} {
		name := "rollback"
		if wal {
			name = "wal"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "src")
			writeFile(t, filepath.Join(src, "notes.txt"), []byte("beside the database\n"))
			db := filepath.Join(src, "app.db")
			w, err := testutil.StartSQLiteWriter(db, testutil.SQLiteWriterOptions{WAL: wal, CheckpointEvery: 50, Pad: 300, InitialRows: 2000})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Stop()
			r := newTestRepo(t, dir)
			var parent *snapshot.Snapshot
			var last int64
			inPlace := 0
			for i := range 8 {
				sn, a := backup(t, r, auto(Options{Parent: parent}, 0), src)
				if len(sn.Summary.Errors) > 0 {
					t.Fatalf("backup %d: errors %v", i, sn.Summary.Errors)
				}
				for _, s := range []string{"-wal", "-shm", "-journal"} {
					if _, err := snapshot.Lookup(context.Background(), r, sn, db+s); err == nil {
						t.Errorf("backup %d stored %s%s beside the captured database", i, db, s)
					}
				}
				if len(sn.SQLite) != 1 || sn.SQLite[0].Path != db || sn.SQLite[0].Source == nil {
					t.Fatalf("backup %d: sqlite records %+v", i, sn.SQLite)
				}
				if a.SQLiteCaptured() != 1 || sn.Summary.SQLiteCaptured != 1 {
					t.Errorf("backup %d captured %d databases, want 1 (it changed)", i, a.SQLiteCaptured())
				}
				k, err := sqliteVersion(t, r, sn, db)
				if err != nil {
					t.Fatalf("backup %d: the stored database: %v", i, err)
				}
				if c := w.Committed(); k > c {
					t.Fatalf("backup %d holds %d commits, but only %d had returned", i, k, c)
				}
				if k < last {
					t.Fatalf("backup %d holds %d commits, the one before %d", i, k, last)
				}
				last = k
				if n := lookup(t, r, sn, db); n.Flags != 0 {
					t.Errorf("backup %d: the database's node has flags %v", i, n.Flags)
				}
				if sn.SQLite[0].Method == sqlite.MethodReadTx {
					inPlace++
				}
				parent = sn
				time.Sleep(30 * time.Millisecond)
			}
			if inPlace == 0 {
				t.Errorf("no backup read the database in place (%s): all fell back to the backup API", sqlite.MethodReadTx)
			}
			n, err := w.Stop()
			if err != nil {
				t.Fatal(err)
			}
			if last == 0 || n < 20 {
				t.Fatalf("the writer made %d commits, the last backup held %d: too little load to test anything", n, last)
			}
			t.Logf("%d commits, the last backup held %d; %d of 8 read in place", n, last, inPlace)
		})
	}
}

// TestSQLiteIdleNotRecaptured: a database whose file and -wal are
// unchanged keeps the parent's copy, unread; a commit that only writes
// the -wal makes the next backup capture it again, with the new row.
func TestSQLiteIdleNotRecaptured(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(src, "idle.db")
	db, err := sql.Open("sqlite", "file:"+p+"?_pragma=journal_mode(wal)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	exec(t, db, "CREATE TABLE t(x)", "INSERT INTO t VALUES(1)")
	r := newTestRepo(t, dir)
	sn1, a1 := backup(t, r, auto(Options{}, 0), src)
	sn2, a2 := backup(t, r, auto(Options{Parent: sn1}, 0), src)
	if a1.SQLiteCaptured() != 1 || a2.SQLiteCaptured() != 0 {
		t.Fatalf("captured %d then %d, want 1 then 0 (idle)", a1.SQLiteCaptured(), a2.SQLiteCaptured())
	}
	if sn2.Summary.BytesRead != 0 {
		t.Errorf("the idle backup read %d bytes", sn2.Summary.BytesRead)
	}
	n1, n2 := lookup(t, r, sn1, p), lookup(t, r, sn2, p)
	if !equalChunks(n1.Content, n2.Content) || n1.Size != n2.Size {
		t.Errorf("the idle backup did not keep the parent's copy")
	}
	if len(sn2.SQLite) != 1 || sn2.SQLite[0].CapturedAt != sn1.SQLite[0].CapturedAt {
		t.Errorf("the idle backup's record is not the parent's: %+v", sn2.SQLite)
	}
	exec(t, db, "INSERT INTO t VALUES(2)")
	sn3, a3 := backup(t, r, auto(Options{Parent: sn2}, 0), src)
	if a3.SQLiteCaptured() != 1 {
		t.Fatalf("a commit to the -wal was not captured")
	}
	got := filepath.Join(t.TempDir(), "got.db")
	writeFile(t, got, content(t, r, lookup(t, r, sn3, p)))
	if n := countRows(t, got); n != 2 {
		t.Errorf("the new capture holds %d rows, want 2", n)
	}
	// With a partial backup (as watch makes) naming only the -wal, the
	// database beside it is looked at too.
	exec(t, db, "INSERT INTO t VALUES(3)")
	sn4, a4 := backup(t, r, auto(Options{Parent: sn3, Changes: &Changes{Paths: []string{p + "-wal"}}}, 0), src)
	if a4.SQLiteCaptured() != 1 {
		t.Fatalf("a partial backup naming the -wal did not capture the database")
	}
	writeFile(t, got, content(t, r, lookup(t, r, sn4, p)))
	if n := countRows(t, got); n != 3 {
		t.Errorf("the partial capture holds %d rows, want 3", n)
	}
	// A partial backup that does not look at the database keeps its
	// record.
	writeFile(t, filepath.Join(src, "other.txt"), []byte("x"))
	sn5, _ := backup(t, r, auto(Options{Parent: sn4, Changes: &Changes{Paths: []string{filepath.Join(src, "other.txt")}}}, 0), src)
	if len(sn5.SQLite) != 1 || sn5.SQLite[0].CapturedAt != sn4.SQLite[0].CapturedAt {
		t.Errorf("a partial backup lost the record of the database it kept: %+v", sn5.SQLite)
	}
}

func equalChunks(a, b []tree.Chunk) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func exec(t *testing.T, db *sql.DB, qs ...string) {
	t.Helper()
	for _, q := range qs {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func countRows(t *testing.T, p string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+p+"?mode=ro&immutable=1")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSQLiteBadInput: beside ordinary files, a file with a SQLite header
// and garbage after it, a database whose pages are scrambled (as an
// encrypted one with a plain header would be), and a -wal whose database
// is gone. The backup stores everything, each bad database as its plain
// bytes with a warning, and the lone -wal as a plain file.
func TestSQLiteBadInput(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	good := filepath.Join(src, "good.db")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	gdb, err := sql.Open("sqlite", "file:"+good)
	if err != nil {
		t.Fatal(err)
	}
	exec(t, gdb, "CREATE TABLE t(x)", "INSERT INTO t VALUES(1)")
	gdb.Close()
	real, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	garbage := append(append([]byte(nil), real[:100]...), randomBytes(3, 8192)...)
	scrambled := append(append([]byte(nil), real[:100]...), randomBytes(4, len(real)-100)...)
	files := map[string][]byte{
		"garbage.db":       garbage,
		"scrambled.db":     scrambled,
		"scrambled.db-wal": randomBytes(5, 4096),
		"orphan.db-wal":    randomBytes(6, 4096),
		"plain.txt":        []byte("plain\n"),
		"short.db":         real[:60],
	}
	for name, b := range files {
		writeFile(t, filepath.Join(src, name), b)
	}
	r := newTestRepo(t, dir)
	sn, a := backup(t, r, auto(Options{}, 0), src)
	if len(sn.Summary.Errors) > 0 {
		t.Errorf("errors: %v", sn.Summary.Errors)
	}
	for name, want := range files {
		if got := content(t, r, lookup(t, r, sn, filepath.Join(src, name))); !bytes.Equal(got, want) {
			t.Errorf("%s: stored %d bytes that differ from its own %d", name, len(got), len(want))
		}
	}
	raw := map[string]string{}
	for _, e := range a.SQLiteRawFiles() {
		raw[filepath.Base(e.Path)] = e.Error
	}
	for _, name := range []string{"garbage.db", "scrambled.db"} {
		if !strings.Contains(raw[name], "malformed") && !strings.Contains(raw[name], "not a database") {
			t.Errorf("%s: not reported as stored raw with SQLite's reason: %q", name, raw[name])
		}
	}
	if len(raw) != 2 {
		t.Errorf("stored raw: %v, want the two bad databases", raw)
	}
	if a.SQLiteCaptured() != 1 || len(sn.SQLite) != 1 || sn.SQLite[0].Path != good {
		t.Errorf("captured %d, records %+v; want good.db only", a.SQLiteCaptured(), sn.SQLite)
	}
}

// TestSQLiteLockedNotStoredTorn: a rollback-journal database whose writer
// holds its lock past the timeout is reported as a file not backed up,
// with no content, rather than stored as it is.
func TestSQLiteLockedNotStoredTorn(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(src, "busy.db")
	db, err := sql.Open("sqlite", "file:"+p+"?_pragma=journal_mode(delete)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	exec(t, db, "CREATE TABLE t(x)", "INSERT INTO t VALUES(1)")
	// BEGIN EXCLUSIVE: no reader may start until it ends.
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range []string{"BEGIN EXCLUSIVE", "INSERT INTO t VALUES(2)"} {
		if _, err := conn.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	defer conn.ExecContext(context.Background(), "ROLLBACK")
	r := newTestRepo(t, dir)
	sn, _ := backup(t, r, auto(Options{}, 300*time.Millisecond), src)
	if !hasError(sn.Summary.Errors, p) {
		t.Fatalf("the locked database is not reported: errors %v", sn.Summary.Errors)
	}
	n := lookup(t, r, sn, p)
	if n.Flags&tree.FlagUnreadable == 0 || len(n.Content) != 0 {
		t.Errorf("the locked database was stored: flags %v, %d chunks", n.Flags, len(n.Content))
	}
	if !strings.Contains(n.Error, "locked") {
		t.Errorf("its error does not say it was locked: %q", n.Error)
	}
}
