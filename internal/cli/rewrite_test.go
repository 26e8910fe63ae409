package cli

import (
	"context"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

func init() { schemaTypes["rewrite"] = reflect.TypeFor[jsonRewrite]() }

type jsonRewrite struct {
	From         string   `json:"from"`
	ID           string   `json:"id"`
	ShortID      string   `json:"short_id"`
	Changed      bool     `json:"changed"`
	Forgotten    bool     `json:"forgotten"`
	RemovedPaths []string `json:"removed_paths"`
	FilesRemoved int64    `json:"files_removed"`
	DirsRemoved  int64    `json:"dirs_removed"`
	OtherRemoved int64    `json:"other_removed"`
	BytesRemoved int64    `json:"bytes_removed"`
}

// runRewriteJSON runs rewrite --json and checks the document.
func runRewriteJSON(t *testing.T, e *env, args ...string) []jsonRewrite {
	t.Helper()
	var out []jsonRewrite
	checkDoc(t, "rewrite", e.mustRun(append([]string{"rewrite", "--json"}, args...)...).stdout, &out)
	return out
}

// contentBlobs returns the data blobs of the file at path p in snapshot
// snapID, read in this process.
func contentBlobs(t *testing.T, e *env, snapID, p string) []id.ID {
	t.Helper()
	ctx := context.Background()
	r := openInProcess(t, e)
	defer r.Close()
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	sn, err := snapshot.Find(ctx, r, snapID, snapshot.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := snapshot.Lookup(ctx, r, sn, p)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := snapshot.LoadContent(ctx, r, n)
	if err != nil {
		t.Fatal(err)
	}
	var out []id.ID
	for _, c := range cs {
		if !c.IsHole() {
			out = append(out, c.ID)
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s has no data blobs", p)
	}
	return out
}

// storedBlobs returns every blob named in a pack header of the
// repository, read from the packs themselves, not the index.
func storedBlobs(t *testing.T, e *env) map[id.ID]bool {
	t.Helper()
	ctx := context.Background()
	r := openInProcess(t, e)
	defer r.Close()
	packs, err := r.List(ctx, backend.PackFile)
	if err != nil {
		t.Fatal(err)
	}
	out := map[id.ID]bool{}
	for _, p := range packs {
		bs, err := r.ReadPackHeader(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bs {
			out[b.ID] = true
		}
	}
	return out
}

// without returns files minus the paths excluded (and what is below).
func withoutPaths(files map[string][]byte, excluded ...string) map[string][]byte {
	out := maps.Clone(files)
	for name := range out {
		for _, x := range excluded {
			if name == x || strings.HasPrefix(name, x+"/") {
				delete(out, name)
			}
		}
	}
	return out
}

// sameFileMaps fails unless got holds exactly want, byte for byte.
func sameFileMaps(t *testing.T, what string, want, got map[string][]byte) {
	t.Helper()
	for name, data := range want {
		if g, ok := got[name]; !ok {
			t.Errorf("%s: %s missing", what, name)
		} else if string(g) != string(data) {
			t.Errorf("%s: %s differs", what, name)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: %s is there but should not be", what, name)
		}
	}
}

// TestRewriteRemovesPaths removes a file and a directory, both at depth,
// from two snapshots, and follows the data until prune has deleted it.
func TestRewriteRemovesPaths(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 0)
	src := e.path("src")
	secret := randomBytes(101, 70<<10)
	writeFiles(t, src, map[string][]byte{
		"etc/app/conf.txt":               []byte("listen 8080\n"),
		"etc/app/tls/server.key":         secret,
		"etc/app/tls/server.crt":         []byte("certificate\n"),
		"home/ann/.aws/credentials":      randomBytes(102, 3000),
		"home/ann/.aws/sso/cache/t.json": randomBytes(103, 900),
		"home/ann/notes.txt":             []byte("first\n"),
		"home/ann/server.key.txt":        []byte("not the key: the name differs\n"),
		"var/big.bin":                    randomBytes(104, 300<<10),
	})
	e.mustRun("backup", "--host", "db1", "--tag", "nightly", src)
	first := readFiles(t, src)
	writeFiles(t, src, map[string][]byte{"home/ann/notes.txt": []byte("second\n"), "var/new.txt": []byte("new\n")})
	e.mustRun("backup", "--host", "db1", "--tag", "nightly", src)
	second := readFiles(t, src)
	olds := listSnapshotsJSON(t, e)
	secretBlobs := contentBlobs(t, e, olds[0].ID, src+"/etc/app/tls/server.key")
	awsBlobs := contentBlobs(t, e, olds[1].ID, src+"/home/ann/.aws/credentials")
	excludes := []string{"server.key", src + "/home/ann/.aws"}
	args := []string{"--exclude", excludes[0], "--exclude", excludes[1]}
	wantRemoved := []string{src + "/etc/app/tls/server.key", src + "/home/ann/.aws"}

	// A dry run says what would go and writes nothing.
	snapFiles, packs := repoFiles(t, e, "snapshots"), repoFiles(t, e, "data")
	dry := runRewriteJSON(t, e, append(args, "--dry-run", olds[0].ShortID, olds[1].ShortID)...)
	if len(dry) != 2 {
		t.Fatalf("dry run: %+v", dry)
	}
	for _, j := range dry {
		if !j.Changed || j.ID != "" || !slices.Equal(j.RemovedPaths, wantRemoved) || j.FilesRemoved != 3 || j.DirsRemoved != 3 ||
			j.BytesRemoved != int64(len(secret)+3000+900) {
			t.Errorf("dry run: %+v", j)
		}
	}
	if !slices.Equal(repoFiles(t, e, "snapshots"), snapFiles) || !slices.Equal(repoFiles(t, e, "data"), packs) {
		t.Fatalf("a dry run wrote to the repository")
	}

	res := runRewriteJSON(t, e, append(args, "--forget", olds[0].ShortID, olds[1].ShortID)...)
	if len(res) != 2 || !res[0].Changed || !res[1].Changed || !res[0].Forgotten {
		t.Fatalf("rewrite --forget: %+v", res)
	}
	news := listSnapshotsJSON(t, e)
	if len(news) != 2 {
		t.Fatalf("%d snapshots after rewrite --forget, want 2", len(news))
	}
	for i, sn := range news {
		old := olds[i]
		if sn.ID != res[i].ID || sn.ID == old.ID || !sn.Time.Equal(old.Time) || sn.Hostname != old.Hostname ||
			!slices.Equal(sn.Paths, old.Paths) || !slices.Equal(sn.Tags, old.Tags) || sn.Original != "" {
			t.Errorf("rewritten snapshot %d does not keep the original's identity:\n%+v\n%+v", i, old, sn)
		}
		if sn.Rewrite == nil || sn.Rewrite.From != old.ID || !slices.Equal(sn.Rewrite.Excludes, excludes) || sn.Rewrite.Time.IsZero() {
			t.Errorf("rewrite record of %s: %+v", sn.ShortID, sn.Rewrite)
		}
		if sn.Summary == nil || sn.Summary.TotalFiles != old.Summary.TotalFiles-3 ||
			sn.Summary.TotalBytes != old.Summary.TotalBytes-int64(len(secret)+3000+900) {
			t.Errorf("summary totals of %s not reduced by the removed files: %+v", sn.ShortID, sn.Summary)
		}
	}
	if out := string(e.mustRun("rewrite", "--exclude", "nothing-like-this", news[0].ShortID).stdout); !strings.Contains(out, "nothing matches") {
		t.Errorf("rewrite without a match: %s", out)
	}
	if n := len(repoFiles(t, e, "snapshots")); n != 2 {
		t.Errorf("a rewrite that matched nothing saved a snapshot")
	}

	for i, want := range []map[string][]byte{first, second} {
		target := e.path("restore", news[i].ShortID)
		e.mustRun("restore", news[i].ID, "--target", target)
		sameFileMaps(t, "restore of "+news[i].ShortID, withoutPaths(want, "etc/app/tls/server.key", "home/ann/.aws"), readFiles(t, target+src))
		if _, err := os.Stat(target + src + "/home/ann/.aws"); !os.IsNotExist(err) {
			t.Errorf("the removed directory was restored (%v)", err)
		}
		if fi, err := os.Stat(target + src + "/etc/app/tls"); err != nil || !fi.IsDir() {
			t.Errorf("the directory that held the removed file is gone: %v", err)
		}
	}
	e.mustRun("check", "--read-data")

	// Before prune the content is still stored; after it, in no pack.
	stored := storedBlobs(t, e)
	for _, b := range append(slices.Clone(secretBlobs), awsBlobs...) {
		if !stored[b] {
			t.Fatalf("blob %s of a removed file is gone before prune", b.Short())
		}
	}
	e.mustRun("prune")
	stored = storedBlobs(t, e)
	for _, b := range append(slices.Clone(secretBlobs), awsBlobs...) {
		if stored[b] {
			t.Errorf("blob %s of a removed file is still in a pack after prune", b.Short())
		}
	}
	for _, b := range contentBlobs(t, e, news[1].ID, src+"/var/big.bin") {
		if !stored[b] {
			t.Errorf("blob %s of a kept file was pruned", b.Short())
		}
	}
	e.mustRun("check", "--read-data")
	target := e.path("after-prune")
	e.mustRun("restore", news[1].ID, "--target", target)
	sameFileMaps(t, "restore after prune", withoutPaths(second, "etc/app/tls/server.key", "home/ann/.aws"), readFiles(t, target+src))
}

// TestRewriteKeepsOriginal: without --forget the original stays, with the
// paths, and the text output says how to have them gone.
func TestRewriteKeepsOriginal(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 0)
	src := e.path("src")
	writeFiles(t, src, map[string][]byte{"a/pw.txt": []byte("hunter2\n"), "a/b.txt": []byte("b\n"), "c/d/e.txt": []byte("e\n")})
	e.mustRun("backup", src)
	old := listSnapshotsJSON(t, e)[0]
	pats := e.path("leaked.txt")
	if err := os.WriteFile(pats, []byte("# leaked on Monday\n\npw.txt\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := e.mustRun("rewrite", "--exclude-file", pats, "latest")
	if !strings.Contains(string(r.stdout), "originals are kept") || !strings.Contains(string(r.stdout), src+"/a/pw.txt") {
		t.Errorf("rewrite output: %v", r)
	}
	sns := listSnapshotsJSON(t, e)
	if len(sns) != 2 || sns[0].ID != old.ID && sns[1].ID != old.ID {
		t.Fatalf("the original is not kept: %+v", sns)
	}
	for _, sn := range sns {
		if sn.ID != old.ID && (sn.Rewrite == nil || !slices.Equal(sn.Rewrite.Excludes, []string{"pw.txt"})) {
			t.Errorf("rewrite record: %+v", sn.Rewrite)
		}
	}
	// Unchanged directories keep their stored trees; those on the way to
	// a removed entry get new ones.
	var rewritten string
	for _, sn := range sns {
		if sn.ID != old.ID {
			rewritten = sn.ID
		}
	}
	if subtree(t, e, old.ID, src+"/c") != subtree(t, e, rewritten, src+"/c") {
		t.Errorf("an unchanged directory got a new tree")
	}
	if subtree(t, e, old.ID, src+"/a") == subtree(t, e, rewritten, src+"/a") {
		t.Errorf("the directory that lost a file kept its tree")
	}
	e.expectCode(ExitFatal, "rewrite", "latest")
	e.expectCode(ExitFatal, "rewrite", "--exclude", "x")
	e.expectCode(ExitFatal, "rewrite", "--exclude", "[", "latest")
	e.mustRun("check", "--read-data")
}

// subtree returns the tree blob IDs of directory p in a snapshot, read in
// this process, as one string.
func subtree(t *testing.T, e *env, snapID, p string) string {
	t.Helper()
	ctx := context.Background()
	r := openInProcess(t, e)
	defer r.Close()
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	sn, err := snapshot.Find(ctx, r, snapID, snapshot.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := snapshot.Lookup(ctx, r, sn, p)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, i := range n.Subtree {
		b.WriteString(i.String())
	}
	return b.String()
}
