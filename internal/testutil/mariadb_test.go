package testutil

import (
	"strings"
	"testing"
)

// TestMariaDB starts a server, writes, restarts it and reads back: the
// harness every MariaDB test stands on.
func TestMariaDB(t *testing.T) {
	m := StartMariaDB(t, MariaDBOptions{})
	m.Exec(t, "CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO d.t VALUES (1),(2)")
	if on := m.QueryValue(t, "SELECT @@log_bin"); on != "1" {
		t.Fatalf("log_bin = %s, want 1", on)
	}
	m.Kill(t)
	m.Start(t)
	if n := m.QueryValue(t, "SELECT COUNT(*) FROM d.t"); n != "2" {
		t.Fatalf("after a crash: %s rows, want 2", n)
	}
	if out := m.Client(t, "-N", "-e", "SELECT 40+2"); strings.TrimSpace(out) != "42" {
		t.Fatalf("client: %q", out)
	}
	n := StartMariaDB(t, MariaDBOptions{NoBinlog: true, ServerID: 2})
	if on := n.QueryValue(t, "SELECT @@log_bin"); on != "0" {
		t.Fatalf("NoBinlog: log_bin = %s", on)
	}
}
