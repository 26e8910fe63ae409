package cli

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
)

// TestInitConcurrentProcesses starts several `rewind init` processes on one
// path at once, each with its own password, round after round. Exactly one
// exits 0; every other exits 1 saying a repository already exists, and
// leaves no key file behind; its password then opens nothing and is told
// so with exit 12, never that stored data is corrupt.
func TestInitConcurrentProcesses(t *testing.T) {
	const rounds = 8
	e := newEnv(t)
	for round := range rounds {
		racers := 2 + round%2
		dir := e.path(fmt.Sprintf("repo-%d", round))
		pw := func(i int) string { return fmt.Sprintf("password %d of round %d", i, round) }
		results := make([]result, racers)
		var wg sync.WaitGroup
		for i := range racers {
			c := e.with("REWIND_PASSWORD", pw(i)).cmd("init", "--repo", dir)
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = e.exec(c)
			}()
		}
		wg.Wait()
		winner := -1
		for i, r := range results {
			switch {
			case r.code == ExitOK && winner >= 0:
				t.Fatalf("round %d: two inits succeeded:\n%v\n%v", round, results[winner], r)
			case r.code == ExitOK:
				winner = i
			case r.code != ExitFatal || !strings.Contains(string(r.stderr), "a repository already exists there"):
				t.Fatalf("round %d: a losing init: %v; want exit 1 and \"a repository already exists there\"", round, r)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no init succeeded: %v", round, results)
		}
		keys, err := os.ReadDir(dir + "/keys")
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 1 {
			t.Fatalf("round %d: %d key files, want only the winner's", round, len(keys))
		}
		e.with("REWIND_PASSWORD", pw(winner)).mustRun("snapshots", "--repo", dir)
		loser := (winner + 1) % racers
		r := e.with("REWIND_PASSWORD", pw(loser)).expectCode(ExitBadPassword, "snapshots", "--repo", dir)
		if strings.Contains(string(r.stderr), "corrupt") {
			t.Fatalf("round %d: the loser's password is reported as corruption: %v", round, r)
		}
	}
}

// TestInitExisting: init on an existing repository fails with exit 1,
// says so, and changes nothing.
func TestInitExisting(t *testing.T) {
	e := newRepo(t, 0)
	before, err := os.ReadDir(e.path("repo", "keys"))
	if err != nil {
		t.Fatal(err)
	}
	r := e.with("REWIND_PASSWORD", "another password").expectCode(ExitFatal, "init")
	if !strings.Contains(string(r.stderr), "a repository already exists there") || !strings.Contains(string(r.stderr), "Nothing was written") {
		t.Fatalf("init on an existing repository: %v", r)
	}
	after, err := os.ReadDir(e.path("repo", "keys"))
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("%d key files after a refused init, %d before", len(after), len(before))
	}
}

// TestFirstBackupsConcurrent starts several first backups at once with no
// repository and no password anywhere: one creates the default repository
// and its password file, the others use them, every backup is stored, and
// one key and one password file are left.
func TestFirstBackupsConcurrent(t *testing.T) {
	for round := range 3 {
		e := newEnv(t)
		const racers = 3
		results := make([]result, racers)
		var wg sync.WaitGroup
		for i := range racers {
			src := e.path(fmt.Sprintf("src%d", i))
			writeFiles(t, src, map[string][]byte{"f.txt": []byte(fmt.Sprintf("racer %d of round %d\n", i, round))})
			c := e.cmd("backup", src)
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = e.exec(c)
			}()
		}
		wg.Wait()
		created := 0
		for _, r := range results {
			if r.code != ExitOK {
				t.Fatalf("round %d: a first backup failed: %v", round, r)
			}
			if strings.Contains(string(r.stderr), "Created a password") {
				created++
			}
		}
		if created != 1 {
			t.Errorf("round %d: %d backups say they created the password, want 1", round, created)
		}
		keys, err := os.ReadDir(e.path("xdg", "rewind", "repo", "keys"))
		if err != nil || len(keys) != 1 {
			t.Fatalf("round %d: key files %v (%v), want 1", round, keys, err)
		}
		files, err := os.ReadDir(e.path("xdg", "rewind"))
		if err != nil || len(files) != 2 {
			t.Fatalf("round %d: %v in the data directory (%v), want the repository and its password file", round, files, err)
		}
		var snaps []jsonSnapshot
		decodeStrict(t, e.mustRun("snapshots", "--json").stdout, &snaps)
		if len(snaps) != racers {
			t.Fatalf("round %d: %d snapshots, want %d", round, len(snaps), racers)
		}
	}
}
