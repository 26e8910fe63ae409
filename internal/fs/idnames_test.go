package fs

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rewind-backup/rewind/internal/testutil"
	"github.com/rewind-backup/rewind/internal/tree"
)

func idNamesFromText(t *testing.T, passwd, group string) *IDNames {
	t.Helper()
	dir := t.TempDir()
	pp, gp := filepath.Join(dir, "passwd"), filepath.Join(dir, "group")
	must(t, os.WriteFile(pp, []byte(passwd), 0o644))
	must(t, os.WriteFile(gp, []byte(group), 0o644))
	m, err := LoadIDNamesFrom(pp, gp)
	must(t, err)
	return m
}

func TestIDNames(t *testing.T) {
	members := strings.Repeat("member,", 100000) + "last" // a 700 KB line
	m := idNamesFromText(t,
		"# comment\n"+
			"root:x:0:0:root:/root:/bin/bash\n"+
			"\n"+
			"+nisuser\n"+
			"broken line\n"+
			"badid:x:notanumber:1::/:/bin/sh\n"+
			"toobig:x:4294967296:1::/:/bin/sh\n"+
			"alice:x:1000:1000:Alice:/home/alice:/bin/sh\r\n"+
			"alias:x:1000:1000::/:/bin/sh\n"+
			"alice:x:1001:1001::/:/bin/sh\n"+
			"big:x:4294967294:1::/:/bin/sh", // no final newline
		"root:x:0:\n"+
			"users:x:100:alice,bob\n"+
			"huge:x:200:"+members+"\n")

	users := map[uint32]string{0: "root", 1000: "alice", 4294967294: "big", 1001: "alice", 12345: ""}
	for uid, want := range users {
		if got := m.User(uid); got != want {
			t.Errorf("User(%d) = %q, want %q", uid, got, want)
		}
	}
	uids := map[string]int64{"root": 0, "alice": 1000, "alias": 1000, "big": 4294967294, "nisuser": -1, "+nisuser": -1, "badid": -1, "toobig": -1}
	for name, want := range uids {
		got, ok := m.UID(name)
		if want < 0 && ok || want >= 0 && (!ok || int64(got) != want) {
			t.Errorf("UID(%q) = %d, %v, want %d", name, got, ok, want)
		}
	}
	if g := m.Group(200); g != "huge" {
		t.Errorf("Group(200) = %q, want huge", g)
	}
	if gid, ok := m.GID("users"); !ok || gid != 100 {
		t.Errorf("GID(users) = %d, %v", gid, ok)
	}

	n := &tree.Node{UID: 1000, GID: 100}
	m.SetNames(n)
	if n.User != "alice" || n.Group != "users" {
		t.Errorf("SetNames: %q %q", n.User, n.Group)
	}

	// Immutable after loading: concurrent lookups need no lock (run with
	// -race to check).
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range 1000 {
				m.User(uint32(i))
				m.GID("users")
			}
		})
	}
	wg.Wait()
}

func TestIDNamesNilAndMissing(t *testing.T) {
	var m *IDNames
	if m.User(0) != "" || m.Group(0) != "" {
		t.Error("nil IDNames knows names")
	}
	if _, ok := m.UID("root"); ok {
		t.Error("nil IDNames knows root")
	}
	m, err := LoadIDNamesFrom("/nonexistent/passwd", "/nonexistent/group")
	if err != nil || m.User(0) != "" {
		t.Errorf("missing files: %v, %q", err, m.User(0))
	}
	if _, err := LoadIDNamesFrom(t.TempDir(), "/nonexistent/group"); err == nil {
		t.Error("a directory as passwd file: no error")
	}
}

func TestLoadIDNames(t *testing.T) {
	m, err := LoadIDNames()
	must(t, err)
	if _, err := os.Stat("/etc/passwd"); err != nil {
		t.Skip("no /etc/passwd")
	}
	if got := m.User(0); got != "root" {
		t.Errorf("User(0) = %q, want root", got)
	}
	if testutil.IsRoot() {
		if uid, ok := m.UID("root"); !ok || uid != 0 {
			t.Errorf("UID(root) = %d, %v", uid, ok)
		}
	}
}
