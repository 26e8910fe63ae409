package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/testutil"
)

// sqliteLoads are the two journal modes the SQLite tests run under.
var sqliteLoads = []struct {
	name string
	wal  bool
}{{"wal", true}, {"rollback", false}}

// startSQLiteLoad creates src/app.db and a writer committing to it (and
// checkpointing, in WAL mode) until the test ends.
func startSQLiteLoad(t *testing.T, src string, wal bool) *testutil.SQLiteWriter {
	t.Helper()
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, src, map[string][]byte{"notes.txt": []byte("beside the database\n")})
	w, err := testutil.StartSQLiteWriter(filepath.Join(src, "app.db"), testutil.SQLiteWriterOptions{
		WAL: wal, Rate: 300, CheckpointEvery: 40, Pad: 200, InitialRows: 3000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Stop() })
	return w
}

// checkSQLiteSnapshot restores the snapshot id and checks the database
// it holds at db: no -wal, -shm or -journal beside it, integrity_check
// passes, and it holds the first k commits for a k that the writer had
// (nearly) reached by committed: at most one more commit, the one that may
// have been under way when its time was taken.
func checkSQLiteSnapshot(t *testing.T, e *env, w *testutil.SQLiteWriter, id, db string, committed time.Time) int64 {
	t.Helper()
	target := e.path("check-" + id[:12])
	e.mustRun("restore", id, "--target", target)
	for _, s := range []string{"-wal", "-shm", "-journal"} {
		if _, err := os.Lstat(target + db + s); err == nil {
			t.Errorf("snapshot %s: %s%s was stored beside the database", id[:8], db, s)
		}
	}
	k, err := testutil.CheckSQLiteVersion(target + db)
	if err != nil {
		t.Fatalf("snapshot %s: the stored database: %v", id[:8], err)
	}
	before := sort.Search(int(w.Committed()), func(i int) bool { return w.CommitTime(int64(i + 1)).After(committed) })
	if k > int64(before)+1 {
		t.Errorf("snapshot %s holds %d commits, but only %d had returned when it was stored", id[:8], k, before)
	}
	os.RemoveAll(target)
	return k
}

// TestWatchSQLiteUnderLoad runs rewind watch over a folder in which a
// real SQLite writer commits rows, in WAL mode (with checkpoints) and in
// rollback-journal mode. Every snapshot it stores holds a database that
// opens, passes integrity_check, and holds exactly a prefix of the
// committed rows and no row rolled back; no -wal or -journal is stored;
// and the versions move forward with the writer.
func TestWatchSQLiteUnderLoad(t *testing.T) {
	for _, load := range sqliteLoads {
		t.Run(load.name, func(t *testing.T) {
			e := newRepo(t, 0)
			src := e.path("src")
			db := filepath.Join(src, "app.db")
			wr := startSQLiteLoad(t, src, load.wal)
			w := startWatch(t, e, "--interval", "200ms", "--settle", "200ms", src)
			w.waitSnapshots(6)
			if _, err := wr.Stop(); err != nil {
				t.Fatal(err)
			}
			if code := w.stop(syscall.SIGTERM); code != 0 {
				t.Fatalf("exit status %d after SIGTERM:\n%s", code, w.stderr.String())
			}
			w.checkLines()
			var last int64
			captured := 0
			for _, s := range w.snapshots() {
				k := checkSQLiteSnapshot(t, e, wr, s.SnapshotID, db, s.Committed)
				if k < last {
					t.Errorf("snapshot %s holds %d commits, the one before %d", s.SnapshotID[:8], k, last)
				}
				last = k
				if s.SQLiteCaptured > 0 {
					captured++
				}
			}
			// Most captures read the database in place; each is recorded
			// with what it saw, as docs/JSON.md says.
			var sns []jsonSnapshot
			decodeStrict(t, e.mustRun("snapshots", "--json").stdout, &sns)
			inPlace, delta := 0, 0
			for _, sn := range sns {
				for _, c := range sn.SQLite {
					if c.Method == "read-transaction" && c.Source != nil {
						inPlace++
					}
					// A capture built from the parent's version accounts
					// for every byte of it; a rollback-journal database
					// never is (no -wal names what changed).
					switch d := c.Delta; {
					case d == nil:
					case d.Used && (!load.wal || d.BytesRead+d.BytesReused != c.Pages*int64(c.PageSize)):
						t.Errorf("snapshot %s: delta %+v of %d pages of %d bytes", sn.ShortID, *d, c.Pages, c.PageSize)
					case d.Used:
						delta++
					case d.Fallback == "":
						t.Errorf("snapshot %s: read whole without a reason", sn.ShortID)
					default:
						t.Logf("snapshot %s: read whole: %s", sn.ShortID, d.Fallback)
					}
				}
			}
			t.Logf("%d captures read in place, %d of them only the pages the -wal names", inPlace, delta)
			if inPlace == 0 {
				t.Errorf("no snapshot read the database in place")
			}
			if captured < 3 || last == 0 {
				t.Errorf("%d of %d snapshots captured the database, the last holds %d commits: the watcher did not follow the writer",
					captured, len(w.snapshots()), last)
			}
			t.Logf("%d snapshots, %d with a capture; the writer made %d commits, the last snapshot holds %d", len(w.snapshots()), captured, wr.Committed(), last)
		})
	}
}

// TestBackupSQLiteUnderLoad runs rewind backup again and again over a
// database under load, in both journal modes: each summary counts the
// capture, and each snapshot holds a consistent prefix of the commits.
func TestBackupSQLiteUnderLoad(t *testing.T) {
	for _, load := range sqliteLoads {
		t.Run(load.name, func(t *testing.T) {
			e := newRepo(t, 0)
			src := e.path("src")
			db := filepath.Join(src, "app.db")
			wr := startSQLiteLoad(t, src, load.wal)
			var last int64
			for i := range 4 {
				time.Sleep(100 * time.Millisecond)
				r := e.mustRun("backup", "--json", "--no-inventory", src)
				lines := strings.Split(strings.TrimSpace(string(r.stdout)), "\n")
				var sum struct {
					SnapshotID            string    `json:"snapshot_id"`
					BackupEnd             time.Time `json:"backup_end"`
					SQLiteCaptured        int64     `json:"sqlite_captured"`
					SQLiteSiblingsLeftOut int64     `json:"sqlite_siblings_left_out"`
				}
				if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
					t.Fatal(err)
				}
				if sum.SQLiteCaptured != 1 {
					t.Errorf("backup %d: sqlite_captured %d, want 1", i, sum.SQLiteCaptured)
				}
				k := checkSQLiteSnapshot(t, e, wr, sum.SnapshotID, db, time.Now())
				if k < last {
					t.Errorf("backup %d holds %d commits, the one before %d", i, k, last)
				}
				last = k
			}
			if _, err := wr.Stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestBackupSQLiteBadInput: a file with a SQLite header that SQLite
// cannot read and a -wal whose database is gone are stored as plain
// files; the backup says so (a warning naming the file), exits 0, and
// stores the good database beside them as a capture.
func TestBackupSQLiteBadInput(t *testing.T) {
	e := newRepo(t, 0)
	src := e.path("src")
	wr := startSQLiteLoad(t, src, true)
	if _, err := wr.Stop(); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(src, "app.db"))
	if err != nil {
		t.Fatal(err)
	}
	bad := append(append([]byte(nil), good[:100]...), randomBytes(7, 64<<10)...)
	files := map[string][]byte{"broken.db": bad, "lost.db-wal": randomBytes(8, 8192)}
	writeFiles(t, src, files)
	r := e.mustRun("backup", "--no-inventory", src)
	if !strings.Contains(string(r.stderr), "broken.db has a SQLite header but SQLite cannot read it; stored as a plain file") {
		t.Errorf("no warning naming broken.db:\n%s", r.stderr)
	}
	if !strings.Contains(string(r.stdout), "SQLite:      1 database captured consistently") {
		t.Errorf("the summary does not count the capture:\n%s", r.stdout)
	}
	// The snapshot records the capture, with what it saw of the database,
	// as docs/JSON.md says.
	var sns []jsonSnapshot
	decodeStrict(t, e.mustRun("snapshots", "--json").stdout, &sns)
	if c := sns[len(sns)-1].SQLite; len(c) != 1 || c[0].Path != filepath.Join(src, "app.db") || c[0].Source == nil || c[0].Source.DB.Size == 0 {
		t.Errorf("the snapshot's sqlite field: %+v", c)
	}
	target := e.path("restored")
	e.mustRun("restore", "latest", "--target", target)
	for name, want := range files {
		got, err := os.ReadFile(target + filepath.Join(src, name))
		if err != nil || string(got) != string(want) {
			t.Errorf("%s not restored as it was: %v", name, err)
		}
	}
	if _, err := testutil.CheckSQLiteVersion(target + filepath.Join(src, "app.db")); err != nil {
		t.Errorf("the good database: %v", err)
	}
}
