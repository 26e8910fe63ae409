package cli

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/testutil"
)

// mysqlSnapshots lists the snapshots with their mysql records.
type mysqlSnapshotJSON struct {
	ID    string   `json:"id"`
	Tags  []string `json:"tags"`
	Paths []string `json:"paths"`
	MySQL *struct {
		Method     string `json:"method"`
		DataDir    string `json:"datadir"`
		GTID       string `json:"gtid"`
		BinlogFile string `json:"binlog_file"`
		BinlogPos  uint64 `json:"binlog_pos"`
		ServerID   uint32 `json:"server_id"`
		Tool       string `json:"tool"`
		DumpPath   string `json:"dump_path"`
	} `json:"mysql"`
}

func mysqlSnapshots(t *testing.T, e *env) []mysqlSnapshotJSON {
	t.Helper()
	var sns []mysqlSnapshotJSON
	if err := json.Unmarshal(e.mustRun("snapshots", "--json").stdout, &sns); err != nil {
		t.Fatal(err)
	}
	return sns
}

// TestMysqlBackupCLI: rewind mysql backup stores a physical backup (and a
// second one of the unchanged server adds little) and a logical one, each
// recording the consistent point; a refused login and a missing
// mariabackup are exit status 1 with what to do, and store nothing.
func TestMysqlBackupCLI(t *testing.T) {
	testutil.MariaDBProgram(t, "mariabackup")
	m := testutil.StartMariaDB(t, testutil.MariaDBOptions{})
	m.Exec(t, "CREATE DATABASE d")
	m.Exec(t, "CREATE TABLE d.t (id INT PRIMARY KEY, v TEXT) ENGINE=InnoDB")
	m.Exec(t, "USE d; INSERT INTO d.t SELECT seq, REPEAT(MD5(seq), 20) FROM seq_1_to_20000")
	e := newRepo(t, 0)
	pw := m.PasswordFile(t)
	connArgs := []string{"--socket", m.Socket, "--user", "rewind", "--mysql-password-file", pw}

	bad := e.expectCode(1, "mysql", "backup", "--socket", m.Socket, "--user", "rewind", "--mysql-password-file", e.path("nope"))
	if !strings.Contains(string(bad.stderr), "password file") {
		t.Errorf("missing password file: %s", bad.stderr)
	}
	wrong := e.path("wrong.pw")
	if err := os.WriteFile(wrong, []byte("not-the-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad = e.expectCode(1, "mysql", "backup", "--socket", m.Socket, "--user", "rewind", "--mysql-password-file", wrong)
	if !strings.Contains(string(bad.stderr), `refused user "rewind"`) {
		t.Errorf("wrong password: %s", bad.stderr)
	}
	bad = e.expectCode(1, append([]string{"mysql", "backup", "--mariabackup", e.path("no-such-program")}, connArgs...)...)
	if !strings.Contains(string(bad.stderr), "is not a program") {
		t.Errorf("missing mariabackup: %s", bad.stderr)
	}
	bad = e.expectCode(1, "mysql", "backup", "--socket", e.path("no-server.sock"), "--user", "rewind", "--mysql-password-file", pw)
	if !strings.Contains(string(bad.stderr), "is it running?") {
		t.Errorf("no server: %s", bad.stderr)
	}
	if sns := mysqlSnapshots(t, e); len(sns) != 0 {
		t.Fatalf("refused backups stored %d snapshots", len(sns))
	}

	t0 := time.Now()
	r := e.mustRun(append([]string{"--json", "mysql", "backup", "--hostname", "db1", "--tag", "nightly"}, connArgs...)...)
	t.Logf("physical backup of %s: %s", m.DataDir, time.Since(t0))
	first := jsonLines(t, r)
	t0 = time.Now()
	r = e.mustRun(append([]string{"--json", "mysql", "backup", "--hostname", "db1"}, connArgs...)...)
	t.Logf("second physical backup: %s", time.Since(t0))
	second := jsonLines(t, r)
	s1, s2 := first[len(first)-1].obj, second[len(second)-1].obj
	if s1["message_type"] != "summary" || s2["message_type"] != "summary" {
		t.Fatalf("no summary: %v %v", s1, s2)
	}
	a1, a2 := s1["data_added"].(float64), s2["data_added"].(float64)
	t.Logf("data added: first %.0f bytes, second (unchanged server) %.0f bytes; parent %v", a1, a2, s2["parent"])
	if s2["parent"] != s1["snapshot_id"] || a2*4 > a1 {
		t.Errorf("second backup: parent %v (want %v), added %.0f of the first's %.0f", s2["parent"], s1["snapshot_id"], a2, a1)
	}
	e.mustRun(append([]string{"mysql", "backup", "--logical", "--hostname", "db1"}, connArgs...)...)

	sns := mysqlSnapshots(t, e)
	if len(sns) != 3 {
		t.Fatalf("want 3 snapshots, got %d", len(sns))
	}
	for i, sn := range sns {
		my := sn.MySQL
		if my == nil || my.GTID == "" || my.BinlogFile == "" || my.BinlogPos == 0 || my.ServerID != 1 || !strings.Contains(strings.Join(sn.Tags, ","), "mysql") {
			t.Fatalf("snapshot %d: %+v", i, sn)
		}
		want := "physical"
		if i == 2 {
			want = "logical"
		}
		if my.Method != want {
			t.Errorf("snapshot %d: method %s, want %s", i, my.Method, want)
		}
	}
	if sns[0].Paths[0] != m.DataDir || sns[2].Paths[0] != "/mysql/dump.sql" {
		t.Errorf("paths %v, %v", sns[0].Paths, sns[2].Paths)
	}
	out := e.mustRun(append([]string{"mysql", "backup"}, connArgs...)...)
	if !strings.Contains(string(out.stdout), "Consistent point: binlog mysql-bin.") {
		t.Errorf("text output: %s", out.stdout)
	}
}
