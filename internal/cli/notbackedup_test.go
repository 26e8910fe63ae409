package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// nobodyID is the user the unreadable-source tests back up as.
const nobodyID = 65534

// asNobody runs rewind as user nobody in e. The binary's folder and the
// sandbox are opened to nobody, and the sandbox's home, data and
// repository folders given to it; what the test made unreadable stays so.
func asNobody(t *testing.T, e *env, args ...string) result {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a backup as another user")
	}
	for _, d := range []string{filepath.Dir(rewindBin), filepath.Dir(e.dir), e.dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"home", "xdg", "repo"} {
		err := filepath.Walk(e.path(d), func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, nobodyID, nobodyID)
		})
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	c := e.cmd(args...)
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobodyID, Gid: nobodyID}}
	return e.exec(c)
}

// unreadableSource lays out a tree in which some files only root can read:
// small, multi-chunk, sparse, empty, hard-linked, and one deep down. It
// returns the names (relative to src) of those files.
func unreadableSource(t *testing.T, src string) []string {
	t.Helper()
	writeFiles(t, src, map[string][]byte{
		"open/plain.txt":     []byte("anyone may read this\n"),
		"open/big.bin":       randomBytes(7, 3<<20+12345),
		"locked/small":       randomBytes(8, 4000),
		"locked/big":         randomBytes(9, 2<<20+777),
		"locked/empty":       nil,
		"deep/a/b/c/secret":  randomBytes(10, 70000),
		"locked/linked":      randomBytes(11, 9000),
		"open/also-readable": []byte("x"),
	})
	sparse := filepath.Join(src, "locked", "sparse")
	f, err := os.Create(sparse)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(randomBytes(12, 5000), 1<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Link(filepath.Join(src, "locked", "linked"), filepath.Join(src, "open", "linked-too")); err != nil {
		t.Fatal(err)
	}
	locked := []string{"locked/small", "locked/big", "locked/empty", "locked/sparse", "locked/linked", "open/linked-too", "deep/a/b/c/secret"}
	for _, name := range locked {
		if err := os.Chmod(filepath.Join(src, name), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Every folder on the way, the sandbox's own included, is open to all.
	for d := src; d != "/" && d != filepath.Dir(filepath.Dir(src)); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	return locked
}

// TestUnreadableNeverRestoredAsData backs up, as an unprivileged user, a
// tree where some files only root can read, then uses the snapshot as
// root: restore, restore --overwrite, dump and diff must never present the
// unreadable files' content as anything (zeros, empty, "up to date"); they
// name them and exit 3, and everything else comes back exactly.
func TestUnreadableNeverRestoredAsData(t *testing.T) {
	e := newRepo(t, 0)
	src := e.path("src")
	locked := unreadableSource(t, src)

	r := asNobody(t, e, "backup", src)
	if r.code != ExitPartial {
		t.Fatalf("backup as nobody: want exit 3, got %v", r)
	}
	for _, name := range locked {
		if !bytes.Contains(r.stderr, []byte(filepath.Join(src, name))) {
			t.Errorf("backup does not name unreadable %s:\n%s", name, r.stderr)
		}
	}

	isLocked := map[string]bool{}
	for _, name := range locked {
		isLocked[name] = true
	}

	t.Run("restore", func(t *testing.T) {
		target := e.path("restored")
		r := e.run("restore", "latest:"+src, "--target", target, "--json")
		if r.code != ExitPartial {
			t.Fatalf("want exit 3, got %v", r)
		}
		lines := jsonLines(t, r)
		var sum jsonRestoreSummary
		decodeStrict(t, lines[len(lines)-1].raw, &sum)
		got := map[string]bool{}
		for _, nb := range sum.NotBackedUp {
			rel := strings.TrimPrefix(nb.Path, src+"/")
			got[rel] = true
			if !strings.Contains(nb.Error, "permission denied") {
				t.Errorf("not_backed_up %s: reason %q does not carry the read error", nb.Path, nb.Error)
			}
		}
		for _, name := range locked {
			if !got[name] {
				t.Errorf("summary does not list %s in not_backed_up: %+v", name, sum.NotBackedUp)
			}
			if _, err := os.Lstat(filepath.Join(target, name)); !os.IsNotExist(err) {
				t.Errorf("%s: restored although its content was never backed up (lstat: %v)", name, err)
			}
		}
		if len(got) != len(locked) || len(sum.Errors) != 0 {
			t.Errorf("not_backed_up %v, errors %v; want exactly the %d locked files", sum.NotBackedUp, sum.Errors, len(locked))
		}
		// Readable files are exact, and bytes_restored counts only them.
		var want int64
		for name, data := range readFiles(t, src) {
			if isLocked[name] {
				continue
			}
			want += int64(len(data))
			gotData, err := os.ReadFile(filepath.Join(target, name))
			if err != nil || !bytes.Equal(gotData, data) {
				t.Errorf("%s: readable file not restored exactly (%v)", name, err)
			}
		}
		if sum.BytesRestored != want {
			t.Errorf("bytes_restored %d, want %d (only what was backed up)", sum.BytesRestored, want)
		}
		// The text form names each file and says why.
		r = e.run("restore", "latest:"+src, "--target", e.path("restored-text"))
		if r.code != ExitPartial {
			t.Fatalf("want exit 3, got %v", r)
		}
		for _, name := range locked {
			if !bytes.Contains(r.stderr, []byte("not restored: "+filepath.Join(src, name))) {
				t.Errorf("stderr does not name %s:\n%s", name, r.stderr)
			}
		}
	})

	t.Run("overwrite leaves other content alone", func(t *testing.T) {
		target := e.path("over")
		// What stands at the unreadable files' paths: other content, of the
		// same size as the originals for one of them.
		other := map[string][]byte{}
		for i, name := range locked {
			data := []byte("not what the backup saw " + name)
			if i == 0 {
				data = randomBytes(99, 4000)
			}
			other[name] = data
		}
		writeFiles(t, target, other)
		r := e.run("restore", "latest:"+src, "--target", target, "--overwrite", "--json")
		if r.code != ExitPartial {
			t.Fatalf("want exit 3, got %v", r)
		}
		lines := jsonLines(t, r)
		var sum jsonRestoreSummary
		decodeStrict(t, lines[len(lines)-1].raw, &sum)
		if sum.FilesUnchanged != 0 {
			t.Errorf("files_unchanged %d: a file the backup never read was called up to date", sum.FilesUnchanged)
		}
		for name, data := range other {
			got, err := os.ReadFile(filepath.Join(target, name))
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("%s: what stood in the target was changed (%v)", name, err)
			}
		}
	})

	t.Run("dump", func(t *testing.T) {
		for _, name := range []string{"locked/small", "locked/empty", "locked/sparse"} {
			r := e.run("dump", "latest:"+filepath.Join(src, name))
			if r.code != ExitPartial || len(r.stdout) != 0 {
				t.Errorf("dump of unreadable %s: want exit 3 and nothing on stdout, got exit %d and %d bytes", name, r.code, len(r.stdout))
			}
			if !bytes.Contains(r.stderr, []byte("not backed up")) {
				t.Errorf("dump of unreadable %s does not say why:\n%s", name, r.stderr)
			}
		}
		r := e.run("dump", "latest:"+src)
		if r.code != ExitPartial {
			t.Fatalf("dump of the folder: want exit 3, got exit %d\n%s", r.code, r.stderr)
		}
		names := tarNames(t, r.stdout)
		for _, name := range locked {
			if names[name] {
				t.Errorf("tar holds %s, whose content was never backed up", name)
			}
			if !bytes.Contains(r.stderr, []byte(filepath.Join(src, name))) {
				t.Errorf("dump does not name %s:\n%s", name, r.stderr)
			}
		}
		if !names["open/plain.txt"] || !names["open/big.bin"] {
			t.Errorf("tar lacks readable files: %v", names)
		}
	})

	t.Run("diff", func(t *testing.T) {
		// Back up again as root, who can read everything, and compare: every
		// file whose content one side lacks is "?", never "M" or nothing.
		e.mustRun("backup", src)
		var sns []struct {
			ID      string `json:"id"`
			Summary struct {
				End string `json:"backup_end"`
			} `json:"summary"`
		}
		if err := json.Unmarshal(e.mustRun("snapshots", "--json").stdout, &sns); err != nil || len(sns) != 2 {
			t.Fatalf("snapshots: %v %v", sns, err)
		}
		for _, pair := range [][2]string{{sns[0].ID, sns[1].ID}, {sns[1].ID, sns[0].ID}} {
			r := e.mustRun("diff", "--json", pair[0]+":"+src, pair[1]+":"+src)
			mods := map[string]string{}
			lines := jsonLines(t, r)
			for _, l := range lines[:len(lines)-1] {
				mods[strings.TrimPrefix(l.obj["path"].(string), src+"/")] = l.obj["modifier"].(string)
			}
			for _, name := range locked {
				if mods[name] != "?" {
					t.Errorf("diff %s %s: %s has modifier %q, want \"?\"", pair[0][:8], pair[1][:8], name, mods[name])
				}
			}
			var st jsonDiffStatistics
			decodeStrict(t, lines[len(lines)-1].raw, &st)
			if st.Unknown != len(locked) {
				t.Errorf("statistics: unknown %d, want %d", st.Unknown, len(locked))
			}
		}
		// The text diff of one file at a moment when it was not backed up
		// does not pretend it was empty.
		small := filepath.Join(src, "locked/small")
		var vs []struct {
			State  string `json:"state"`
			Change string `json:"change"`
		}
		if err := json.Unmarshal(e.mustRun("versions", small, "--json").stdout, &vs); err != nil {
			t.Fatal(err)
		}
		if len(vs) != 2 || vs[0].State != "not-backed-up" || vs[1].State != "present" || vs[1].Change != "unknown" {
			t.Errorf("versions of a file first not backed up, then backed up: %+v; want not-backed-up, then present with change unknown", vs)
		}
		r := e.mustRun("diff", "--at", sns[0].Summary.End, small)
		if !bytes.Contains(r.stdout, []byte("?  "+small)) || bytes.Contains(r.stdout, []byte("@@")) {
			t.Errorf("diff --at of a file not backed up then: want a \"?\" line and no text diff:\n%s", r.stdout)
		}
	})
}

// tarNames lists the names in a tar stream, with tar(1) rather than the
// code under test.
func tarNames(t *testing.T, data []byte) map[string]bool {
	t.Helper()
	c := exec.Command("tar", "-t")
	c.Stdin = bytes.NewReader(data)
	out, err := c.Output()
	if err != nil {
		t.Fatalf("tar -t: %v", err)
	}
	names := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		names[strings.TrimSuffix(l, "/")] = true
	}
	return names
}
