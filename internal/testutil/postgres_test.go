package testutil

import (
	"strconv"
	"testing"
)

// TestPostgres starts a cluster, writes, crashes it, starts it again and
// finds the committed row.
func TestPostgres(t *testing.T) {
	pg := StartPostgres(t, PGOptions{Settings: map[string]string{"shared_buffers": "'16MB'"}})
	pg.Exec(t, "create table t (v int); insert into t values (1), (2)")
	if got := pg.QueryValue(t, "select sum(v) from t"); got != "3" {
		t.Fatalf("sum = %q, want 3", got)
	}
	if got := pg.QueryValue(t, "show wal_level"); got != "replica" {
		t.Fatalf("wal_level = %q", got)
	}
	if got := pg.QueryValue(t, "show port"); got != strconv.Itoa(pg.Port) {
		t.Fatalf("port = %q, want %d", got, pg.Port)
	}
	id := pg.SystemID(t)
	if got := pg.QueryValue(t, "select system_identifier from pg_control_system()"); got != strconv.FormatUint(id, 10) {
		t.Fatalf("system identifier: server says %s, pg_controldata %d", got, id)
	}
	pg.Kill(t)
	if pg.ExecErr("select 1") == nil {
		t.Fatal("query succeeded after Kill")
	}
	pg.Start(t)
	if got := pg.QueryValue(t, "select count(*) from t"); got != "2" {
		t.Fatalf("after crash: %q rows, want 2", got)
	}
	pg.Stop(t, "fast")
	if pg.PostmasterPID() != 0 {
		t.Fatal("postmaster.pid left after Stop")
	}
}
