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
