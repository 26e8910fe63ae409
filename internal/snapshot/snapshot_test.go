package snapshot_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// fullSnapshot uses every field.
func fullSnapshot() *snapshot.Snapshot {
	var parent, t1, t2 id.ID
	parent[0], t1[1], t2[2] = 0xaa, 0xbb, 0xcc
	start := time.Date(2025, 3, 4, 5, 6, 7, 890123456, time.UTC)
	return &snapshot.Snapshot{
		Time:           start.Add(time.Minute),
		Parent:         &parent,
		Tree:           []id.ID{t1, t2},
		Paths:          []string{"/etc", "/home/alice"},
		Hostname:       "web-1",
		Username:       "root",
		UID:            0,
		GID:            4294967295,
		Tags:           []string{"daily", "pre-upgrade"},
		Excludes:       []string{"*.cache", "/home/*/tmp"},
		ProgramVersion: "rewind 0.1.0",
		Summary: &snapshot.Summary{
			BackupStart: start, BackupEnd: start.Add(time.Minute),
			FilesNew: 1, FilesChanged: 2, FilesUnchanged: 3, DirsNew: 4, DirsChanged: 5, DirsUnchanged: 6,
			TotalFiles: 7, TotalBytes: 8, BytesRead: 9, DataBlobs: 10, TreeBlobs: 11, DataAdded: 12, DataStored: 13,
			Errors: []snapshot.FileError{{Path: "/etc/shadow", Error: "permission denied"}},
		},
	}
}

func TestSaveLoad(t *testing.T) {
	ctx := context.Background()
	r, _ := newRepo(t)
	sn := fullSnapshot()
	if err := snapshot.Save(ctx, r, sn); err != nil {
		t.Fatal(err)
	}
	got, err := snapshot.Load(ctx, r, sn.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, sn) {
		t.Fatalf("round trip:\n%+v\nwant\n%+v", got, sn)
	}
	// The ID is the file's name, not part of its content.
	if _, err := r.LoadFile(ctx, backend.SnapshotFile, sn.ID); err != nil {
		t.Fatal(err)
	}
	plain, _ := r.LoadFile(ctx, backend.SnapshotFile, sn.ID)
	if strings.Contains(string(plain), sn.ID.String()) || strings.Contains(string(plain), `"ID"`) {
		t.Fatalf("the snapshot file holds its own ID: %s", plain)
	}

	// Optional fields left out.
	min := &snapshot.Snapshot{Time: time.Unix(0, 0).UTC(), Tree: sn.Tree, Paths: []string{"/"}, Hostname: "h"}
	if err := snapshot.Save(ctx, r, min); err != nil {
		t.Fatal(err)
	}
	got, err = snapshot.Load(ctx, r, min.ID)
	if err != nil || !reflect.DeepEqual(got, min) {
		t.Fatalf("minimal snapshot: %+v, %v", got, err)
	}

	// A snapshot without a tree is refused on load.
	empty := &snapshot.Snapshot{Hostname: "h"}
	if err := snapshot.Save(ctx, r, empty); err != nil {
		t.Fatal(err)
	}
	if _, err := snapshot.Load(ctx, r, empty.ID); !errors.Is(err, repository.ErrCorrupt) || !strings.Contains(err.Error(), empty.ID.String()) {
		t.Fatalf("snapshot without a tree: got %v, want ErrCorrupt naming it", err)
	}
	var missing id.ID
	missing[0] = 1
	if _, err := snapshot.Load(ctx, r, missing); err == nil || !backend.IsNotExist(err) {
		t.Fatalf("missing snapshot: got %v, want not found", err)
	}
}

// TestGoldenJSON pins the JSON of a snapshot file (and of --json output,
// docs/JSON.md). Regenerate with go test -run TestGoldenJSON -update, only
// for a new format version.
func TestGoldenJSON(t *testing.T) {
	b, err := json.MarshalIndent(fullSnapshot(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "snapshot-v1.golden.json")
	if *update {
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(b)+"\n" != string(want) {
		t.Errorf("snapshot JSON changed:\n%s\nwant\n%s", b, want)
	}
	var sn snapshot.Snapshot
	if err := json.Unmarshal(want, &sn); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&sn, fullSnapshot()) {
		t.Fatalf("golden JSON decodes to\n%+v", sn)
	}
}

func TestFind(t *testing.T) {
	ctx := context.Background()
	r, _ := newRepo(t)
	if _, err := snapshot.Find(ctx, r, "latest", snapshot.Filter{}); !errors.Is(err, snapshot.ErrNotFound) {
		t.Fatalf("latest in an empty repository: got %v, want ErrNotFound", err)
	}
	root := rootTree(t, r)
	// Save snapshots until two share their first hex digit; they are
	// saved out of time order, so that "latest" cannot just be the last
	// saved.
	var sns []*snapshot.Snapshot
	byDigit := map[byte][]*snapshot.Snapshot{}
	var twin byte
	for n := 0; ; n++ {
		host := "a"
		if n%2 == 1 {
			host = "b"
		}
		sn := save(t, r, root, 100-n, host, []string{"/data"})
		sns = append(sns, sn)
		d := sn.ID.String()[0]
		byDigit[d] = append(byDigit[d], sn)
		if len(byDigit[d]) == 2 {
			twin = d
			break
		}
		if n > 16 {
			t.Fatal("17 IDs with distinct first digits")
		}
	}
	newest := sns[0]
	newestB := sns[1]

	if got, err := snapshot.Find(ctx, r, "latest", snapshot.Filter{}); err != nil || got.ID != newest.ID {
		t.Fatalf("latest: got %v, %v; want %s", got, err, newest.ID.Short())
	}
	if got, err := snapshot.Find(ctx, r, "latest", snapshot.Filter{Hosts: []string{"b"}}); err != nil || got.ID != newestB.ID {
		t.Fatalf("latest of host b: got %v, %v; want %s", got, err, newestB.ID.Short())
	}
	if _, err := snapshot.Find(ctx, r, "latest", snapshot.Filter{Hosts: []string{"c"}}); !errors.Is(err, snapshot.ErrNotFound) {
		t.Fatalf("latest of an unknown host: got %v, want ErrNotFound", err)
	}
	for _, sn := range sns {
		s := sn.ID.String()
		for _, ref := range []string{s, strings.ToUpper(s)} {
			got, err := snapshot.Find(ctx, r, ref, snapshot.Filter{})
			if err != nil || got.ID != sn.ID {
				t.Fatalf("full ID %s: got %v, %v", ref, got, err)
			}
		}
		if len(byDigit[s[0]]) == 1 {
			got, err := snapshot.Find(ctx, r, s[:1], snapshot.Filter{})
			if err != nil || got.ID != sn.ID {
				t.Fatalf("unique prefix %s: got %v, %v", s[:1], got, err)
			}
		}
	}
	a, b := byDigit[twin][0].ID.String(), byDigit[twin][1].ID.String()
	_, err := snapshot.Find(ctx, r, string(twin), snapshot.Filter{})
	if !errors.Is(err, snapshot.ErrAmbiguous) || !strings.Contains(err.Error(), "2 snapshots") {
		t.Fatalf("ambiguous prefix %c: got %v, want ErrAmbiguous", twin, err)
	}
	// The shortest prefix that tells the twins apart resolves.
	k := 0
	for a[k] == b[k] {
		k++
	}
	if got, err := snapshot.Find(ctx, r, a[:k+1], snapshot.Filter{}); err != nil || got.ID.String() != a {
		t.Fatalf("prefix %s: got %v, %v", a[:k+1], got, err)
	}

	var unknown []string
	for _, d := range "0123456789abcdef" {
		if len(byDigit[byte(d)]) == 0 {
			unknown = append(unknown, string(d))
		}
	}
	var absent id.ID
	copy(absent[:], sns[0].ID[:])
	absent[31] ^= 1
	unknown = append(unknown, absent.String(), "", "xyz", "latest2", strings.Repeat("0", 65), sns[0].ID.String()+"0")
	for _, ref := range unknown {
		if _, err := snapshot.Find(ctx, r, ref, snapshot.Filter{}); !errors.Is(err, snapshot.ErrNotFound) {
			t.Errorf("ref %q: got %v, want ErrNotFound", ref, err)
		}
	}
}

func TestFilter(t *testing.T) {
	sn := &snapshot.Snapshot{Hostname: "web-1", Paths: []string{"/etc", "/home"}, Tags: []string{"daily", "prod"}}
	cases := []struct {
		name string
		f    snapshot.Filter
		want bool
	}{
		{"empty filter", snapshot.Filter{}, true},
		{"host", snapshot.Filter{Hosts: []string{"web-1"}}, true},
		{"any of the hosts", snapshot.Filter{Hosts: []string{"db-1", "web-1"}}, true},
		{"other host", snapshot.Filter{Hosts: []string{"db-1"}}, false},
		{"host is exact", snapshot.Filter{Hosts: []string{"web"}}, false},
		{"tag", snapshot.Filter{Tags: []string{"daily"}}, true},
		{"missing tag", snapshot.Filter{Tags: []string{"weekly"}}, false},
		{"any of the tag entries", snapshot.Filter{Tags: []string{"weekly", "prod"}}, true},
		{"all tags of an entry", snapshot.Filter{Tags: []string{"daily,prod"}}, true},
		{"one tag of an entry missing", snapshot.Filter{Tags: []string{"daily,weekly"}}, false},
		{"entry with an empty tag", snapshot.Filter{Tags: []string{"daily,"}}, true},
		{"second entry matches", snapshot.Filter{Tags: []string{"daily,weekly", "prod"}}, true},
		{"path", snapshot.Filter{Paths: []string{"/etc"}}, true},
		{"every path", snapshot.Filter{Paths: []string{"/etc", "/home"}}, true},
		{"a path missing", snapshot.Filter{Paths: []string{"/etc", "/var"}}, false},
		{"path is exact", snapshot.Filter{Paths: []string{"/etc/"}}, false},
		{"everything", snapshot.Filter{Hosts: []string{"web-1"}, Tags: []string{"prod"}, Paths: []string{"/home"}}, true},
		{"everything but the host", snapshot.Filter{Hosts: []string{"x"}, Tags: []string{"prod"}, Paths: []string{"/home"}}, false},
	}
	for _, c := range cases {
		if got := c.f.Match(sn); got != c.want {
			t.Errorf("%s: Match = %v, want %v", c.name, got, c.want)
		}
	}
	if (snapshot.Filter{Tags: []string{"daily"}}).Match(&snapshot.Snapshot{}) {
		t.Error("an untagged snapshot matches a tag filter")
	}
}

func TestListSkipsDamaged(t *testing.T) {
	ctx := context.Background()
	r, be := newRepo(t)
	root := rootTree(t, r)
	s1 := save(t, r, root, 3, "h", []string{"/"})
	s2 := save(t, r, root, 1, "h", []string{"/"})
	s3 := save(t, r, root, 2, "h", []string{"/"})
	s4 := save(t, r, root, 2, "h", []string{"/x"}) // same time as s3

	got, err := snapshot.List(ctx, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	order := []id.ID{s2.ID, s3.ID, s4.ID, s1.ID}
	if s4.ID.String() < s3.ID.String() {
		order[1], order[2] = s4.ID, s3.ID
	}
	if ids := idsOf(got); !slices.Equal(ids, order) {
		t.Fatalf("order %v, want oldest first, by ID on equal times: %v", ids, order)
	}

	// Damage s3: its bytes no longer match its name.
	h := backend.Handle{Type: backend.SnapshotFile, Name: s3.ID.String()}
	if err := be.Remove(ctx, h); err != nil {
		t.Fatal(err)
	}
	if err := be.Save(ctx, h, backend.NewByteReader([]byte("garbage"))); err != nil {
		t.Fatal(err)
	}
	var bad []id.ID
	var badErr error
	got, err = snapshot.List(ctx, r, func(i id.ID, err error) {
		bad = append(bad, i)
		badErr = err
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := slices.DeleteFunc(slices.Clone(order), func(i id.ID) bool { return i == s3.ID }); !slices.Equal(idsOf(got), want) {
		t.Fatalf("got %v, want %v", idsOf(got), want)
	}
	if len(bad) != 1 || bad[0] != s3.ID || !errors.Is(badErr, repository.ErrCorrupt) {
		t.Fatalf("onError got %v, %v", bad, badErr)
	}
	if _, err := snapshot.List(ctx, r, nil); !errors.Is(err, repository.ErrCorrupt) {
		t.Fatalf("List without onError: got %v, want the damage", err)
	}
	// latest skips the damaged snapshot too.
	if got, err := snapshot.Find(ctx, r, "latest", snapshot.Filter{}); err != nil || got.ID != s1.ID {
		t.Fatalf("latest: %v, %v", got, err)
	}
	if _, err := snapshot.Find(ctx, r, s3.ID.String(), snapshot.Filter{}); !errors.Is(err, repository.ErrCorrupt) {
		t.Fatalf("find the damaged snapshot: got %v, want ErrCorrupt", err)
	}
}

func idsOf(sns []*snapshot.Snapshot) []id.ID {
	var out []id.ID
	for _, s := range sns {
		out = append(out, s.ID)
	}
	return out
}

func TestSplitRef(t *testing.T) {
	for in, want := range map[string][2]string{
		"latest":             {"latest", ""},
		"latest:/etc":        {"latest", "/etc"},
		"abc:/a:b":           {"abc", "/a:b"},
		":/x":                {"", "/x"},
		"":                   {"", ""},
		"0123abcd:":          {"0123abcd", ""},
		"latest:/with space": {"latest", "/with space"},
	} {
		if ref, p := snapshot.SplitRef(in); ref != want[0] || p != want[1] {
			t.Errorf("SplitRef(%q) = %q, %q; want %q, %q", in, ref, p, want[0], want[1])
		}
	}
}
