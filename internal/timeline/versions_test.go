package timeline_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/backend/mem"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/filter"
	"github.com/rewind-backup/rewind/internal/label"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/timeline"
)

func newRepo(t *testing.T) *repository.Repository {
	t.Helper()
	r, err := repository.Init(context.Background(), mem.New(), []byte("pw"), repository.InitOptions{KDF: crypto.TestKDFParams})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// backup stores a snapshot of paths, as `rewind backup` would.
func backup(t *testing.T, r *repository.Repository, excludes []string, paths ...string) *snapshot.Snapshot {
	t.Helper()
	a, err := archiver.New(r, archiver.Options{Hostname: "web1", Excludes: excludes})
	if err != nil {
		t.Fatal(err)
	}
	sn, err := a.Snapshot(context.Background(), paths)
	if err != nil {
		t.Fatal(err)
	}
	return sn
}

func write(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

type versionSummary struct {
	change    timeline.Change
	snapshots int
	labels    []string
}

func summarize(vs []timeline.Version) []versionSummary {
	var out []versionSummary
	for _, v := range vs {
		s := versionSummary{change: v.Change, snapshots: v.Snapshots}
		for _, l := range v.Labels {
			s.labels = append(s.labels, l.Name)
		}
		out = append(out, s)
	}
	return out
}

func sameSummaries(a, b []versionSummary) bool {
	return slices.EqualFunc(a, b, func(x, y versionSummary) bool {
		return x.change == y.change && x.snapshots == y.snapshots && slices.Equal(x.labels, y.labels)
	})
}

// TestVersions follows a file and its directory through backups in
// which they change in every way a version can, and in ways that do not
// make a version (access and change times).
func TestVersions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newRepo(t)
	src := filepath.Join(t.TempDir(), "src")
	f := filepath.Join(src, "f.txt")
	write(t, f, "one\n")
	write(t, filepath.Join(src, "other"), "x")
	var sns []*snapshot.Snapshot
	snap := func() { sns = append(sns, backup(t, r, nil, src)) }
	mark := func(name string) label.Label { return label.Label{Name: name, Time: time.Now()} }

	early := mark("before everything")
	snap()
	snap() // nothing changed
	// A new access time, which also moves the change time: the same
	// version.
	fi, err := os.Stat(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(f, time.Unix(1_000_000, 0), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	snap()
	if err := os.Chmod(f, 0o600); err != nil { // metadata
		t.Fatal(err)
	}
	snap()
	midway := mark("after chmod")
	write(t, f, "two\n") // content
	snap()
	if err := os.Remove(f); err != nil { // gone
		t.Fatal(err)
	}
	snap()
	snap()
	write(t, f, "one\n") // back
	snap()
	labels := []label.Label{early, midway}

	vs, err := timeline.Versions(ctx, r, sns, f, labels)
	if err != nil {
		t.Fatal(err)
	}
	want := []versionSummary{
		{timeline.First, 3, nil},
		{timeline.Metadata, 1, []string{"after chmod"}},
		{timeline.Content, 1, nil},
		{timeline.Deleted, 2, nil},
		{timeline.Created, 1, nil},
	}
	if got := summarize(vs); !sameSummaries(got, want) {
		t.Fatalf("versions of the file:\n%+v\nwant\n%+v", got, want)
	}
	for i, v := range vs {
		if v.Present() != (v.Change != timeline.Deleted) {
			t.Errorf("version %d (%s): present %v", i, v.Change, v.Present())
		}
	}
	if vs[0].First != sns[0] || vs[0].Last != sns[2] || vs[3].First != sns[5] || vs[3].Last != sns[6] {
		t.Error("versions name the wrong first and last snapshots")
	}
	if vs[0].Node.Size != 4 || vs[1].Node.Mode&0o777 != 0o600 {
		t.Errorf("version nodes: size %d, mode %o", vs[0].Node.Size, vs[1].Node.Mode)
	}

	// The directory changes with what is in it: an entry's metadata, its
	// content, an entry going and coming back.
	vs, err = timeline.Versions(ctx, r, sns, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	want = []versionSummary{
		{timeline.First, 3, nil},
		{timeline.Metadata, 1, nil},
		{timeline.Content, 1, nil},
		{timeline.Content, 2, nil},
		{timeline.Content, 1, nil},
	}
	if got := summarize(vs); !sameSummaries(got, want) {
		t.Fatalf("versions of the directory:\n%+v\nwant\n%+v", got, want)
	}
	if vs[0].Entries != 2 || vs[3].Entries != 1 {
		t.Errorf("directory versions have %d and %d entries, want 2 and 1", vs[0].Entries, vs[3].Entries)
	}

	// A path no snapshot ever held is one absent version.
	vs, err = timeline.Versions(ctx, r, sns, filepath.Join(src, "never"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 1 || vs[0].Present() || vs[0].Snapshots != len(sns) {
		t.Errorf("a path never backed up: %+v", summarize(vs))
	}
}

// TestDiffLive compares a snapshot's directory with the disk after every
// kind of change.
func TestDiffLive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newRepo(t)
	src := filepath.Join(t.TempDir(), "src")
	for name, content := range map[string]string{"a": "aaaa", "b": "bbb", "keep.txt": "same", "sub/c": "c", "x.tmp": "excluded"} {
		write(t, filepath.Join(src, name), content)
	}
	excludes := []string{"*.tmp"}
	sn := backup(t, r, excludes, src)

	// Same size and modification time, other bytes: only the chunk
	// hashes tell.
	fi, err := os.Stat(filepath.Join(src, "a"))
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(src, "a"), "abab")
	if err := os.Chtimes(filepath.Join(src, "a"), fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(src, "b"), 0o600); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(src, "keep.txt"), future, future); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(src, "sub", "c")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(src, "d"), "new")
	write(t, filepath.Join(src, "newdir", "e"), "new")
	write(t, filepath.Join(src, "y.tmp"), "excluded too")
	if l, err := net.Listen("unix", filepath.Join(src, "sock")); err == nil {
		defer l.Close()
	}

	skip, err := filter.NewMatcher(excludes)
	if err != nil {
		t.Fatal(err)
	}
	diff := func(p string, absent bool) []string {
		t.Helper()
		n, err := timeline.Lookup(ctx, r, sn, p)
		if err != nil {
			t.Fatal(err)
		}
		if (n == nil) != absent {
			t.Fatalf("%s in the snapshot: %v", p, n)
		}
		var out []string
		err = timeline.DiffLive(ctx, r, p, n, skip, func(q, mod string) {
			rel, _ := filepath.Rel(src, q)
			out = append(out, mod+" "+rel)
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	got := diff(src, false)
	want := []string{"M a", "U b", "+ d", "U keep.txt", "+ newdir", "+ newdir/e", "U sub", "- sub/c"}
	if !slices.Equal(got, want) {
		t.Errorf("DiffLive of the directory:\n%q\nwant\n%q", got, want)
	}
	if got := diff(filepath.Join(src, "a"), false); !slices.Equal(got, []string{"M a"}) {
		t.Errorf("DiffLive of a file: %q", got)
	}
	if got := diff(filepath.Join(src, "newdir"), true); !slices.Equal(got, []string{"+ newdir", "+ newdir/e"}) {
		t.Errorf("DiffLive of a new directory: %q", got)
	}
	if got := diff(filepath.Join(src, "sub", "c"), false); !slices.Equal(got, []string{"- sub/c"}) {
		t.Errorf("DiffLive of a deleted file: %q", got)
	}
	// Put back as it was, the directory shows no difference.
	if err := os.WriteFile(filepath.Join(src, "a"), []byte("aaaa"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := diff(filepath.Join(src, "a"), false); !slices.Equal(got, []string{"U a"}) {
		t.Errorf("a file with its old content and a new mtime: %q", got)
	}
}
