package sqlite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCaptureRollback(t *testing.T) {
	dir := t.TempDir()
	tmp := t.TempDir()
	src, db := makeDB(t, dir, "app.db", "delete", 500)
	db.Close()
	before, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Capture(context.Background(), src, tmp, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Mode != ModeRollback || c.Method != MethodBackupAPI || c.PageSize != 4096 {
		t.Errorf("copy: %+v", c)
	}
	if n, m := readCopy(t, c.Path); n != 500 || m != 500 {
		t.Errorf("copy holds %d rows, max %d; want 500", n, m)
	}
	fi, err := os.Stat(c.Path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != c.Size || c.Pages*int64(c.PageSize) != c.Size {
		t.Errorf("copy file mode %v size %d; copy says %+v", fi.Mode(), fi.Size(), c)
	}
	// Nothing is created beside the source, and the source is unchanged.
	if got := listDir(t, dir); !slices.Equal(got, []string{"app.db"}) {
		t.Errorf("beside the source: %v", got)
	}
	after, _ := os.ReadFile(src)
	if !bytes.Equal(before, after) {
		t.Error("the source changed")
	}
	// Pages after the first are the source's, byte for byte, so versions
	// deduplicate.
	cp, _ := os.ReadFile(c.Path)
	if len(cp) != len(before) || !bytes.Equal(cp[c.PageSize:], before[c.PageSize:]) {
		t.Errorf("copy's pages differ from the source's (%d and %d bytes)", len(cp), len(before))
	}
	path := c.Path
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Close left %s: %v", path, err)
	}
	if got := listDir(t, tmp); len(got) != 0 {
		t.Errorf("left in tmpDir: %v", got)
	}
}

// TestCaptureWAL captures a WAL database whose last commits are still in
// its -wal (a writer keeps its connection open): the copy holds them, the
// -wal is not checkpointed, and the database file is not written.
func TestCaptureWAL(t *testing.T) {
	dir := t.TempDir()
	tmp := t.TempDir()
	src, db := makeDB(t, dir, "wal.db", "wal", 300)
	mustExec(t, db, "PRAGMA wal_autocheckpoint=0")
	for i := 301; i <= 320; i++ {
		mustExec(t, db, "INSERT INTO rows VALUES (?, 'late')", i)
	}
	dbBytes, _ := os.ReadFile(src)
	walBytes, err := os.ReadFile(src + "-wal")
	if err != nil || len(walBytes) == 0 {
		t.Fatalf("-wal: %d bytes, %v", len(walBytes), err)
	}
	c, err := Capture(context.Background(), src, tmp, Options{Check: CheckFull})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Mode != ModeWAL {
		t.Errorf("mode %q, want wal", c.Mode)
	}
	if n, m := readCopy(t, c.Path); n != 320 || m != 320 {
		t.Errorf("copy holds %d rows, max %d; want 320", n, m)
	}
	if b, _ := os.ReadFile(src); !bytes.Equal(b, dbBytes) {
		t.Error("the database file changed")
	}
	if b, _ := os.ReadFile(src + "-wal"); !bytes.Equal(b, walBytes) {
		t.Error("the -wal changed")
	}
	// The writer goes on after the capture.
	mustExec(t, db, "INSERT INTO rows VALUES (321, 'after')")
}

// TestCaptureWALClosed captures a WAL database no one has open (no -wal,
// no -shm): whatever SQLite needs beside it to read, it leaves nothing
// there the database did not have, or only what SQLite itself removes.
func TestCaptureWALClosed(t *testing.T) {
	dir := t.TempDir()
	src, db := makeDB(t, dir, "closed.db", "wal", 50)
	db.Close()
	if got := listDir(t, dir); !slices.Equal(got, []string{"closed.db"}) {
		t.Fatalf("before: %v", got)
	}
	before, _ := os.ReadFile(src)
	c, err := Capture(context.Background(), src, t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n, _ := readCopy(t, c.Path); n != 50 || c.Mode != ModeWAL {
		t.Errorf("copy: %d rows, mode %s", n, c.Mode)
	}
	if after, _ := os.ReadFile(src); !bytes.Equal(before, after) {
		t.Error("the source changed")
	}
	// SQLite needs a -shm to read a WAL database and creates an empty
	// -wal with it, owned like the database; it writes nothing else.
	for _, name := range listDir(t, dir) {
		switch name {
		case "closed.db", "closed.db-shm":
		case "closed.db-wal":
			if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Size() != 0 {
				t.Errorf("-wal after capture: %v %v", fi, err)
			}
		default:
			t.Errorf("capture left %s beside the database", name)
		}
	}
}

// TestCaptureLocked holds a rollback database's exclusive lock past the
// timeout: Capture says it is locked, and names the file.
func TestCaptureLocked(t *testing.T) {
	dir := t.TempDir()
	src, db := makeDB(t, dir, "busy.db", "delete", 10)
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	_, err = Capture(context.Background(), src, t.TempDir(), Options{Timeout: 300 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("err = %v, want ErrLocked", err)
	}
	var ce *CaptureError
	if !errors.As(err, &ce) || ce.Path != src {
		t.Errorf("error does not name %s: %v", src, err)
	}
	// Released in time, the same capture succeeds: it retried.
	done := make(chan error, 1)
	go func() {
		c, err := Capture(context.Background(), src, t.TempDir(), Options{Timeout: time.Minute})
		if err == nil {
			c.Close()
		}
		done <- err
	}()
	time.Sleep(200 * time.Millisecond)
	if _, err := conn.ExecContext(context.Background(), "COMMIT"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("capture after the lock was released: %v", err)
	}
}

func TestCaptureBadInput(t *testing.T) {
	dir := t.TempDir()
	good, db := makeDB(t, dir, "good.db", "wal", 200)
	mustExec(t, db, "PRAGMA wal_autocheckpoint=0")
	mustExec(t, db, "INSERT INTO rows VALUES (1000, 'in the wal')")
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// The damaged files are made from a rollback database's bytes, all
	// its pages in the file.
	plain, pdb := makeDB(t, t.TempDir(), "plain.db", "delete", 200)
	pdb.Close()
	goodBytes, _ := os.ReadFile(plain)
	random := make([]byte, 8192)
	for i := range random {
		random[i] = byte(i*7919 + i/13)
	}
	// A damaged database: a valid header, garbage in its b-tree pages.
	damaged := append([]byte(nil), goodBytes...)
	for i := 4096; i < len(damaged); i += 3 {
		damaged[i] ^= 0x5a
	}
	// A truncated one: its header says more pages than the file holds.
	truncated := append([]byte(nil), goodBytes[:len(goodBytes)/2]...)
	// An encrypted-looking one: SQLite's header, then random bytes, as a
	// database whose pages (all but the header) are encrypted.
	encrypted := append(append([]byte(nil), goodBytes[:100]...), random...)
	cases := []struct {
		name string
		path string
		kind error
	}{
		{"text", write("notes.txt", []byte("hello, not a database\n")), ErrNotDatabase},
		{"sqlcipher", write("cipher.db", random), ErrNotDatabase},
		{"empty", write("empty.db", nil), ErrNotDatabase},
		{"damaged", write("damaged.db", damaged), ErrCorrupt},
		{"truncated", write("truncated.db", truncated), ErrCorrupt},
		{"short", write("short.db", goodBytes[:60]), ErrCorrupt},
		{"encrypted-pages", write("encpages.db", encrypted), ErrCorrupt},
		{"missing", filepath.Join(dir, "missing.db"), ErrNotFound},
		{"wal-alone", write("gone.db-wal", random[:4096]), ErrSidecar},
		{"wal-of-live", good + "-wal", ErrSidecar},
		{"directory", dir, ErrNotDatabase},
	}
	tmp := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cp, err := Capture(context.Background(), c.path, tmp, Options{Timeout: time.Second})
			if err == nil {
				cp.Close()
				t.Fatalf("%s captured", c.path)
			}
			if !errors.Is(err, c.kind) {
				t.Errorf("err = %v, want %v", err, c.kind)
			}
			var ce *CaptureError
			if !errors.As(err, &ce) || ce.Path != c.path || ce.Hint == "" {
				t.Errorf("error does not name %s with a hint: %#v", c.path, err)
			}
			t.Logf("%v", err)
			if got := listDir(t, tmp); len(got) != 0 {
				t.Errorf("left in tmpDir: %v", got)
			}
		})
	}
	// Nothing was lost: the live database still reads whole.
	var n int
	if err := db.QueryRow("SELECT count(*) FROM rows").Scan(&n); err != nil || n != 201 {
		t.Errorf("live database: %d rows, %v", n, err)
	}
}

// TestCaptureHotJournal captures a rollback database whose write was
// interrupted (a copy of it and its journal taken mid-transaction): the
// rollback is a write, so Capture refuses, says why, and changes nothing.
func TestCaptureHotJournal(t *testing.T) {
	dir := t.TempDir()
	src, db := makeDB(t, dir, "w.db", "delete", 3000)
	// A small cache makes the transaction spill changed pages into the
	// database file before it commits, with the originals in the journal.
	mustExec(t, db, "PRAGMA cache_size=5")
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("UPDATE rows SET body = 'changed'"); err != nil {
		t.Fatal(err)
	}
	hot := filepath.Join(t.TempDir(), "hot.db")
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	j, err := os.ReadFile(src + "-journal")
	if err != nil || len(j) == 0 {
		t.Fatalf("journal: %d bytes, %v", len(j), err)
	}
	if err := os.WriteFile(hot, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hot+"-journal", j, 0o644); err != nil {
		t.Fatal(err)
	}
	tx.Rollback()
	_, err = Capture(context.Background(), hot, t.TempDir(), Options{Timeout: time.Second})
	if !errors.Is(err, ErrHotJournal) {
		t.Fatalf("err = %v, want ErrHotJournal", err)
	}
	t.Log(err)
	if after, _ := os.ReadFile(hot); !bytes.Equal(after, b) {
		t.Error("the database changed")
	}
	if after, _ := os.ReadFile(hot + "-journal"); !bytes.Equal(after, j) {
		t.Error("the journal changed")
	}
}

// TestCapturePageSizes: the copy keeps the database's page size, the
// smallest and the largest SQLite allows, so its pages line up with the
// database's.
func TestCapturePageSizes(t *testing.T) {
	for _, ps := range []int{512, 65536} {
		dir := t.TempDir()
		p := filepath.Join(dir, "p.db")
		db := openDB(t, p, "delete")
		mustExec(t, db, fmt.Sprintf("PRAGMA page_size=%d", ps))
		mustExec(t, db, "CREATE TABLE rows (seq INTEGER PRIMARY KEY, body TEXT)")
		for i := 1; i <= 50; i++ {
			mustExec(t, db, "INSERT INTO rows VALUES (?, ?)", i, strings.Repeat("y", 300))
		}
		db.Close()
		c, err := Capture(context.Background(), p, t.TempDir(), Options{Check: CheckFull})
		if err != nil {
			t.Fatal(err)
		}
		src, _ := os.ReadFile(p)
		cp, _ := os.ReadFile(c.Path)
		if c.PageSize != ps || len(cp) != len(src) || !bytes.Equal(cp[ps:], src[ps:]) {
			t.Errorf("page size %d: copy %+v, %d bytes of %d", ps, c, len(cp), len(src))
		}
		if n, m := readCopy(t, c.Path); n != 50 || m != 50 {
			t.Errorf("page size %d: %d rows", ps, n)
		}
		c.Close()
	}
}
