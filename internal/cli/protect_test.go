package cli

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// repoFiles lists the names in a folder of the repository at
// e.path("repo").
func repoFiles(t *testing.T, e *env, folder string) []string {
	t.Helper()
	ents, err := os.ReadDir(e.path("repo", folder))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, d := range ents {
		out = append(out, d.Name())
	}
	slices.Sort(out)
	return out
}

// backups makes n snapshots of e.path("src"), each with different
// content, and returns them oldest first.
func backups(t *testing.T, e *env, n int) []jsonSnapshot {
	t.Helper()
	src := e.path("src")
	for i := range n {
		writeFiles(t, src, map[string][]byte{"n.txt": []byte(strings.Repeat("x", i+1))})
		e.mustRun("backup", src)
	}
	return listSnapshotsJSON(t, e)
}

// listSnapshotsJSON runs snapshots --json and checks it against the
// documented schema.
func listSnapshotsJSON(t *testing.T, e *env) []jsonSnapshot {
	t.Helper()
	var sns []jsonSnapshot
	checkDoc(t, "snapshot", e.mustRun("snapshots", "--json").stdout, &sns)
	return sns
}

// forgetDryRun runs forget with a policy, --dry-run and --json, and
// returns its one group.
func forgetDryRun(t *testing.T, e *env, args ...string) jsonForgetGroup {
	t.Helper()
	r := e.mustRun(append([]string{"forget", "--dry-run", "--json"}, args...)...)
	var groups []jsonForgetGroup
	checkDoc(t, "forget.group", r.stdout, &groups)
	if len(groups) != 1 {
		t.Fatalf("%d groups, want 1:\n%s", len(groups), r.stdout)
	}
	return groups[0]
}

// keptReasons maps the ID of each kept snapshot to its reasons.
func keptReasons(g jsonForgetGroup) map[string][]string {
	out := map[string][]string{}
	for _, k := range g.Keep {
		out[k.ID] = k.Reasons
	}
	return out
}

func removedIDs(g jsonForgetGroup) []string {
	var out []string
	for _, x := range g.Remove {
		out = append(out, x.ID)
	}
	return out
}

// openInProcess opens the repository at e.path("repo") in this process,
// for fixtures the CLI cannot make.
func openInProcess(t *testing.T, e *env) *repository.Repository {
	t.Helper()
	ctx := context.Background()
	be, err := local.Open(ctx, e.path("repo"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := repository.Open(ctx, be, []byte(testPassword))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// backdate stores a copy of a snapshot taken age earlier, as an old
// backup would have, and returns its ID.
func backdate(t *testing.T, e *env, snapID string, age time.Duration) string {
	t.Helper()
	ctx := context.Background()
	r := openInProcess(t, e)
	defer r.Close()
	i, err := id.Parse(snapID)
	if err != nil {
		t.Fatal(err)
	}
	sn, err := snapshot.Load(ctx, r, i)
	if err != nil {
		t.Fatal(err)
	}
	sn.Time = sn.Time.Add(-age)
	if err := snapshot.Save(ctx, r, sn); err != nil {
		t.Fatal(err)
	}
	return sn.ID.String()
}

func TestProtectAndForget(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 0)
	sns := backups(t, e, 3)
	oldest, middle, newest := sns[0], sns[1], sns[2]
	const reason = "litigation 2026-17"

	r := e.mustRun("protect", "--reason", reason, oldest.ShortID)
	if !strings.Contains(string(r.stdout), "protected "+oldest.ShortID) || !strings.Contains(string(r.stdout), reason) {
		t.Errorf("protect output: %v", r)
	}
	if n := len(repoFiles(t, e, "holds")); n != 1 {
		t.Fatalf("%d hold files after protect, want 1", n)
	}
	// Protecting again is no error and makes no second hold.
	r = e.mustRun("protect", "--reason", "another", oldest.ID)
	if !strings.Contains(string(r.stdout), "already protected") || !strings.Contains(string(r.stdout), reason) {
		t.Errorf("second protect output: %v", r)
	}
	if n := len(repoFiles(t, e, "holds")); n != 1 {
		t.Fatalf("%d hold files after protecting twice, want 1", n)
	}
	if r := e.mustRun("protect", "--json", oldest.ShortID); len(r.stdout) != 0 {
		t.Errorf("protect --json printed on stdout: %v", r)
	}

	// snapshots marks it, in the table and in JSON.
	for _, sn := range listSnapshotsJSON(t, e) {
		if sn.Protected != (sn.ID == oldest.ID) {
			t.Errorf("snapshot %s: protected %v", sn.ShortID, sn.Protected)
		}
	}
	table := string(e.mustRun("snapshots").stdout)
	if !strings.Contains(table, oldest.ShortID+"* ") || strings.Contains(table, middle.ShortID+"*") || !strings.Contains(table, "1 protected") {
		t.Errorf("snapshots table does not mark the held snapshot:\n%s", table)
	}

	// Named for removal, it is refused, and so is the rest of the
	// command: nothing is removed.
	r = e.expectCode(ExitFatal, "forget", middle.ShortID, oldest.ShortID)
	for _, want := range []string{"refusing to forget 1 of the 2 snapshots", oldest.ShortID, "protected: " + reason, "nothing was removed"} {
		if !strings.Contains(string(r.stderr), want) {
			t.Errorf("refused forget does not say %q: %v", want, r)
		}
	}
	if strings.Contains(string(r.stderr), middle.ShortID) {
		t.Errorf("the unprotected snapshot is listed as refused: %v", r)
	}
	if n := len(repoFiles(t, e, "snapshots")); n != 3 {
		t.Fatalf("a refused forget removed snapshots: %d left", n)
	}
	e.expectCode(ExitFatal, "forget", "--dry-run", oldest.ShortID)

	// A policy keeps it, and says why.
	g := forgetDryRun(t, e, "--keep-last", "1")
	kept := keptReasons(g)
	if !slices.Equal(kept[oldest.ID], []string{"protected: " + reason}) || !slices.Equal(kept[newest.ID], []string{"last snapshot"}) || len(kept) != 2 {
		t.Errorf("kept %q", kept)
	}
	if got := removedIDs(g); !slices.Equal(got, []string{middle.ID}) {
		t.Errorf("would remove %q, want the middle snapshot", got)
	}
	r = e.mustRun("forget", "--keep-last", "1", "--dry-run")
	if !strings.Contains(string(r.stdout), "protected: "+reason) {
		t.Errorf("dry run does not show the hold:\n%s", r.stdout)
	}
	e.mustRun("forget", "--keep-last", "1")
	if got := repoFiles(t, e, "snapshots"); !slices.Equal(got, slices.Sorted(slices.Values([]string{oldest.ID, newest.ID}))) {
		t.Fatalf("after forget: %q, want the held and the newest snapshot", got)
	}

	// Lifted, the hold no longer keeps it.
	r = e.mustRun("unprotect", oldest.ShortID)
	if !strings.Contains(string(r.stdout), "unprotected "+oldest.ShortID) {
		t.Errorf("unprotect output: %v", r)
	}
	if n := len(repoFiles(t, e, "holds")); n != 0 {
		t.Errorf("%d hold files after unprotect", n)
	}
	r = e.mustRun("unprotect", oldest.ShortID)
	if !strings.Contains(string(r.stdout), "was not protected") {
		t.Errorf("second unprotect: %v", r)
	}
	if sns := listSnapshotsJSON(t, e); sns[0].Protected {
		t.Error("still marked protected")
	}
	g = forgetDryRun(t, e, "--keep-last", "1")
	if got := removedIDs(g); !slices.Equal(got, []string{oldest.ID}) {
		t.Errorf("after unprotect forget would remove %q, want %s", got, oldest.ShortID)
	}
	e.mustRun("forget", oldest.ShortID)
	if got := repoFiles(t, e, "snapshots"); !slices.Equal(got, []string{newest.ID}) {
		t.Errorf("after forget by ID: %q", got)
	}
	e.mustRun("check")
}

// TestUnreadableHoldStopsForget: a hold file that cannot be read might
// protect any snapshot, so forget removes nothing and names it.
func TestUnreadableHoldStopsForget(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 0)
	sns := backups(t, e, 2)
	bad := strings.Repeat("ab", 32)
	if err := os.WriteFile(e.path("repo", "holds", bad), []byte("damaged"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"forget", "--keep-last", "1"}, {"forget", "--keep-last", "1", "--dry-run"}, {"forget", sns[0].ShortID}} {
		r := e.expectCode(ExitFatal, args...)
		if !strings.Contains(string(r.stderr), "holds/"+bad) || !strings.Contains(string(r.stderr), "no snapshot can be removed") {
			t.Errorf("does not name the unreadable hold: %v", r)
		}
	}
	if n := len(repoFiles(t, e, "snapshots")); n != 2 {
		t.Fatalf("snapshots removed despite an unreadable hold: %d left", n)
	}
	// Listing still works, with a warning.
	r := e.mustRun("snapshots")
	if !strings.Contains(string(r.stderr), "holds/"+bad) {
		t.Errorf("snapshots does not warn: %v", r)
	}
	// Once the file is dealt with, forget works again.
	if err := os.Remove(e.path("repo", "holds", bad)); err != nil {
		t.Fatal(err)
	}
	e.mustRun("forget", "--keep-last", "1")
	if n := len(repoFiles(t, e, "snapshots")); n != 1 {
		t.Errorf("%d snapshots left, want 1", n)
	}
}

// TestUnprotectGoneSnapshot: a hold on a snapshot whose file was deleted
// by other means can still be lifted by the snapshot's ID.
func TestUnprotectGoneSnapshot(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 0)
	sns := backups(t, e, 2)
	e.mustRun("protect", sns[0].ShortID)
	if err := os.Remove(e.path("repo", "snapshots", sns[0].ID)); err != nil {
		t.Fatal(err)
	}
	e.expectCode(ExitFatal, "protect", sns[0].ShortID) // no such snapshot to protect
	r := e.mustRun("unprotect", sns[0].ShortID)
	if !strings.Contains(string(r.stdout), "unprotected "+sns[0].ShortID) {
		t.Errorf("unprotect: %v", r)
	}
	if n := len(repoFiles(t, e, "holds")); n != 0 {
		t.Errorf("%d hold files left", n)
	}
	e.expectCode(ExitFatal, "unprotect", "ffffffff")
}
