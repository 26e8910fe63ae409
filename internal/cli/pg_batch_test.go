package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rewind-backup/rewind/internal/testutil"
)

// pushLog reads the `pg wal-push --json` documents an archive_command
// appended to path: how many WAL index files the pushes wrote, and the
// segments they stored.
func pushLog(t *testing.T, path string) (indexFiles int, stored []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	for {
		var doc WALPushJSON
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if doc.IndexFile != "" {
			indexFiles++
		}
		if doc.Stored {
			stored = append(stored, doc.Name)
		}
		for _, b := range doc.Batch {
			if b.Error != "" {
				t.Errorf("%s skipped in the batch of %s: %s", b.Name, doc.Name, b.Error)
			}
			if b.Stored {
				stored = append(stored, b.Name)
			}
		}
	}
	slices.Sort(stored)
	return indexFiles, stored
}

// TestPgWalBatch: with segments piling up in pg_wal, archive_command's
// wal-push stores the ready ones in batches, one WAL index file per batch,
// each segment exactly once; PostgreSQL's calls for the batched ones find
// them stored; pg check is clean and a restore to the latest point works.
func TestPgWalBatch(t *testing.T) {
	p := newPgRepo(t)
	// Archiving on, but no command yet: the segments wait in pg_wal with
	// their .ready files, as behind a slow repository.
	pg := testutil.StartPostgres(t, testutil.PGOptions{Settings: map[string]string{"archive_mode": "on", "archive_command": "''"}})
	e := p.env(t)
	e.mustRun("pg", "backup", "--dsn", pg.DSN(), "--fast")
	const n = 30
	names := switchWAL(t, pg, n)
	ready, _ := filepath.Glob(filepath.Join(pg.DataDir, "pg_wal", "archive_status", "*.ready"))
	if len(ready) < n {
		t.Fatalf("%d segments ready, want at least %d", len(ready), n)
	}

	log := filepath.Join(p.dir, "push.log")
	pg.Exec(t, "alter system set archive_command = '"+p.archiveCommand()+" --json >> "+log+"'")
	pg.QueryValue(t, "select pg_reload_conf()")
	start := time.Now()
	waitArchived(t, pg, names[len(names)-1])
	t.Logf("%d ready segments archived in %v (not asserted)", len(ready), time.Since(start))
	pg.Exec(t, "create table marker (v text); insert into marker values ('after the batches')")
	last := pg.QueryValue(t, "select pg_walfile_name(pg_switch_wal())")
	waitArchived(t, pg, last)

	files, stored := pushLog(t, log)
	archived := archivedNames(t, pg)
	if !slices.Equal(stored, archived) {
		t.Fatalf("the pushes stored %v, PostgreSQL archived %v", stored, archived)
	}
	t.Logf("%d segments stored with %d WAL index files", len(stored), files)
	if len(stored) < n || files*2 > len(stored) {
		t.Fatalf("%d segments stored with %d WAL index files: not batched", len(stored), files)
	}
	l := walList(t, e)
	var listed []string
	for _, f := range l.Clusters[0].Files {
		listed = append(listed, f.Name)
	}
	slices.Sort(listed)
	if !slices.Equal(listed, archived) {
		t.Fatalf("WAL index lists %v, PostgreSQL archived %v", listed, archived)
	}
	if r := e.mustRun("pg", "check"); !strings.Contains(string(r.stdout), "FOUND") || strings.Contains(string(r.stdout), "MISSING") {
		t.Fatalf("pg check: %s", r.stdout)
	}

	// A batched segment pushed again: stored already, nothing written.
	before := p.storedFiles(t)
	again := time.Now()
	r := p.runAs(t, pg, pg.DataDir, "pg", "wal-push", "--json", filepath.Join("pg_wal", names[3]))
	t.Logf("a stored segment pushed again in %v (not asserted)", time.Since(again))
	var doc WALPushJSON
	if err := json.Unmarshal(r.stdout, &doc); r.code != 0 || err != nil || doc.Stored || doc.IndexFile != "" || len(doc.Batch) != 0 {
		t.Fatalf("push of a batched segment again: %v (%+v)", r, doc)
	}
	if after := p.storedFiles(t); !slices.Equal(before, after) {
		t.Fatalf("pushing a stored segment again wrote files")
	}

	// A restore to the latest point has the marker.
	base := pg.MkdirOwned(t, "batch-restore")
	sock := pg.MkdirOwned(t, "batch-restore-sock")
	target := filepath.Join(base, "data")
	port := pgFreePort(t)
	c := e.cmd("pg", "restore", "--latest", "--target", target, "--start", "--no-archive", "--port", strconv.Itoa(port), "--socket-dir", sock)
	c.Path, c.Args[0] = p.bin, p.bin
	if r := e.exec(c); r.code != 0 {
		out, _ := os.ReadFile(filepath.Join(target, "rewind-start.log"))
		t.Fatalf("restore: %v\n%s", r, out)
	}
	t.Cleanup(func() { _ = pg.Command("pg_ctl", "-D", target, "-m", "immediate", "-w", "stop").Run() })
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable", sock, port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, "select v from marker").Scan(&v); err != nil || v != "after the batches" {
		t.Fatalf("restored marker: %q, %v", v, err)
	}
}

// TestPgWalPushBatchCrash kills wal-push in the middle of a batch, then
// pushes one of the batch's segments alone and the first again: every
// segment ends up stored once with its own content.
func TestPgWalPushBatchCrash(t *testing.T) {
	p := newPgRepo(t)
	pg := testutil.StartPostgres(t, testutil.PGOptions{})
	names := switchWAL(t, pg, 4)
	e := p.env(t)
	// A pg_wal of our own, with the segments ready to archive.
	walDir := filepath.Join(e.dir, "pg_wal")
	if err := os.MkdirAll(filepath.Join(walDir, "archive_status"), 0o700); err != nil {
		t.Fatal(err)
	}
	segs := map[string][]byte{}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(pg.DataDir, "pg_wal", n))
		if err != nil {
			t.Fatal(err)
		}
		segs[n] = b
		if err := os.WriteFile(filepath.Join(walDir, n), b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(walDir, "archive_status", n+".ready"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	seg := func(n string) string { return filepath.Join(walDir, n) }
	killed := func(r result) bool { return r.code == -1 || r.code == 128+9 }
	for _, point := range []string{"blobs-saved", "flushed"} {
		if r := e.with(crashHookEnv, point).run("pg", "wal-push", "--pgdata", pg.DataDir, seg(names[0])); !killed(r) {
			t.Fatalf("wal-push with the crash hook at %s was not killed: %v", point, r)
		}
	}
	// At random moments of a batch.
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	for range 4 {
		c := e.cmd("pg", "wal-push", "--pgdata", pg.DataDir, seg(names[0]))
		c.Stdout, c.Stderr = io.Discard, io.Discard
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		_ = c.Process.Kill()
		_ = c.Wait()
	}
	// If one of them finished, the batch is stored whole.
	var first WALPushJSON
	r := e.mustRun("pg", "wal-push", "--json", "--batch", "1", "--pgdata", pg.DataDir, seg(names[0]))
	if err := json.Unmarshal(r.stdout, &first); err != nil {
		t.Fatal(err)
	}
	if !first.Stored {
		for _, n := range names[1:] {
			if r := e.mustRun("pg", "wal-push", "--pgdata", pg.DataDir, seg(n)); !strings.Contains(string(r.stdout), "stored already") {
				t.Fatalf("%s stored by itself after a killed batch had stored %s: %s", n, names[0], r.stdout)
			}
		}
		t.Log("a randomly killed batch finished first; named crash points only")
	} else if first.IndexFile == "" {
		t.Fatalf("first push stored without an index file: %s", r.stdout)
	}
	// The second segment alone, as if PostgreSQL had moved on.
	var doc WALPushJSON
	r = e.mustRun("pg", "wal-push", "--json", "--batch", "1", "--pgdata", pg.DataDir, seg(names[1]))
	if first.Stored && (json.Unmarshal(r.stdout, &doc) != nil || !doc.Stored || len(doc.Batch) != 0) {
		t.Fatalf("push of %s after the crashed batch: %s", names[1], r.stdout)
	}
	// The third: stored with the fourth, not stored yet, in its batch.
	r = e.mustRun("pg", "wal-push", "--json", "--pgdata", pg.DataDir, seg(names[2]))
	doc = WALPushJSON{}
	if err := json.Unmarshal(r.stdout, &doc); first.Stored && (err != nil || !doc.Stored || len(doc.Batch) != 1 || doc.Batch[0].Name != names[3]) {
		t.Fatalf("push of %s: %s (%v)", names[2], r.stdout, err)
	}
	for _, n := range names {
		if r := e.mustRun("pg", "wal-push", "--pgdata", pg.DataDir, seg(n)); !strings.Contains(string(r.stdout), "stored already") {
			t.Fatalf("%s: %s", n, r.stdout)
		}
		dest := e.path(n)
		e.mustRun("pg", "wal-fetch", n, dest)
		if got, _ := os.ReadFile(dest); !slices.Equal(got, segs[n]) {
			t.Fatalf("%s fetched back differs", n)
		}
	}
	if r := e.mustRun("pg", "wal-list"); len(r.stderr) != 0 {
		t.Fatalf("wal-list warns: %s", r.stderr)
	}
	// Other content under a batched name: its own push is refused.
	bad := slices.Clone(segs[names[2]])
	bad[5000] ^= 0xFF
	if err := os.WriteFile(seg(names[2]), bad, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := e.run("pg", "wal-push", "--pgdata", pg.DataDir, seg(names[2])); r.code != 1 || !strings.Contains(string(r.stderr), "stored already with other content") {
		t.Fatalf("push of a modified batched segment: %v", r)
	}
	e.mustRun("check", "--read-data")
	e.mustRun("pg", "check")
}
