package mysql

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/restorer"
	"github.com/rewind-backup/rewind/internal/testutil"
)

// TestLogicalBackupLoads dumps a server while a writer commits, loads the
// dump into a fresh server and finds exactly the rows whose GTIDs are at
// or before the one recorded; RestoreBase refuses the logical snapshot.
func TestLogicalBackupLoads(t *testing.T) {
	testutil.MariaDBProgram(t, "mariadb-dump")
	m := testutil.StartMariaDB(t, testutil.MariaDBOptions{})
	fillServer(t, m)
	r := newTestRepo(t)
	w := startWriter(t, m)
	time.Sleep(300 * time.Millisecond)
	res, err := backup(t, r, BackupOptions{Conn: conn(t, m)}, true)
	time.Sleep(200 * time.Millisecond)
	w.finish(t)
	if err != nil {
		t.Fatal(err)
	}
	sn := res.Snapshot
	info := sn.MySQL
	t.Logf("logical backup: %d bytes, record %+v", sn.Summary.TotalBytes, info)
	if info == nil || info.Method != "logical" || info.GTID == "" || info.BinlogFile == "" || info.BinlogPos == 0 ||
		info.DumpPath != DumpPath || !strings.HasPrefix(info.Tool, "mariadb-dump ") || len(sn.Paths) != 1 || sn.Paths[0] != DumpPath {
		t.Fatalf("snapshot paths %v, record %+v", sn.Paths, info)
	}
	if _, err := RestoreBase(context.Background(), r, sn, t.TempDir(), RestoreBaseOptions{}); err == nil || !strings.Contains(err.Error(), "loading the dump") {
		t.Fatalf("RestoreBase of a dump: %v", err)
	}
	// Restore the dump file and load it into a new server.
	dir := t.TempDir()
	rs, err := restorer.New(r, restorer.Options{Target: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rs.Restore(context.Background(), sn, DumpPath); err != nil {
		t.Fatal(err)
	}
	dump := filepath.Join(dir, filepath.Base(DumpPath))
	if _, err := os.Stat(dump); err != nil {
		t.Fatal(err)
	}
	m2 := testutil.StartMariaDB(t, testutil.MariaDBOptions{ServerID: 2})
	in, err := os.Open(dump)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	load := exec.Command(testutil.MariaDBProgram(t, "mariadb"), "--defaults-file="+m2.ConfigFile)
	load.Stdin = in
	if out, err := load.CombinedOutput(); err != nil {
		t.Fatalf("load the dump: %v\n%s", err, out)
	}
	consistent := seqNo(t, info.GTID)
	w.mu.Lock()
	var want int
	for _, g := range w.gtids {
		if seqNo(t, g) <= consistent {
			want++
		}
	}
	total := len(w.gtids)
	w.mu.Unlock()
	if got := m2.QueryValue(t, "SELECT COUNT(*) FROM d.w"); got != strconv.Itoa(want) {
		t.Fatalf("loaded d.w has %s rows; %d of the %d committed have a GTID at or before %s", got, want, total, info.GTID)
	}
	if got := m2.QueryValue(t, "SELECT COUNT(*) FROM d.big"); got != "20000" {
		t.Fatalf("d.big has %s rows", got)
	}
}

// TestLogicalNoBinlog: a server without a binary log is dumped without a
// position.
func TestLogicalNoBinlog(t *testing.T) {
	testutil.MariaDBProgram(t, "mariadb-dump")
	m := testutil.StartMariaDB(t, testutil.MariaDBOptions{NoBinlog: true})
	r := newTestRepo(t)
	res, err := backup(t, r, BackupOptions{Conn: conn(t, m)}, true)
	if err != nil {
		t.Fatal(err)
	}
	if i := res.Snapshot.MySQL; i.GTID != "" || i.BinlogFile != "" {
		t.Fatalf("record %+v", i)
	}
}

func TestParseDumpPosition(t *testing.T) {
	dump := "/*M!999999\\- enable the sandbox mode */ \n-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)\n" +
		"-- CHANGE MASTER TO MASTER_LOG_FILE='mysql-bin.000001', MASTER_LOG_POS=18203380;\n" +
		"INSERT INTO t VALUES ('-- CHANGE MASTER TO MASTER_LOG_FILE=''x'', MASTER_LOG_POS=1;');\n" +
		"-- SET GLOBAL gtid_slave_pos='0-1-15';\n\n-- Dump completed on 2026-12-07 18:57:46\n"
	p, err := ParseDumpPosition([]byte(dump))
	if err != nil || p.File != "mysql-bin.000001" || p.Pos != 18203380 || p.GTID != "0-1-15" || p.Tool != "mariadb-dump 10.19 (10.11.19-MariaDB)" {
		t.Fatalf("%+v, %v", p, err)
	}
	if _, err := ParseDumpPosition([]byte(dump[:strings.Index(dump, "-- Dump completed")+8])); err == nil || !strings.Contains(err.Error(), "incomplete") {
		t.Fatalf("a cut dump: %v", err)
	}
}
