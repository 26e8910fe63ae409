package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/rewind-backup/rewind/internal/testutil"
)

// pgFreePort returns a TCP port nothing listens on now.
func pgFreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// pgWriter inserts rows one by one, each in its own transaction, and
// records the id of each after its COMMIT returned.
type pgWriter struct {
	mu        sync.Mutex
	committed []int64
	stop      chan struct{}
	done      chan error
}

func startPgWriter(t *testing.T, dsn string, first int64) *pgWriter {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	w := &pgWriter{stop: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		defer c.Close(ctx)
		for id := first; ; id++ {
			select {
			case <-w.stop:
				w.done <- nil
				return
			default:
			}
			if _, err := c.Exec(ctx, `INSERT INTO t (id, filler) VALUES ($1, repeat('w', 100))`, id); err != nil {
				w.done <- err
				return
			}
			w.mu.Lock()
			w.committed = append(w.committed, id)
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *pgWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.committed)
}

func (w *pgWriter) finish(t *testing.T) []int64 {
	t.Helper()
	close(w.stop)
	if err := <-w.done; err != nil {
		t.Fatalf("writer: %v", err)
	}
	return w.committed
}

// pgBackupJSON runs pg backup --json and returns its summary line.
func pgBackupJSON(t *testing.T, e *env, args ...string) map[string]any {
	t.Helper()
	r := e.mustRun(append([]string{"--json", "pg", "backup"}, args...)...)
	lines := jsonLines(t, r)
	if len(lines) == 0 || lines[len(lines)-1].obj["message_type"] != "summary" {
		t.Fatalf("pg backup --json printed no summary: %v", r)
	}
	return lines[len(lines)-1].obj
}

const pgTableRows = 200000

// TestPgBackupRestore: a base backup taken while a writer commits rows
// restores into a new data directory that starts, holds every row
// committed before the backup began and a prefix of the writer's rows
// (no holes), and passes pg_amcheck; a second backup after changing 1%
// of the rows adds far less than the first.
func TestPgBackupRestore(t *testing.T) {
	pg := testutil.StartPostgres(t, testutil.PGOptions{})
	pg.Exec(t, fmt.Sprintf(`CREATE TABLE t (id bigint PRIMARY KEY, filler text) WITH (autovacuum_enabled = off);
		INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, %d) g;`, pgTableRows))
	pg.Exec(t, `VACUUM (FREEZE, ANALYZE) t`)
	e := newRepo(t, 0)

	w := startPgWriter(t, pg.DSN(), pgTableRows+1)
	for w.count() < 50 {
	}
	before := w.count() // committed before the backup starts
	first := pgBackupJSON(t, e, "--dsn", pg.DSN(), "--fast")
	committed := w.finish(t)
	if len(committed) <= before {
		t.Logf("the writer committed nothing during the backup")
	}

	// The snapshot records the base backup.
	var sns []struct {
		ID       string   `json:"id"`
		Tags     []string `json:"tags"`
		Paths    []string `json:"paths"`
		Postgres *struct {
			SystemID string   `json:"system_identifier"`
			DataDir  string   `json:"data_directory"`
			Timeline uint32   `json:"timeline"`
			StartLSN string   `json:"start_lsn"`
			StopLSN  string   `json:"stop_lsn"`
			WALFiles []string `json:"wal_files"`
			Version  int      `json:"version"`
		} `json:"postgres"`
	}
	if err := json.Unmarshal(e.mustRun("snapshots", "--json").stdout, &sns); err != nil {
		t.Fatal(err)
	}
	if len(sns) != 1 || sns[0].Postgres == nil {
		t.Fatalf("want one snapshot with postgres metadata, got %+v", sns)
	}
	p := sns[0].Postgres
	if want := strconv.FormatUint(pg.SystemID(t), 10); p.SystemID != want {
		t.Errorf("system identifier %s, want %s", p.SystemID, want)
	}
	if p.DataDir != pg.DataDir || !slices.Equal(sns[0].Paths, []string{pg.DataDir}) || !slices.Contains(sns[0].Tags, "postgres") {
		t.Errorf("snapshot paths %v tags %v data dir %s, want [%s] tagged postgres", sns[0].Paths, sns[0].Tags, p.DataDir, pg.DataDir)
	}
	if p.Timeline != 1 || p.StartLSN == "" || p.StopLSN == "" || len(p.WALFiles) == 0 || p.Version/10000 < 10 {
		t.Errorf("incomplete postgres metadata: %+v", p)
	}

	// A non-empty target is refused.
	busy := t.TempDir()
	if err := os.WriteFile(filepath.Join(busy, "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := e.expectCode(1, "pg", "restore", "--latest", "--target", busy)
	if !strings.Contains(string(r.stderr), "not empty") {
		t.Errorf("non-empty target: want a message saying so, got %s", r.stderr)
	}

	// Restore and start beside the original.
	base := pg.MkdirOwned(t, "restore")
	sock := pg.MkdirOwned(t, "restore-sock")
	target := filepath.Join(base, "data")
	port := pgFreePort(t)
	e.mustRun("pg", "restore", "--latest", "--target", target, "--start", "--port", strconv.Itoa(port), "--socket-dir", sock)
	t.Cleanup(func() { _ = pg.Command("pg_ctl", "-D", target, "-m", "immediate", "-w", "stop").Run() })
	fi, err := os.Stat(target)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("restored data directory has mode %v, want 0700", fi.Mode().Perm())
	}
	dsn := fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable", sock, port)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("the restored cluster does not accept connections: %v", err)
	}
	defer c.Close(ctx)
	var initial int64
	if err := c.QueryRow(ctx, `SELECT count(*) FROM t WHERE id <= $1`, pgTableRows).Scan(&initial); err != nil {
		t.Fatal(err)
	}
	if initial != pgTableRows {
		t.Errorf("restored table holds %d of the %d rows loaded before the backup", initial, pgTableRows)
	}
	rows, err := c.Query(ctx, `SELECT id FROM t WHERE id > $1 ORDER BY id`, pgTableRows)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < before {
		t.Errorf("restored %d of the writer's rows, but %d were committed before the backup started", len(got), before)
	}
	if len(got) > len(committed) || !slices.Equal(got, committed[:len(got)]) {
		t.Errorf("restored writer rows are not a prefix of the committed ones (holes or extra rows): restored %d rows, committed %d", len(got), len(committed))
	}
	out, err := pg.Command("pg_amcheck", "--all", "--install-missing", "--heapallindexed", "-h", sock, "-p", strconv.Itoa(port), "-U", "postgres").CombinedOutput()
	if err != nil {
		t.Errorf("pg_amcheck on the restored cluster: %v\n%s", err, out)
	}

	// An incremental base backup after changing 1% of the rows (a
	// contiguous range of ids) stores far less than the first.
	pg.Exec(t, fmt.Sprintf(`UPDATE t SET filler = repeat('y', 100) WHERE id <= %d`, pgTableRows/100))
	// The second one checks the cluster with pg_amcheck first and
	// records the result in the snapshot.
	second := pgBackupJSON(t, e, "--dsn", pg.DSN(), "--fast", "--amcheck")
	if sn := string(e.mustRun("snapshots", "--json").stdout); !strings.Contains(sn, `"amcheck":{"ok":true`) {
		t.Errorf("pg backup --amcheck recorded no passing pg_amcheck in the snapshot:\n%s", sn)
	}
	a1, a2 := first["data_added"].(float64), second["data_added"].(float64)
	t.Logf("first base backup added %.0f bytes, second %.0f", a1, a2)
	if a2 >= 0.2*a1 {
		t.Errorf("the second base backup added %.0f bytes, not less than 20%% of the first's %.0f", a2, a1)
	}
}

// TestPgBackupBadInput: a wrong DSN and a server with wal_level=minimal
// are refused with a clear message, exit status 1, and nothing stored.
func TestPgBackupBadInput(t *testing.T) {
	e := newRepo(t, 0)
	r := e.expectCode(1, "pg", "backup", "--dsn", "host=/nonexistent/socket port=1 user=postgres connect_timeout=5")
	if !strings.Contains(string(r.stderr), "connect to PostgreSQL") {
		t.Errorf("wrong DSN: want a message saying the connection failed, got %s", r.stderr)
	}
	pg := testutil.StartPostgres(t, testutil.PGOptions{Settings: map[string]string{"wal_level": "minimal", "max_wal_senders": "0"}})
	r = e.expectCode(1, "pg", "backup", "--dsn", pg.DSN())
	if !strings.Contains(string(r.stderr), "wal_level is minimal") {
		t.Errorf("wal_level=minimal: want a refusal naming it, got %s", r.stderr)
	}
	if out := strings.TrimSpace(string(e.mustRun("snapshots", "--json").stdout)); out != "[]" {
		t.Errorf("refused backups stored snapshots: %s", out)
	}
	entries, err := os.ReadDir(e.path("repo", "data"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, d := range entries {
		if sub, _ := os.ReadDir(e.path("repo", "data", d.Name())); len(sub) > 0 {
			t.Errorf("refused backups stored data: %s/%s", d.Name(), sub[0].Name())
		}
	}
}
