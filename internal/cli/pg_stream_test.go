package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/testutil"
)

// pgTableSum is a digest of table t's rows in id order.
func pgTableSum(t *testing.T, pg *testutil.PG, host string, port int) string {
	t.Helper()
	out, err := pg.Command("psql", "-X", "-At", "-h", host, "-p", strconv.Itoa(port), "-U", "postgres", "-d", "postgres",
		"-c", `SELECT count(*) || ':' || md5(string_agg(id::text || filler, ',' ORDER BY id)) FROM t`).CombinedOutput()
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestPgBackupStream: a base backup over the replication protocol of a
// cluster with data restores with pg restore into a directory that
// pg_verifybackup finds identical to the server's manifest, starts, and
// holds the same rows; an incremental streamed backup after a small
// change adds little. A local backup of the same cluster is timed beside
// it (logged, not asserted).
func TestPgBackupStream(t *testing.T) {
	pg := testutil.StartPostgres(t, testutil.PGOptions{})
	pg.Exec(t, `CREATE TABLE t (id bigint PRIMARY KEY, filler text) WITH (autovacuum_enabled = off);
		INSERT INTO t SELECT g, md5(g::text) || repeat('x', 60) FROM generate_series(1, 100000) g;`)
	pg.Exec(t, `VACUUM (FREEZE, ANALYZE) t`)
	pg.Exec(t, `CHECKPOINT`)
	want := pgTableSum(t, pg, pg.SocketDir, pg.Port)
	e := newRepo(t, 0)

	t0 := time.Now()
	first := pgBackupJSON(t, e, "--stream", "--dsn", pg.DSN(), "--fast")
	streamTime := time.Since(t0)
	local := newRepo(t, 0)
	t0 = time.Now()
	loc := pgBackupJSON(t, local, "--dsn", pg.DSN(), "--fast")
	localTime := time.Since(t0)
	t.Logf("same cluster: stream backup %v, %.0f bytes added (%.0f packed); local backup %v, %.0f bytes added (%.0f packed)",
		streamTime.Round(time.Millisecond), first["data_added"], first["data_added_packed"],
		localTime.Round(time.Millisecond), loc["data_added"], loc["data_added_packed"])

	// Streamed files are cut as the local backup cuts them: a streamed
	// backup after the local one finds its data again.
	mixed := pgBackupJSON(t, local, "--stream", "--dsn", pg.DSN(), "--fast")
	t.Logf("a streamed backup after the local one added %.0f bytes", mixed["data_added"])
	if mixed["data_added"].(float64) >= 0.2*loc["data_added"].(float64) {
		t.Errorf("a streamed backup after a local one of the same cluster added %.0f bytes, not less than 20%% of the local one's %.0f: not chunked alike",
			mixed["data_added"], loc["data_added"])
	}

	var sns []struct {
		ID       string   `json:"id"`
		Paths    []string `json:"paths"`
		Postgres *struct {
			Method   string   `json:"method"`
			Manifest bool     `json:"manifest"`
			SystemID string   `json:"system_identifier"`
			DataDir  string   `json:"data_directory"`
			Timeline uint32   `json:"timeline"`
			StartLSN string   `json:"start_lsn"`
			StopLSN  string   `json:"stop_lsn"`
			WALFiles []string `json:"wal_files"`
			Label    string   `json:"label"`
		} `json:"postgres"`
	}
	if err := json.Unmarshal(e.mustRun("snapshots", "--json").stdout, &sns); err != nil {
		t.Fatal(err)
	}
	if len(sns) != 1 || sns[0].Postgres == nil {
		t.Fatalf("want one snapshot with postgres metadata, got %+v", sns)
	}
	p := sns[0].Postgres
	if p.Method != "stream" || !p.Manifest || p.DataDir != pg.DataDir || sns[0].Paths[0] != pg.DataDir ||
		p.SystemID != strconv.FormatUint(pg.SystemID(t), 10) || p.Timeline != 1 || p.StartLSN == "" || p.StopLSN == "" ||
		len(p.WALFiles) == 0 || p.Label == "" {
		t.Errorf("streamed snapshot metadata: %+v paths %v", p, sns[0].Paths)
	}

	// Restore, check the files against the server's manifest with
	// pg_verifybackup (which also parses the WAL in pg_wal), start, compare.
	base := pg.MkdirOwned(t, "restore")
	sock := pg.MkdirOwned(t, "restore-sock")
	target := filepath.Join(base, "data")
	port := pgFreePort(t)
	e.mustRun("pg", "restore", sns[0].ID, "--target", target, "--port", strconv.Itoa(port), "--socket-dir", sock)
	if out, err := pg.Command("pg_verifybackup", "-i", "postgresql.auto.conf", target).CombinedOutput(); err != nil {
		t.Errorf("pg_verifybackup of the restored streamed backup: %v\n%s", err, out)
	}
	logFile := filepath.Join(base, "server.log")
	if out, err := pg.Command("pg_ctl", "-D", target, "-l", logFile, "-w", "-t", "120", "start").CombinedOutput(); err != nil {
		log, _ := os.ReadFile(logFile)
		t.Fatalf("start the restored cluster: %v\n%s\n%s", err, out, log)
	}
	t.Cleanup(func() { _ = pg.Command("pg_ctl", "-D", target, "-m", "immediate", "-w", "stop").Run() })
	if got := pgTableSum(t, pg, sock, port); got != want {
		t.Errorf("restored table: %s, want %s", got, want)
	}

	// An incremental streamed backup after changing 1% of the rows.
	pg.Exec(t, `UPDATE t SET filler = repeat('y', 92) WHERE id <= 1000`)
	second := pgBackupJSON(t, e, "--stream", "--dsn", pg.DSN(), "--fast")
	a1, a2 := first["data_added"].(float64), second["data_added"].(float64)
	t.Logf("first streamed backup added %.0f bytes, the second after changing 1%% of the rows %.0f (files: %v new, %v changed, %v unchanged)",
		a1, a2, second["files_new"], second["files_changed"], second["files_unchanged"])
	if a2 >= 0.2*a1 {
		t.Errorf("the second streamed backup added %.0f bytes, not less than 20%% of the first's %.0f", a2, a1)
	}
}

// TestPgBackupStreamBadInput: a file damaged in transfer fails the
// manifest check and saves nothing; a role without REPLICATION and a
// server with wal_level=minimal are refused with clear messages.
func TestPgBackupStreamBadInput(t *testing.T) {
	pg := testutil.StartPostgres(t, testutil.PGOptions{})
	pg.Exec(t, `CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g; CREATE ROLE norepl LOGIN`)
	e := newRepo(t, 0)
	bad := e.with(streamCorruptEnv, "global/pg_control")
	r := bad.expectCode(1, "pg", "backup", "--stream", "--dsn", pg.DSN(), "--fast")
	t.Logf("damaged file: %s", r.stderr)
	if s := string(r.stderr); !strings.Contains(s, "does not match its manifest") || !strings.Contains(s, "global/pg_control") {
		t.Errorf("damaged file: want a manifest mismatch naming global/pg_control, got %s", s)
	}
	noSnapshots := func(what string) {
		t.Helper()
		if out := strings.TrimSpace(string(e.mustRun("snapshots", "--json").stdout)); out != "[]" {
			t.Errorf("%s stored a snapshot: %s", what, out)
		}
	}
	noSnapshots("a backup that failed its manifest check")

	dsn := fmt.Sprintf("host=%s port=%d user=norepl dbname=postgres sslmode=disable", pg.SocketDir, pg.Port)
	r = e.expectCode(1, "pg", "backup", "--stream", "--dsn", dsn)
	t.Logf("role without REPLICATION: %s", r.stderr)
	if s := string(r.stderr); !strings.Contains(s, "ALTER ROLE") {
		t.Errorf("role without REPLICATION: want a message saying to grant REPLICATION, got %s", s)
	}
	noSnapshots("a refused role")

	minimal := testutil.StartPostgres(t, testutil.PGOptions{Settings: map[string]string{"wal_level": "minimal", "max_wal_senders": "0"}})
	r = e.expectCode(1, "pg", "backup", "--stream", "--dsn", minimal.DSN())
	t.Logf("wal_level=minimal: %s", r.stderr)
	if s := string(r.stderr); !strings.Contains(s, "wal_level = replica") || !strings.Contains(s, "max_wal_senders") {
		t.Errorf("wal_level=minimal: want a message saying what to set, got %s", s)
	}
	noSnapshots("a server with wal_level=minimal")

	ts := pg.MkdirOwned(t, "tablespace")
	pg.Exec(t, fmt.Sprintf(`CREATE TABLESPACE elsewhere LOCATION '%s'`, ts))
	r = e.expectCode(1, "pg", "backup", "--stream", "--dsn", pg.DSN())
	t.Logf("tablespace: %s", r.stderr)
	if s := string(r.stderr); !strings.Contains(s, "tablespaces") || !strings.Contains(s, ts) {
		t.Errorf("a tablespace: want a refusal naming it, got %s", s)
	}
	noSnapshots("a cluster with a tablespace")
}

// TestPgBackupStreamAuto: without --stream and --pgdata, a data
// directory that cannot be read here (hidden under an empty tmpfs in a
// mount namespace of rewind's own, as a remote server's path is absent
// here) makes pg backup take a streamed backup by itself, recorded under
// the server's data_directory; with --pgdata it is refused instead.
func TestPgBackupStreamAuto(t *testing.T) {
	if !testutil.IsRoot() {
		if testutil.CI() {
			t.Fatal("needs root, to mount in a namespace of its own")
		}
		t.Skip("needs root")
	}
	testutil.RequireTool(t, "unshare")
	pg := testutil.StartPostgres(t, testutil.PGOptions{})
	e := newRepo(t, 0)
	hidden := func(args ...string) *exec.Cmd {
		c := exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "sh", "-c",
			`mount -t tmpfs none "$0" && exec "$@"`, pg.DataDir, rewindBin}, args...)...)
		c.Env = e.environ()
		c.Dir = e.dir
		return c
	}
	r := e.exec(hidden("pg", "backup", "--dsn", pg.DSN(), "--fast"))
	if r.code != 0 {
		t.Fatalf("pg backup of a data directory hidden here: %v", r)
	}
	if !strings.Contains(string(r.stdout), "over the replication protocol") {
		t.Errorf("pg backup of an unreadable data directory: want a line saying it streams, got %s", r.stdout)
	}
	var sns []struct {
		Paths    []string `json:"paths"`
		Postgres *struct {
			Method string `json:"method"`
		} `json:"postgres"`
	}
	if err := json.Unmarshal(e.mustRun("snapshots", "--json").stdout, &sns); err != nil {
		t.Fatal(err)
	}
	if len(sns) != 1 || sns[0].Postgres == nil || sns[0].Postgres.Method != "stream" || sns[0].Paths[0] != pg.DataDir {
		t.Errorf("want one streamed snapshot of %s, got %+v", pg.DataDir, sns)
	}
	// With --pgdata a local backup was asked for: no fallback.
	r = e.exec(hidden("pg", "backup", "--dsn", pg.DSN(), "--pgdata", pg.DataDir))
	if r.code != 1 || !strings.Contains(string(r.stderr), "cannot be read here") {
		t.Errorf("--pgdata of an unreadable folder: want exit 1 and a refusal, got %v", r)
	}
}
