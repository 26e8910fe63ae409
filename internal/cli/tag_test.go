package cli

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

func init() { schemaTypes["tag"] = reflect.TypeFor[jsonTag]() }

type jsonTag struct {
	From    string   `json:"from"`
	ID      string   `json:"id"`
	ShortID string   `json:"short_id"`
	Tags    []string `json:"tags"`
	Changed bool     `json:"changed"`
}

// snapshotsByID lists the snapshots by full ID.
func snapshotsByID(t *testing.T, e *env) map[string]jsonSnapshot {
	t.Helper()
	out := map[string]jsonSnapshot{}
	for _, sn := range listSnapshotsJSON(t, e) {
		out[sn.ID] = sn
	}
	return out
}

// runTagJSON runs tag --json and checks the document.
func runTagJSON(t *testing.T, e *env, args ...string) []jsonTag {
	t.Helper()
	var out []jsonTag
	checkDoc(t, "tag", e.mustRun(append([]string{"tag", "--json"}, args...)...).stdout, &out)
	return out
}

// sameExceptTags fails unless b is a with other tags and a new ID.
func sameExceptTags(t *testing.T, a, b jsonSnapshot) {
	t.Helper()
	if b.ID == a.ID {
		t.Errorf("retagged snapshot kept its ID %s", a.ShortID)
	}
	if !b.Time.Equal(a.Time) || !slices.Equal(b.Tree, a.Tree) || b.Hostname != a.Hostname || !slices.Equal(b.Paths, a.Paths) ||
		b.Summary == nil || a.Summary == nil || !reflect.DeepEqual(b.Summary, a.Summary) || b.Original != "" {
		t.Errorf("retagged snapshot differs beyond its tags:\n%+v\n%+v", a, b)
	}
	if b.TaggedFrom != a.ID {
		t.Errorf("tagged_from %q, want %s", b.TaggedFrom, a.ID)
	}
}

func TestTag(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 0)
	src := e.path("src")
	writeFiles(t, src, map[string][]byte{"a": []byte("one")})
	e.mustRun("backup", "--host", "web1", "--tag", "nightly", src)
	writeFiles(t, src, map[string][]byte{"a": []byte("two")})
	e.mustRun("backup", "--host", "web1", "--tag", "nightly", "--tag", "db", src)
	writeFiles(t, src, map[string][]byte{"a": []byte("three")})
	e.mustRun("backup", "--host", "web2", src)
	before := listSnapshotsJSON(t, e)
	s1, s2, s3 := before[0], before[1], before[2]

	// By ID: add to two snapshots, one of which has the tag already.
	res := runTagJSON(t, e, "--add", "audited,db", s1.ShortID, s2.ID)
	if len(res) != 2 || !res[0].Changed || !res[1].Changed {
		t.Fatalf("tag --add: %+v", res)
	}
	now := snapshotsByID(t, e)
	if len(now) != 3 {
		t.Fatalf("%d snapshots after tag, want 3", len(now))
	}
	if _, ok := now[s1.ID]; ok {
		t.Errorf("the old snapshot %s is still there", s1.ShortID)
	}
	n1, n2 := now[res[0].ID], now[res[1].ID]
	sameExceptTags(t, s1, n1)
	sameExceptTags(t, s2, n2)
	if !slices.Equal(n1.Tags, []string{"nightly", "audited", "db"}) || !slices.Equal(n2.Tags, []string{"nightly", "db", "audited"}) {
		t.Errorf("tags after --add: %q, %q", n1.Tags, n2.Tags)
	}
	if !slices.Equal(now[s3.ID].Tags, nil) {
		t.Errorf("an unnamed snapshot changed: %q", now[s3.ID].Tags)
	}

	// By filter: remove from every web1 snapshot with tag db.
	res = runTagJSON(t, e, "--host", "web1", "--tag", "db", "--remove", "nightly", "--remove", "absent")
	if len(res) != 2 {
		t.Fatalf("tag by filter touched %d snapshots, want 2: %+v", len(res), res)
	}
	for _, j := range res {
		if !j.Changed || !slices.Equal(j.Tags, []string{"audited", "db"}) && !slices.Equal(j.Tags, []string{"db", "audited"}) {
			t.Errorf("after --remove: %+v", j)
		}
	}
	// A snapshot that would not change is left alone and keeps its ID.
	res = runTagJSON(t, e, "--host", "web2", "--remove", "nightly")
	if len(res) != 1 || res[0].Changed || res[0].ID != s3.ID {
		t.Errorf("a no-op tag replaced the snapshot: %+v", res)
	}
	// --set replaces everything; --set "" clears.
	res = runTagJSON(t, e, "--set", "release", "--set", "v2", "--path", src)
	if len(res) != 3 {
		t.Fatalf("--set by --path: %+v", res)
	}
	for _, sn := range listSnapshotsJSON(t, e) {
		if !slices.Equal(sn.Tags, []string{"release", "v2"}) {
			t.Errorf("after --set: %s has %q", sn.ShortID, sn.Tags)
		}
	}
	r := e.mustRun("tag", "--set", "", "latest")
	if !strings.Contains(string(r.stdout), "changed the tags of 1 snapshot\n") {
		t.Errorf("tag output: %v", r)
	}
	latest := listSnapshotsJSON(t, e)[2]
	if len(latest.Tags) != 0 || latest.Hostname != "web2" {
		t.Errorf("after --set \"\": %+v", latest)
	}
	e.mustRun("check", "--read-data")

	// Usage errors change nothing.
	files := repoFiles(t, e, "snapshots")
	e.expectCode(ExitFatal, "tag", latest.ShortID)
	e.expectCode(ExitFatal, "tag", "--set", "x", "--add", "y", latest.ShortID)
	e.expectCode(ExitFatal, "tag", "--add", "x", "--host", "nosuchhost")
	if got := repoFiles(t, e, "snapshots"); !slices.Equal(got, files) {
		t.Errorf("refused tag commands changed snapshots: %q, want %q", got, files)
	}
}

// TestTagGuarded: a snapshot under legal hold, or younger than the
// minimum retention, cannot be replaced; the refusal names each one, and
// nothing at all is written or removed, the other snapshots named
// included.
func TestTagGuarded(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 0)
	sns := backups(t, e, 3)
	const reason = "case 77"
	e.mustRun("protect", "--reason", reason, sns[1].ShortID)
	snapFiles := repoFiles(t, e, "snapshots")
	packs := repoFiles(t, e, "data")

	for _, args := range [][]string{
		{"tag", "--add", "x", sns[0].ShortID, sns[1].ShortID, sns[2].ShortID},
		{"tag", "--add", "x"},
		{"rewrite", "--exclude", "n.txt", "--forget", sns[0].ShortID, sns[1].ShortID},
	} {
		r := e.expectCode(ExitFatal, args...)
		for _, want := range []string{"of the", sns[1].ShortID, "protected: " + reason, "nothing was"} {
			if !strings.Contains(string(r.stderr), want) {
				t.Errorf("%v does not say %q: %v", args, want, r)
			}
		}
		if strings.Contains(string(r.stderr), sns[0].ShortID) {
			t.Errorf("an unguarded snapshot is named as refused: %v", r)
		}
		if got := repoFiles(t, e, "snapshots"); !slices.Equal(got, snapFiles) {
			t.Fatalf("%v changed the snapshots: %q, want %q", args, got, snapFiles)
		}
		if got := repoFiles(t, e, "data"); !slices.Equal(got, packs) {
			t.Errorf("%v wrote data: %q", args, got)
		}
	}
	// The guarded snapshot can still be rewritten without --forget.
	e.mustRun("rewrite", "--exclude", "n.txt", sns[1].ShortID)
	if n := len(repoFiles(t, e, "snapshots")); n != 4 {
		t.Errorf("%d snapshots after rewrite without --forget, want 4", n)
	}

	// Minimum retention keeps young snapshots the same way.
	e.mustRun("unprotect", sns[1].ShortID)
	e.mustRun("config", "--min-retention", "30d", "--admin-key-file", e.path("admin.pem"))
	r := e.expectCode(ExitFatal, "tag", "--add", "y", sns[2].ShortID)
	if !strings.Contains(string(r.stderr), "minimum retention 30d") || !strings.Contains(string(r.stderr), sns[2].ShortID) {
		t.Errorf("minimum retention refusal: %v", r)
	}
}
