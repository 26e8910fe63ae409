package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/pg/wal"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/testutil"
)

// jsonPgDelta is the strict form of the delta line of pg restore
// --delta --json (docs/JSON.md).
type jsonPgDelta struct {
	MessageType    string `json:"message_type"`
	FilesRewritten int64  `json:"files_rewritten"`
	BytesRewritten int64  `json:"bytes_rewritten"`
	FilesKept      int64  `json:"files_kept"`
	BytesKept      int64  `json:"bytes_kept"`
	Removed        int64  `json:"entries_removed"`
}

func init() { schemaTypes["pg.restore.delta"] = reflect.TypeFor[jsonPgDelta]() }

// drillSetup is a cluster archiving into a repository its OS user can
// use, with table t (ids 1..n) and one base backup taken after ids 1..n/2.
type drillSetup struct {
	p   *pgRepo
	pg  *testutil.PG
	e   *env
	ids []int64 // every row committed, archived
}

func newDrillSetup(t *testing.T, n int) *drillSetup {
	t.Helper()
	p := newPgRepo(t)
	pg := testutil.StartPostgres(t, testutil.PGOptions{ArchiveCommand: p.archiveCommand(), ArchiveTimeout: "1s"})
	pg.Exec(t, fmt.Sprintf(`CREATE TABLE t (id bigint PRIMARY KEY, filler text);
		INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, %d) g;`, n/2))
	s := &drillSetup{p: p, pg: pg, e: p.env(t)}
	if r := p.runAs(t, pg, pg.DataDir, "pg", "backup", "--dsn", pg.DSN(), "--fast"); r.code != 0 {
		t.Fatalf("pg backup as the cluster's user: %v", r)
	}
	pg.Exec(t, fmt.Sprintf(`INSERT INTO t SELECT g, repeat('y', 100) FROM generate_series(%d, %d) g`, n/2+1, n))
	waitArchived(t, pg, pg.QueryValue(t, "select pg_walfile_name(pg_switch_wal())"))
	for i := 1; i <= n; i++ {
		s.ids = append(s.ids, int64(i))
	}
	return s
}

// run runs rewind from the copy the cluster's user can execute: its
// path is what restore_command names.
func (s *drillSetup) run(args ...string) result {
	c := s.e.cmd(args...)
	c.Path, c.Args[0] = s.p.bin, s.p.bin
	return s.e.exec(c)
}

func pgIDs(t *testing.T, dsn string) []int64 {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect %s: %v", dsn, err)
	}
	defer c.Close(ctx)
	rs, err := c.Query(ctx, "select id from t order by id")
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rs, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestPgRestoreDelta: a restored cluster, started, written to (on a new
// timeline) and stopped, restored over with --delta to the same point
// holds that point's rows again; most files are kept, the new
// timeline's WAL is removed; a running cluster is refused.
func TestPgRestoreDelta(t *testing.T) {
	s := newDrillSetup(t, 2000)
	pg := s.pg
	base := pg.MkdirOwned(t, "delta")
	sock := pg.MkdirOwned(t, "delta-sock")
	target := filepath.Join(base, "data")
	port := strconv.Itoa(pgFreePort(t))
	restore := func(extra ...string) result {
		t.Helper()
		r := s.run(append([]string{"--json", "pg", "restore", "--latest", "--target", target, "--start", "--no-archive", "--port", port, "--socket-dir", sock}, extra...)...)
		if r.code != 0 {
			log, _ := os.ReadFile(filepath.Join(target, "rewind-start.log"))
			t.Fatalf("restore %v: %v\nlog:\n%s", extra, r, log)
		}
		return r
	}
	stop := func() {
		if out, err := pg.Command("pg_ctl", "-D", target, "-m", "fast", "-w", "stop").CombinedOutput(); err != nil {
			t.Fatalf("stop: %v\n%s", err, out)
		}
	}
	t.Cleanup(func() { _ = pg.Command("pg_ctl", "-D", target, "-m", "immediate", "-w", "stop").Run() })
	dsn := fmt.Sprintf("host=%s port=%s user=postgres dbname=postgres sslmode=disable", sock, port)
	restore()
	if got := pgIDs(t, dsn); !slices.Equal(got, s.ids) {
		t.Fatalf("first restore: %d rows, want %d", len(got), len(s.ids))
	}
	// Running: --delta is refused and nothing is changed.
	r := s.run("pg", "restore", "--latest", "--delta", "--target", target)
	if r.code != 1 || !strings.Contains(string(r.stderr), "is alive; stop the cluster first") {
		t.Errorf("--delta over a running cluster: want a refusal, got %v", r)
	}
	// Changes after the point: more rows, updates, a new table.
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`INSERT INTO t SELECT g, 'z' FROM generate_series(100001, 100500) g`,
		`UPDATE t SET filler = 'changed' WHERE id <= 50`, `CREATE TABLE extra AS SELECT 1 AS x`, `CHECKPOINT`} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatal(q, err)
		}
	}
	c.Close(ctx)
	stop()
	if _, err := os.Stat(filepath.Join(target, "pg_wal", "00000002.history")); err != nil {
		t.Fatalf("the promoted restore wrote no timeline 2 history: %v", err)
	}

	r = restore("--delta")
	var delta map[string]any
	for _, l := range jsonLines(t, r) {
		if l.obj["message_type"] == "delta" {
			delta = l.obj
			checkDoc(t, "pg.restore.delta", l.raw, &jsonPgDelta{})
		}
	}
	if delta == nil {
		t.Fatalf("restore --delta --json printed no delta line: %s", r.stdout)
	}
	kept, rewritten := delta["files_kept"].(float64), delta["files_rewritten"].(float64)
	t.Logf("delta: %v", delta)
	if kept < 5*rewritten || rewritten == 0 || delta["entries_removed"].(float64) == 0 {
		t.Errorf("delta restore kept %v files and rewrote %v, removed %v: want most kept, some rewritten and removed", kept, rewritten, delta["entries_removed"])
	}
	if got := pgIDs(t, dsn); !slices.Equal(got, s.ids) {
		t.Errorf("after --delta: %d rows (last %v), want the %d of the restored point", len(got), tail(got), len(s.ids))
	}
	var filler string
	if c, err := pgx.Connect(ctx, dsn); err != nil {
		t.Fatal(err)
	} else {
		if err := c.QueryRow(ctx, `select filler from t where id = 1`).Scan(&filler); err != nil || filler != strings.Repeat("x", 100) {
			t.Errorf("row 1 after --delta: %q %v", filler, err)
		}
		if err := c.QueryRow(ctx, `select to_regclass('extra') is null`).Scan(new(bool)); err != nil {
			t.Error(err)
		}
		var gone bool
		_ = c.QueryRow(ctx, `select to_regclass('extra') is null`).Scan(&gone)
		if !gone {
			t.Errorf("table extra, made after the point, survived --delta")
		}
		c.Close(ctx)
	}
	stop()
	// Not a data directory: refused.
	r = s.run("pg", "restore", "--latest", "--delta", "--target", sock)
	if r.code != 1 || !strings.Contains(string(r.stderr), "not a PostgreSQL data directory") {
		t.Errorf("--delta over a folder without PG_VERSION: %v", r)
	}
}

// jsonPgTableDump is the strict form of pg restore --table --json.
type jsonPgTableDump struct {
	MessageType string   `json:"message_type"`
	SnapshotID  string   `json:"snapshot_id"`
	Table       string   `json:"table"`
	Database    string   `json:"database"`
	File        string   `json:"file"`
	Bytes       int64    `json:"bytes"`
	Stopped     []string `json:"recovery_stopped"`
}

func init() { schemaTypes["pg.restore.table"] = reflect.TypeFor[jsonPgTableDump]() }

// TestPgTableDump: a table changed after T, dumped as it was at T from a
// scratch instance, loads into a fresh database with exactly the rows at
// T; the scratch folder is empty afterwards; an unknown table is a clear
// error.
func TestPgTableDump(t *testing.T) {
	s := newDrillSetup(t, 200)
	pg := s.pg
	pg.Exec(t, `CREATE SCHEMA shop; CREATE TABLE shop.orders (id int PRIMARY KEY, item text);
		INSERT INTO shop.orders SELECT g, 'item ' || g FROM generate_series(1, 100) g;`)
	time.Sleep(300 * time.Millisecond)
	at := time.Now()
	time.Sleep(300 * time.Millisecond)
	pg.Exec(t, `DELETE FROM shop.orders WHERE id <= 10; UPDATE shop.orders SET item = 'changed' WHERE id > 90;
		INSERT INTO shop.orders VALUES (1000, 'late')`)
	waitArchived(t, pg, pg.QueryValue(t, "select pg_walfile_name(pg_switch_wal())"))

	scratch := pg.MkdirOwned(t, "scratch")
	out := filepath.Join(t.TempDir(), "orders.sql")
	r := s.run("--json", "pg", "restore", "--at", at.UTC().Format(time.RFC3339Nano), "--table", "shop.orders",
		"--dump", out, "--scratch", scratch)
	if r.code != 0 {
		t.Fatalf("pg restore --table: %v", r)
	}
	lines := jsonLines(t, r)
	checkDoc(t, "pg.restore.table", lines[len(lines)-1].raw, &jsonPgTableDump{})
	if ents, err := os.ReadDir(scratch); err != nil || len(ents) != 0 {
		t.Errorf("scratch folder after the dump: %v %v, want it empty", ents, err)
	}
	pg.Exec(t, `CREATE DATABASE fresh`)
	// pg_dump -t dumps the table, not its schema.
	if o, err := pg.Command("psql", "-X", "-q", "-d", "fresh", "-c", "CREATE SCHEMA shop").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, o)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	load := pg.Command("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "fresh")
	load.Stdin = f
	if o, err := load.CombinedOutput(); err != nil {
		t.Fatalf("psql -f dump into a fresh database: %v\n%s", err, o)
	}
	rows, err := pgx.Connect(context.Background(), pg.DSNFor("fresh"))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close(context.Background())
	var n, lo, hi, changed int
	if err := rows.QueryRow(context.Background(), `SELECT count(*), min(id), max(id), count(*) FILTER (WHERE item <> 'item ' || id) FROM shop.orders`).Scan(&n, &lo, &hi, &changed); err != nil {
		t.Fatal(err)
	}
	if n != 100 || lo != 1 || hi != 100 || changed != 0 {
		t.Errorf("dumped table holds %d rows (ids %d..%d, %d changed), want the 100 rows at T unchanged", n, lo, hi, changed)
	}
	// Only that table is in the dump.
	var tables int
	if err := rows.QueryRow(context.Background(), `SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')`).Scan(&tables); err != nil || tables != 1 {
		t.Errorf("the dump loaded %d tables (%v), want 1", tables, err)
	}

	// An unknown table: a clear error, no dump, scratch removed.
	bad := filepath.Join(t.TempDir(), "nope.sql")
	r = s.run("pg", "restore", "--latest", "--table", "shop.nope", "--dump", bad, "--scratch", scratch)
	if r.code != 1 || !strings.Contains(string(r.stderr), "shop.nope is not in database \"postgres\"") || !strings.Contains(string(r.stderr), "shop.orders") {
		t.Errorf("unknown table: want exit 1 naming it and the tables there, got %v", r)
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Errorf("a dump file was left for an unknown table: %v", err)
	}
	if ents, _ := os.ReadDir(scratch); len(ents) != 0 {
		t.Errorf("scratch folder after a failed dump holds %v", ents)
	}

	// Interrupted (Ctrl-C) once the scratch server runs: it is stopped
	// and the folder removed.
	c := s.e.cmd("pg", "restore", "--latest", "--table", "shop.orders", "--dump", bad, "--scratch", scratch)
	c.Path, c.Args[0] = s.p.bin, s.p.bin
	var stderr strings.Builder
	c.Stderr = &stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	var pidFile string
	for deadline := time.Now().Add(2 * time.Minute); pidFile == ""; time.Sleep(20 * time.Millisecond) {
		m, _ := filepath.Glob(filepath.Join(scratch, "rewind-scratch-*", "data", "postmaster.pid"))
		if len(m) > 0 {
			pidFile = m[0]
		}
		if time.Now().After(deadline) {
			c.Process.Kill()
			t.Fatal("the scratch server did not start")
		}
	}
	pidText, _ := os.ReadFile(pidFile)
	if err := c.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err = c.Wait()
	if err == nil {
		t.Logf("the dump finished before the interrupt arrived")
	}
	if ents, _ := os.ReadDir(scratch); len(ents) != 0 {
		t.Errorf("scratch folder after an interrupt holds %v (stderr: %s)", ents, stderr.String())
	}
	if first, _, _ := strings.Cut(string(pidText), "\n"); first != "" {
		if pid, err := strconv.Atoi(first); err == nil && processRuns(pid) {
			t.Errorf("the scratch server (pid %d) still runs after the interrupt; rewind said: %s", pid, stderr.String())
			syscall.Kill(pid, syscall.SIGQUIT)
		}
	}
}

// jsonPgVerify is the strict form of pg verify --json.
type jsonPgVerify struct {
	Result          string         `json:"result"`
	Error           string         `json:"error"`
	SnapshotID      string         `json:"snapshot_id"`
	Target          string         `json:"target"`
	RestoreSeconds  float64        `json:"restore_seconds"`
	RecoverySeconds float64        `json:"recovery_seconds"`
	RTOSeconds      float64        `json:"rto_seconds"`
	Files           int64          `json:"files"`
	Bytes           int64          `json:"bytes"`
	ReachedLSN      string         `json:"reached_lsn"`
	ArchiveEndLSN   string         `json:"archive_end_lsn"`
	AmcheckOK       *bool          `json:"amcheck_ok"`
	AmcheckOutput   string         `json:"amcheck_output"`
	Stopped         []string       `json:"recovery_stopped"`
	Prespooled      int            `json:"prespooled"`
	Fetches         *jsonPgFetches `json:"recovery_fetches"`
	EventID         string         `json:"event_id"`
}

// jsonPgFetches is the strict form of the recovery_fetches line (and
// pg verify's object).
type jsonPgFetches struct {
	MessageType     string `json:"message_type"`
	Spool           int    `json:"spool"`
	Repository      int    `json:"repository"`
	NotStored       int    `json:"not_stored"`
	NotStoredMarker int    `json:"not_stored_marker"`
	RepositoryOpens int    `json:"repository_opens"`
}

// jsonPgPrespool is the strict form of pg restore's prespool line.
type jsonPgPrespool struct {
	MessageType    string `json:"message_type"`
	Segments       int    `json:"segments"`
	History        int    `json:"history"`
	Planned        int    `json:"planned"`
	Truncated      bool   `json:"truncated"`
	TargetTimeline uint32 `json:"target_timeline"`
	Error          string `json:"error"`
}

func init() {
	schemaTypes["pg.restore.fetches"] = reflect.TypeFor[jsonPgFetches]()
	schemaTypes["pg.restore.prespool"] = reflect.TypeFor[jsonPgPrespool]()
}

func init() { schemaTypes["pg.verify"] = reflect.TypeFor[jsonPgVerify]() }

// TestPgVerify: a drill of the newest point passes, measures the RTO and
// records it in the event log; with the pack of a WAL segment the
// recovery needs damaged, the drill fails saying where recovery stopped,
// and that is recorded too.
func TestPgVerify(t *testing.T) {
	s := newDrillSetup(t, 200)
	pg := s.pg
	var last string
	for i := range 3 {
		pg.Exec(t, fmt.Sprintf(`INSERT INTO t SELECT g, 'w' FROM generate_series(%d, %d) g`, 1000*(i+1), 1000*(i+1)+500))
		last = pg.QueryValue(t, "select pg_walfile_name(pg_switch_wal())")
	}
	waitArchived(t, pg, last)
	scratch := pg.MkdirOwned(t, "scratch")
	verify := func() (result, jsonPgVerify) {
		t.Helper()
		r := s.run("--json", "pg", "verify", "--scratch", scratch)
		var v jsonPgVerify
		lines := jsonLines(t, r)
		if len(lines) == 0 {
			t.Fatalf("pg verify --json printed nothing: %v", r)
		}
		checkDoc(t, "pg.verify", lines[len(lines)-1].raw, &v)
		if ents, _ := os.ReadDir(scratch); len(ents) != 0 {
			t.Errorf("scratch folder after the drill holds %v", ents)
		}
		return r, v
	}
	r, v := verify()
	if r.code != 0 || v.Result != "success" || v.AmcheckOK == nil || !*v.AmcheckOK || v.RTOSeconds <= 0 || v.RecoverySeconds <= 0 || v.EventID == "" || v.ReachedLSN == "" {
		t.Fatalf("a drill of an intact repository: %v\n%+v", r, v)
	}
	t.Logf("drill: restore %.2fs, recovery %.2fs, RTO %.2fs, %d files, reached %s (archive end %s)", v.RestoreSeconds, v.RecoverySeconds, v.RTOSeconds, v.Files, v.ReachedLSN, v.ArchiveEndLSN)
	var evs []struct {
		ID     string `json:"id"`
		Job    string `json:"job"`
		Kind   string `json:"kind"`
		Result string `json:"result"`
		Error  string `json:"error"`
		Snap   string `json:"snapshot_id"`
		Steps  []struct {
			Kind     string `json:"kind"`
			Result   string `json:"result"`
			Duration int64  `json:"duration_ns"`
		} `json:"steps"`
	}
	events := func() {
		t.Helper()
		if err := json.Unmarshal(s.e.mustRun("--repo", s.p.repo, "events", "--json", "--job", "pg verify").stdout, &evs); err != nil {
			t.Fatal(err)
		}
	}
	events()
	if len(evs) != 1 || evs[0].ID != v.EventID || evs[0].Kind != "pg-verify" || evs[0].Result != "success" || evs[0].Snap != v.SnapshotID || len(evs[0].Steps) != 3 {
		t.Fatalf("events after a passing drill: %+v", evs)
	}
	var rto int64
	for _, st := range evs[0].Steps[:2] {
		rto += st.Duration
	}
	if got := float64(rto) / 1e9; got < v.RTOSeconds-0.01 || got > v.RTOSeconds+0.01 || evs[0].Steps[1].Kind != "recovery" {
		t.Errorf("recorded steps %+v do not sum to the RTO %.3f", evs[0].Steps, v.RTOSeconds)
	}

	// Damage the pack of the second newest segment: recovery cannot fetch
	// it and ends before the newest.
	damageWALSegment(t, s.p.repo, 2)
	r, v = verify()
	if r.code != 1 || v.Result != "failed" || !strings.Contains(v.Error, "recovery stopped at") || !strings.Contains(string(r.stderr), "restore drill failed") {
		t.Fatalf("a drill with a damaged WAL segment: want exit 1 saying where recovery stopped, got %v\n%+v", r, v)
	}
	events()
	if len(evs) != 2 || evs[1].Result != "failed" || !strings.Contains(evs[1].Error, "recovery stopped at") {
		t.Errorf("events after a failing drill: %+v", evs)
	}
}

// damageWALSegment flips bytes in the stored data of the n-th newest WAL
// segment of the repository.
func damageWALSegment(t *testing.T, repoDir string, n int) {
	t.Helper()
	ctx := context.Background()
	be, err := local.Open(ctx, repoDir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repository.Open(ctx, be, []byte(testPassword))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	cat, err := wal.Load(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	var segs []*wal.StoredEntry
	for _, e := range cat.Cluster(wal.DefaultCluster).Entries() {
		if e.Kind == wal.KindSegment {
			segs = append(segs, e)
		}
	}
	slices.SortFunc(segs, func(a, b *wal.StoredEntry) int { return int(a.SegNo) - int(b.SegNo) })
	if len(segs) < n+1 {
		t.Fatalf("only %d segments stored", len(segs))
	}
	e := segs[len(segs)-n]
	loc, ok := r.Index().Lookup(e.Blobs[0])
	if !ok {
		t.Fatalf("segment %s: blob not in the index", e.Name)
	}
	name := loc.Pack.String()
	path := filepath.Join(repoDir, "data", name[:2], name)
	makeWritable(t, path)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte("damaged!"), int64(loc.Blob.Offset)+16); err != nil {
		t.Fatal(err)
	}
	t.Logf("damaged segment %s in pack %s", e.Name, name[:8])
}

type jsonWALFetch struct {
	Name       string `json:"name"`
	Source     string `json:"source"`
	Size       int64  `json:"size"`
	Prefetched int    `json:"prefetched"`
	Spool      string `json:"spool"`
}

func init() { schemaTypes["pg.walfetch"] = reflect.TypeFor[jsonWALFetch]() }

// TestPgWalPrefetch: wal-fetch prefetches the next segments into the
// spool and serves them from there (counted in its JSON), a damaged
// spooled file is fetched again from the repository, stale files go;
// a restore with the default prefetch replays every row, fetches only
// some segments from the repository, and leaves no spool behind.
func TestPgWalPrefetch(t *testing.T) {
	s := newDrillSetup(t, 200)
	pg := s.pg
	var last string
	for i := range 6 {
		pg.Exec(t, fmt.Sprintf(`INSERT INTO t SELECT g, 'w' FROM generate_series(%d, %d) g`, 1000*(i+1), 1000*(i+1)+99))
		last = pg.QueryValue(t, "select pg_walfile_name(pg_switch_wal())")
		for g := 1000 * (i + 1); g <= 1000*(i+1)+99; g++ {
			s.ids = append(s.ids, int64(g))
		}
	}
	waitArchived(t, pg, last)
	var segs []string
	for _, f := range walList(t, s.e).Clusters[0].Files {
		if f.Kind == "segment" {
			segs = append(segs, f.Name)
		}
	}
	slices.Sort(segs)
	if len(segs) < 6 {
		t.Fatalf("only %d segments stored", len(segs))
	}
	dir := t.TempDir()
	spool := filepath.Join(dir, "spool")
	fetch := func(name string, prefetch int) jsonWALFetch {
		t.Helper()
		dest := filepath.Join(dir, "dest-"+name)
		r := s.e.mustRun("--json", "pg", "wal-fetch", "--prefetch", strconv.Itoa(prefetch), "--spool", spool, name, dest)
		var v jsonWALFetch
		checkDoc(t, "pg.walfetch", jsonLines(t, r)[0].raw, &v)
		// The bytes are the stored segment's, whatever the source.
		want := filepath.Join(dir, "plain-"+name)
		s.e.mustRun("pg", "wal-fetch", "--prefetch", "0", name, want)
		a, _ := os.ReadFile(dest)
		b, _ := os.ReadFile(want)
		if len(a) == 0 || string(a) != string(b) {
			t.Fatalf("%s from the %s: %d bytes differ from the stored %d", name, v.Source, len(a), len(b))
		}
		return v
	}
	spooled := func() []string {
		ents, _ := os.ReadDir(spool)
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return names
	}
	v := fetch(segs[0], 2)
	if v.Source != "repository" || v.Prefetched != 2 || len(spooled()) != 2 {
		t.Fatalf("first fetch: %+v, spool %v", v, spooled())
	}
	// Served from the spool, and kept there until a later segment is
	// asked for (PostgreSQL may ask for it again).
	if v = fetch(segs[1], 2); v.Source != "spool" || len(spooled()) != 2 {
		t.Errorf("second fetch: %+v, spool %v: want it served from the spool and kept", v, spooled())
	}
	if v = fetch(segs[1], 2); v.Source != "spool" {
		t.Errorf("the same segment asked again: %+v, want it from the spool", v)
	}
	// A damaged spooled file is not served: fetched again from the
	// repository, which prefetches the next ones.
	for _, n := range spooled() {
		if strings.HasPrefix(n, segs[2]) {
			if err := os.WriteFile(filepath.Join(spool, n), []byte("damaged"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A stale file (older than an hour) goes; the segment served before
	// (segs[1]) stays, as PostgreSQL may ask for it again.
	stale := filepath.Join(spool, segs[0]+".00")
	if err := os.WriteFile(stale, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	if v = fetch(segs[2], 2); v.Source != "repository" || v.Prefetched != 2 {
		t.Errorf("fetch of a damaged spooled segment: %+v", v)
	}
	if got := spooled(); len(got) != 3 || !strings.HasPrefix(got[0], segs[1]) || !strings.HasPrefix(got[1], segs[3]) || !strings.HasPrefix(got[2], segs[4]) {
		t.Errorf("spool after the refetch: %v, want %s, %s and %s only", got, segs[1], segs[3], segs[4])
	}

	// A restore replaying with the default prefetch.
	base := pg.MkdirOwned(t, "prefetch")
	sock := pg.MkdirOwned(t, "prefetch-sock")
	target := filepath.Join(base, "data")
	port := pgFreePort(t)
	r := s.run("pg", "restore", "--latest", "--prespool", "0", "--target", target, "--start", "--no-archive", "--port", strconv.Itoa(port), "--socket-dir", sock)
	t.Cleanup(func() { _ = pg.Command("pg_ctl", "-D", target, "-m", "immediate", "-w", "stop").Run() })
	log, _ := os.ReadFile(filepath.Join(target, "rewind-start.log"))
	if r.code != 0 {
		t.Fatalf("restore: %v\n%s", r, log)
	}
	if got := pgIDs(t, fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable", sock, port)); !slices.Equal(got, s.ids) {
		t.Errorf("restored with prefetch: %d rows, want %d", len(got), len(s.ids))
	}
	if _, err := os.Stat(filepath.Join(target, "pg_wal", ".rewind-prefetch")); !os.IsNotExist(err) {
		t.Errorf("the prefetch spool is left after recovery: %v", err)
	}
	restored := strings.Count(string(log), "restored log file \"0")
	fromRepo := strings.Count(string(log), "from the repository; prefetched")
	t.Logf("recovery restored %d segments: %d fetched from the repository, %d from the spool", restored, fromRepo, restored-fromRepo)
	if restored < 5 || fromRepo == 0 || fromRepo*2 > restored {
		t.Errorf("recovery restored %d segments, %d of them fetched from the repository: want most from the spool\n%s", restored, fromRepo, log)
	}
}

// processRuns reports whether process pid exists and is not a zombie
// (a server whose parent was killed may wait for a reaper that never
// comes in a container).
func processRuns(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, ok := strings.Cut(string(b), ") ")
	return ok && !strings.HasPrefix(rest, "Z")
}
