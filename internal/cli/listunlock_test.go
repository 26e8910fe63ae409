package cli

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
)

// TestListAndUnlock: list names exactly the files of each kind that the
// repository holds; unlock removes a stale lock and keeps a live one,
// --remove-all removes both after naming the live one's holder.
func TestListAndUnlock(t *testing.T) {
	e := newRepo(t, 0)
	src := e.path("src")
	writeFiles(t, src, map[string][]byte{"a": randomBytes(1, 5000), "b/c": randomBytes(2, 9000)})
	e.mustRun("backup", src)
	e.mustRun("backup", src)
	repo := e.vars["REWIND_REPOSITORY"]

	onDisk := func(dir string) []string {
		var out []string
		filepath.WalkDir(filepath.Join(repo, dir), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && !strings.HasPrefix(d.Name(), ".") {
				out = append(out, d.Name())
			}
			return nil
		})
		slices.Sort(out)
		return out
	}
	for kind, dir := range map[string]string{"snapshots": "snapshots", "index": "index", "packs": "data", "keys": "keys"} {
		var got []string
		if err := json.Unmarshal(e.mustRun("list", kind, "--json").stdout, &got); err != nil {
			t.Fatal(err)
		}
		want := onDisk(dir)
		if len(want) == 0 || !slices.Equal(got, want) {
			t.Errorf("list %s --json = %v, want the files of %s/: %v", kind, got, dir, want)
		}
		text := strings.Fields(string(e.mustRun("list", kind).stdout))
		if !slices.Equal(text, want) {
			t.Errorf("list %s = %v, want %v", kind, text, want)
		}
	}
	if r := e.run("list", "trees"); r.code != ExitFatal || !strings.Contains(string(r.stderr), "snapshots") {
		t.Errorf("list of an unknown kind: %v", r)
	}

	// A stale lock (refreshed an hour ago by a host that is gone) and a
	// live one.
	r := openInProcess(t, e)
	ctx := context.Background()
	old := time.Now().Add(-time.Hour).UTC()
	mk := func(id, command string, refreshed time.Time) {
		_, err := r.SaveJSON(ctx, backend.LockFile, map[string]any{
			"id": id, "kind": "exclusive", "command": command, "host": "gone-host", "user": "root",
			"pid": 4242, "pid_start": 1, "boot_id": "x", "created": refreshed, "refreshed": refreshed,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	mk(strings.Repeat("a", 32), "prune", old)
	mk(strings.Repeat("b", 32), "repair index", time.Now().UTC())
	r.Close()

	var locks []jsonLock
	decodeStrict(t, e.mustRun("list", "locks", "--json").stdout, &locks)
	if len(locks) != 2 {
		t.Fatalf("list locks: %+v", locks)
	}
	var removed []jsonLock
	decodeStrict(t, e.mustRun("unlock", "--json").stdout, &removed)
	if len(removed) != 1 || removed[0].ID != strings.Repeat("a", 32) || !removed[0].Stale {
		t.Fatalf("unlock removed %+v, want only the stale lock", removed)
	}
	if got := onDisk("locks"); len(got) != 1 {
		t.Fatalf("after unlock, locks/ holds %v", got)
	}
	// The live exclusive lock stops a backup; --remove-all names it and
	// removes it.
	e.expectCode(ExitLocked, "backup", src)
	res := e.mustRun("unlock", "--remove-all")
	if !strings.Contains(string(res.stderr), "rewind repair index") || !strings.Contains(string(res.stdout), "1 lock removed") {
		t.Errorf("unlock --remove-all: %v", res)
	}
	if got := onDisk("locks"); len(got) != 0 {
		t.Fatalf("after unlock --remove-all, locks/ holds %v", got)
	}
	e.mustRun("backup", src)
	e.mustRun("check")
}

// TestGenerate: manual pages for every command, and completion scripts
// that their shells accept.
func TestGenerate(t *testing.T) {
	e := newEnv(t)
	man := e.path("man")
	bash := e.path("rewind.bash")
	e.mustRun("generate", "--man", man, "--bash-completion", bash, "--fish-completion", e.path("rewind.fish"))
	for _, page := range []string{"rewind.1", "rewind-backup.1", "rewind-restore.1", "rewind-unlock.1", "rewind-list.1"} {
		b, err := os.ReadFile(filepath.Join(man, page))
		if err != nil || !strings.Contains(string(b), ".TH") {
			t.Errorf("%s: %v (%d bytes)", page, err, len(b))
		}
	}
	if out, err := exec.Command("bash", "-n", bash).CombinedOutput(); err != nil {
		t.Errorf("bash rejects the completion script: %v\n%s", err, out)
	}
	res := e.mustRun("generate", "--zsh-completion", "-")
	if !strings.Contains(string(res.stdout), "#compdef rewind") {
		t.Errorf("zsh completion on stdout: %.200s", res.stdout)
	}
	if r := e.run("generate"); r.code != ExitFatal {
		t.Errorf("generate with nothing to do: %v", r)
	}
}
