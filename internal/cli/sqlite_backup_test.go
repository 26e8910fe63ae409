package cli

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/testutil"
)

// sqliteDB opens (creating) a database with the real SQLite driver in
// journal mode ("wal" or "delete").
func sqliteDB(t testing.TB, path, journal string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode("+journal+")")
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

// seqBody is the text row seq carries, so a torn row shows.
func seqBody(seq int64) string {
	return fmt.Sprintf("row %d %s", seq, strings.Repeat("x", int(seq%300)))
}

// sqliteSeqDB makes a database whose table rows holds seq 1..n and whose
// table last holds n, written in one transaction each.
func sqliteSeqDB(t testing.TB, path, journal string, n int64) *sql.DB {
	t.Helper()
	db := sqliteDB(t, path, journal)
	for _, q := range []string{
		"CREATE TABLE rows (seq INTEGER PRIMARY KEY, body TEXT NOT NULL)",
		"CREATE TABLE last (seq INTEGER NOT NULL)",
		"INSERT INTO last VALUES (0)",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	for i := int64(1); i <= n; i++ {
		sqliteCommit(t, db, i, 1)
	}
	return db
}

// sqliteCommit commits rows from..from+k-1 and moves last to the highest
// in one transaction.
func sqliteCommit(t testing.TB, db *sql.DB, from, k int64) error {
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	for s := from; s < from+k; s++ {
		if _, err := tx.Exec("INSERT INTO rows VALUES (?, ?)", s, seqBody(s)); err != nil {
			tx.Rollback()
			return err
		}
	}
	if _, err := tx.Exec("UPDATE last SET seq = ?", from+k-1); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// checkSeqDB opens a restored database (immutable: nothing is written
// beside it), runs integrity_check, and checks that it holds a prefix of
// the committed rows: seq 1..max with no gap, each row's body whole, and
// last equal to max. It returns max.
func checkSeqDB(t testing.TB, path string) int64 {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&immutable=1")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil || res != "ok" {
		t.Fatalf("%s: integrity_check: %q %v", path, res, err)
	}
	var count, max, last, bad int64
	if err := db.QueryRow("SELECT count(*), coalesce(max(seq), 0) FROM rows").Scan(&count, &max); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if err := db.QueryRow("SELECT seq FROM last").Scan(&last); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	rows, err := db.Query("SELECT seq, body FROM rows")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s int64
		var b string
		if err := rows.Scan(&s, &b); err != nil {
			t.Fatal(err)
		}
		if b != seqBody(s) {
			bad++
		}
	}
	rows.Close()
	if count != max || last != max || bad != 0 {
		t.Fatalf("%s: not a prefix of the commits: %d rows, max seq %d, last %d, %d torn bodies", path, count, max, last, bad)
	}
	return max
}

// snapshotsJSON lists the snapshots, decoded strictly.
func snapshotsJSON(t *testing.T, e *env, args ...string) []jsonSnapshot {
	t.Helper()
	r := e.mustRun(append([]string{"snapshots", "--json"}, args...)...)
	var sns []jsonSnapshot
	decodeStrict(t, r.stdout, &sns)
	return sns
}

func TestSqliteBackup(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 0)
	srv := e.path("srv", "app")
	if err := os.MkdirAll(srv, 0o750); err != nil {
		t.Fatal(err)
	}
	walPath, rbPath := filepath.Join(srv, "wal.db"), filepath.Join(srv, "journal.db")
	wal := sqliteSeqDB(t, walPath, "wal", 200)
	// The last commits stay in the -wal: the writer keeps its
	// connection and does not checkpoint.
	if _, err := wal.Exec("PRAGMA wal_autocheckpoint=0"); err != nil {
		t.Fatal(err)
	}
	sqliteCommit(t, wal, 201, 50)
	rb := sqliteSeqDB(t, rbPath, "delete", 120)
	rb.Close()
	mtime := time.Date(2026, 3, 1, 2, 3, 4, 0, time.UTC)
	if err := os.Chmod(rbPath, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(rbPath, mtime, mtime); err != nil {
		t.Fatal(err)
	}

	r := e.mustRun("sqlite", "backup", "--json", "--tag", "hourly", "--host", "db1", walPath, rbPath)
	lines := jsonLines(t, r)
	var sum jsonBackupSummary
	decodeStrict(t, lines[len(lines)-1].raw, &sum)
	if sum.MessageType != "summary" || sum.TotalFiles != 2 || sum.FilesNew != 2 || len(sum.Errors) != 0 {
		t.Errorf("summary: %s", lines[len(lines)-1].raw)
	}
	sns := snapshotsJSON(t, e)
	if len(sns) != 1 {
		t.Fatalf("%d snapshots", len(sns))
	}
	sn := sns[0]
	if sn.Hostname != "db1" || strings.Join(sn.Tags, ",") != "hourly,sqlite" || len(sn.Paths) != 2 {
		t.Errorf("snapshot: host %s tags %v paths %v", sn.Hostname, sn.Tags, sn.Paths)
	}
	if len(sn.SQLite) != 2 || sn.SQLite[0].Path != rbPath || sn.SQLite[1].Path != walPath {
		t.Fatalf("sqlite field: %+v", sn.SQLite)
	}
	for _, c := range sn.SQLite {
		want := "rollback"
		if c.Path == walPath {
			want = "wal"
		}
		if c.Mode != want || c.PageSize != 4096 || c.Pages == 0 || c.Method != "backup-api" || c.CapturedAt.IsZero() {
			t.Errorf("capture: %+v", c)
		}
	}

	// restore gives whole databases, with the originals' metadata, and
	// no -wal or -journal beside them.
	target := e.path("restored")
	e.mustRun("restore", "latest", "--target", target)
	rWal, rRb := filepath.Join(target, walPath), filepath.Join(target, rbPath)
	if n := checkSeqDB(t, rWal); n != 250 {
		t.Errorf("restored WAL database holds %d rows, want 250", n)
	}
	if n := checkSeqDB(t, rRb); n != 120 {
		t.Errorf("restored rollback database holds %d rows, want 120", n)
	}
	fi, err := os.Stat(rRb)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 || !fi.ModTime().Equal(mtime) {
		t.Errorf("restored metadata: mode %v mtime %v", fi.Mode(), fi.ModTime())
	}
	for _, p := range []string{rWal + "-wal", rWal + "-shm", rRb + "-journal"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("restore wrote %s", p)
		}
	}
	// The restored WAL database opens read-write, in WAL mode, and
	// takes writes.
	db := sqliteDB(t, rWal, "wal")
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("restored journal_mode %q %v", mode, err)
	}
	if err := sqliteCommit(t, db, 251, 1); err != nil {
		t.Errorf("write to the restored database: %v", err)
	}

	// dump and versions see an ordinary file.
	d := e.mustRun("dump", "latest:"+rbPath)
	if b, _ := os.ReadFile(rRb); string(b) != string(d.stdout) {
		t.Errorf("dump gave %d bytes, restore %d", len(d.stdout), len(b))
	}
	v := e.mustRun("versions", "--host", "db1", walPath)
	if !strings.Contains(string(v.stdout), sn.ShortID) {
		t.Errorf("versions does not list %s:\n%s", sn.ShortID, v.stdout)
	}

	// A second backup after more commits: a new version, the parent used.
	sqliteCommit(t, wal, 251, 10)
	r = e.mustRun("sqlite", "backup", "--host", "db1", walPath, rbPath)
	if !strings.Contains(string(r.stdout), walPath+": wal mode") || !strings.Contains(string(r.stdout), "using parent snapshot "+sn.ShortID) {
		t.Errorf("second backup:\n%s", r.stdout)
	}
	// Nothing changed since: both copies are the same bytes as the
	// parent's, counted unchanged, and add no data.
	r = e.mustRun("sqlite", "backup", "--json", "--host", "db1", walPath, rbPath)
	lines = jsonLines(t, r)
	decodeStrict(t, lines[len(lines)-1].raw, &sum)
	if sum.FilesUnchanged != 2 || sum.DataBlobs != 0 {
		t.Errorf("backup of unchanged databases: %s", lines[len(lines)-1].raw)
	}
	target2 := e.path("restored2")
	e.mustRun("restore", "--at", "now", walPath, "--host", "db1", "--target", target2)
	if n := checkSeqDB(t, filepath.Join(target2, "wal.db")); n != 260 {
		t.Errorf("restore --at now: %d rows, want 260", n)
	}
	// The live database was never written by a capture.
	var n int64
	if err := wal.QueryRow("SELECT count(*) FROM rows").Scan(&n); err != nil || n != 260 {
		t.Errorf("live database: %d rows, %v", n, err)
	}
}

// TestSqliteBackupBadInput gives sqlite backup one good database among
// bad files: each bad one is named with what is wrong, the good one is
// stored, the exit status is 3; with only bad ones nothing is stored and
// the exit status is 1.
func TestSqliteBackupBadInput(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 0)
	dir := e.path("srv")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.db")
	sqliteSeqDB(t, good, "delete", 100).Close()
	goodBytes, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	damaged := append([]byte(nil), goodBytes...)
	for i := 4096; i < len(damaged); i += 5 {
		damaged[i] ^= 0xa5
	}
	bad := map[string]string{
		write("notes.txt", []byte("plain text, no database\n")): "file is not a database",
		write("cipher.db", randomBytes(7, 16384)):               "file is not a database",
		write("damaged.db", damaged):                            "database disk image is malformed",
		write("truncated.db", goodBytes[:len(goodBytes)/3]):     "database disk image is malformed",
		write("orphan.db-wal", randomBytes(8, 4096)):            "does not exist",
		filepath.Join(dir, "missing.db"):                        "no such file",
	}
	args := []string{"sqlite", "backup", good}
	for p := range bad {
		args = append(args, p)
	}
	r := e.expectCode(ExitPartial, args...)
	for p, msg := range bad {
		found := false
		for _, line := range strings.Split(string(r.stderr), "\n") {
			found = found || strings.HasPrefix(line, "error: file "+p+": ") && strings.Contains(line, msg)
		}
		if !found {
			t.Errorf("stderr has no line %s: ...%s...", p, msg)
		}
	}
	t.Logf("%s", r.stderr)
	if !strings.Contains(string(r.stderr), "6 databases could not be captured") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	sns := snapshotsJSON(t, e)
	// The databases not captured are not the snapshot's paths: it says
	// nothing of them (covering them would say they were absent).
	if len(sns) != 1 || len(sns[0].SQLite) != 1 || sns[0].SQLite[0].Path != good || strings.Join(sns[0].Paths, " ") != good {
		t.Fatalf("snapshots: %+v", sns)
	}
	// The files not stored are listed in the summary (those that got as
	// far as a capture: the others were refused by their header).
	target := e.path("restored")
	e.mustRun("restore", "latest", "--target", target)
	if n := checkSeqDB(t, filepath.Join(target, good)); n != 100 {
		t.Errorf("restored good database: %d rows", n)
	}
	// Nothing was lost or changed.
	if b, _ := os.ReadFile(good); string(b) != string(goodBytes) {
		t.Error("the good database changed")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "damaged.db")); string(b) != string(damaged) {
		t.Error("the damaged database changed")
	}

	// Only bad ones: exit 1, no snapshot.
	var only []string
	for p := range bad {
		only = append(only, p)
	}
	r = e.expectCode(1, append([]string{"sqlite", "backup"}, only...)...)
	if !strings.Contains(string(r.stderr), "file is not a database") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	if sns := snapshotsJSON(t, e); len(sns) != 1 {
		t.Errorf("%d snapshots after a backup of bad files only", len(sns))
	}
	// The -wal of a live database: back up the database instead.
	live := filepath.Join(dir, "live.db")
	ldb := sqliteSeqDB(t, live, "wal", 5)
	defer ldb.Close()
	r = e.expectCode(1, "sqlite", "backup", live+"-wal")
	if !strings.Contains(string(r.stderr), "back up "+live+" instead") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
}

// TestSqliteBackupUnreadable runs sqlite backup as user nobody on a
// database only root can read: permission denied, named.
func TestSqliteBackupUnreadable(t *testing.T) {
	if !testutil.IsRoot() {
		t.Skip("needs root, to run rewind as user nobody on a database nobody cannot read")
	}
	t.Parallel()
	uid, gid := nobodyIDs()
	base := sharedTempDir(t)
	e := newEnv(t)
	e.dir = base
	for _, d := range []string{"home", "xdg", "srv"} {
		if err := os.Mkdir(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e.vars["HOME"], e.vars["XDG_DATA_HOME"] = filepath.Join(base, "home"), filepath.Join(base, "xdg")
	initRepo(t, filepath.Join(base, "repo"), testPassword, 0)
	for _, d := range []string{"home", "xdg", "repo"} {
		chownTree(t, filepath.Join(base, d), uid, gid)
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(rewindBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(base, "rewind"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(base, "srv", "secret.db")
	sqliteSeqDB(t, secret, "delete", 3).Close()
	if err := os.Chmod(secret, 0o600); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(base, "srv", "open.db")
	sqliteSeqDB(t, open, "delete", 3).Close()
	if err := os.Chmod(open, 0o644); err != nil {
		t.Fatal(err)
	}
	// A WAL database nobody may read, in a folder nobody may not write,
	// with no -shm: SQLite cannot read it without making one.
	walDir := filepath.Join(base, "srv", "waldir")
	if err := os.Mkdir(walDir, 0o755); err != nil {
		t.Fatal(err)
	}
	walDB := filepath.Join(walDir, "wal.db")
	sqliteSeqDB(t, walDB, "wal", 3).Close()
	if err := os.Chmod(walDB, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, sfx := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(walDB + sfx); err == nil {
			t.Fatalf("%s%s left by the writer", walDB, sfx)
		}
	}
	e = e.with("REWIND_REPOSITORY", filepath.Join(base, "repo"), "REWIND_PASSWORD", testPassword)
	w := e.cmd("sqlite", "backup", walDB)
	w.Path = filepath.Join(base, "rewind")
	w.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	if r := e.exec(w); r.code != 1 || !strings.Contains(string(r.stderr), walDB+": permission denied (a WAL database: SQLite must open or create its -shm") {
		t.Errorf("WAL database without a -shm, folder not writable: %v", r)
	} else {
		t.Logf("%s", r.stderr)
	}
	c := e.cmd("sqlite", "backup", "--json", open, secret)
	c.Path = filepath.Join(base, "rewind")
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	r := e.exec(c)
	if r.code != ExitPartial {
		t.Fatalf("as nobody: %v", r)
	}
	lines := jsonLines(t, r)
	var ev jsonBackupError
	decodeStrict(t, lines[0].raw, &ev)
	if ev.Path != secret || !strings.HasPrefix(ev.Error, "permission denied") || ev.Kind != "file" {
		t.Errorf("error event: %s", lines[0].raw)
	}
	var sum jsonBackupSummary
	decodeStrict(t, lines[len(lines)-1].raw, &sum)
	if sum.TotalFiles != 1 || len(sum.Errors) != 1 || sum.Errors[0].Path != secret {
		t.Errorf("summary: %s", lines[len(lines)-1].raw)
	}
}

// TestSqliteTimeline: rewind timeline lists each captured database as a
// sqlite source, its captures as points, beside the files.
func TestSqliteTimeline(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 0)
	dir := e.path("srv")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	dbPath := filepath.Join(dir, "app.db")
	db := sqliteSeqDB(t, dbPath, "wal", 10)
	e.mustRun("sqlite", "backup", "--host", "db1", dbPath)
	sqliteCommit(t, db, 11, 5)
	e.mustRun("sqlite", "backup", "--host", "db1", dbPath)
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.mustRun("backup", "--host", "db1", "--no-inventory", filepath.Join(dir, "notes.txt"))
	sns := snapshotsJSON(t, e)

	srcs := timelineJSON(t, e, "--host", "db1", "--at", "now")
	if len(srcs) != 2 {
		t.Fatalf("sources: %+v", srcs)
	}
	s := findSource(t, srcs, "sqlite", dbPath)
	first, last := sns[0].SQLite[0].CapturedAt, sns[1].SQLite[0].CapturedAt
	if s.Database != dbPath || s.JournalMode != "wal" || len(s.Ranges) != 1 || s.Ranges[0].Snapshots != 2 ||
		!s.Ranges[0].From.Equal(first) || !s.Ranges[0].To.Equal(last) || s.Ranges[0].Continuous {
		t.Errorf("sqlite source: %+v", s)
	}
	if s.At == nil || !s.At.Restorable || s.At.SnapshotID != sns[1].ID || s.At.Shows == nil || !s.At.Shows.Equal(last) {
		t.Errorf("at now: %+v", s.At)
	}
	findSource(t, srcs, "files", filepath.Join(dir, "notes.txt"))

	out := string(e.mustRun("timeline", "--host", "db1").stdout)
	if !strings.Contains(out, "sqlite") || !strings.Contains(out, dbPath) || !strings.Contains(out, "2 points") {
		t.Errorf("timeline:\n%s", out)
	}
}

// TestSqliteBackupLocked: a database a writer keeps locked past
// --timeout is named as locked; the other is stored (exit 3).
func TestSqliteBackupLocked(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 0)
	dir := e.path("srv")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	busy, free := filepath.Join(dir, "busy.db"), filepath.Join(dir, "free.db")
	db := sqliteSeqDB(t, busy, "delete", 5)
	sqliteSeqDB(t, free, "wal", 5).Close()
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	r := e.expectCode(ExitPartial, "sqlite", "backup", "--timeout", "500ms", busy, free)
	if !strings.Contains(string(r.stderr), busy+": database is locked (still locked after 500ms)") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	if _, err := conn.ExecContext(t.Context(), "COMMIT"); err != nil {
		t.Fatal(err)
	}
	sns := snapshotsJSON(t, e)
	if len(sns) != 1 || strings.Join(sns[0].Paths, " ") != free {
		t.Fatalf("snapshots: %+v", sns)
	}
	// Released, it is captured.
	e.mustRun("sqlite", "backup", "--timeout", "500ms", busy, free)
}
