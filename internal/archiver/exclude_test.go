package archiver

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
)

// entries lists the paths below dir in the snapshot, sorted.
func entries(t *testing.T, sn *snapshot.Snapshot, a *Archiver, dir string) []string {
	t.Helper()
	n := lookup(t, a.repo, sn, dir)
	var out []string
	err := snapshot.Walk(context.Background(), a.repo, dir, n.Subtree, func(p string, _ *tree.Node) error {
		out = append(out, strings.TrimPrefix(p, dir+"/"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// TestExcludeIfPresent: a directory holding a marker keeps only the
// marker; with a header, only a regular file starting with it counts
// (not a shorter file, another content, or a symlink to a good one);
// several markers and CACHEDIR.TAG work together.
func TestExcludeIfPresent(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	files := map[string]string{
		"keep/a":             "a",
		"plain/.nobackup":    "",
		"plain/data":         "d",
		"plain/sub/deep":     "x",
		"hdr-ok/.tag":        "MAGIC and more",
		"hdr-ok/data":        "d",
		"hdr-short/.tag":     "MAG",
		"hdr-short/data":     "d",
		"hdr-other/.tag":     "magic",
		"hdr-other/data":     "d",
		"cache/CACHEDIR.TAG": cacheDirSignature + "\n",
		"cache/blob":         "b",
		"both/.nobackup":     "",
		"both/.tag":          "MAGIC",
		"both/data":          "d",
	}
	for p, c := range files {
		writeFile(t, filepath.Join(src, p), []byte(c))
	}
	if err := os.Mkdir(filepath.Join(src, "hdr-link"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(src, "hdr-link/data"), []byte("d"))
	if err := os.Symlink("../hdr-ok/.tag", filepath.Join(src, "hdr-link/.tag")); err != nil {
		t.Fatal(err)
	}
	r := newTestRepo(t, "")
	sn, a := backup(t, r, Options{ExcludeIfPresent: []string{".nobackup", ".tag:MAGIC"}, ExcludeCaches: true}, src)
	want := []string{
		"both", "both/.nobackup", "both/.tag",
		"cache", "cache/CACHEDIR.TAG",
		"hdr-link", "hdr-link/.tag", "hdr-link/data",
		"hdr-ok", "hdr-ok/.tag",
		"hdr-other", "hdr-other/.tag", "hdr-other/data",
		"hdr-short", "hdr-short/.tag", "hdr-short/data",
		"keep", "keep/a",
		"plain", "plain/.nobackup",
	}
	if got := entries(t, sn, a, src); !slices.Equal(got, want) {
		t.Errorf("snapshot holds\n%q\nwant\n%q", got, want)
	}
	for _, bad := range []string{"", ":x", "a/b", ".."} {
		if _, err := New(r, Options{ExcludeIfPresent: []string{bad}}); err == nil {
			t.Errorf("--exclude-if-present %q accepted", bad)
		}
	}
}

// TestExcludeLargerThan: regular files strictly larger than the limit
// are left out and listed, below a target and as a target; a file of
// exactly the limit, directories and symlinks stay.
func TestExcludeLargerThan(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	writeFile(t, filepath.Join(src, "small"), make([]byte, 100))
	writeFile(t, filepath.Join(src, "exact"), make([]byte, 1024))
	writeFile(t, filepath.Join(src, "big"), randomBytes(1, 1025))
	writeFile(t, filepath.Join(src, "sub/huge"), randomBytes(2, 5000))
	if err := os.Link(filepath.Join(src, "sub/huge"), filepath.Join(src, "sub/huge-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("big", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "target-big")
	writeFile(t, target, randomBytes(3, 2000))
	r := newTestRepo(t, "")
	sn, a := backup(t, r, Options{ExcludeLargerThan: 1024}, src, target)
	if got, want := entries(t, sn, a, src), []string{"exact", "link", "small", "sub"}; !slices.Equal(got, want) {
		t.Errorf("snapshot holds %q, want %q", got, want)
	}
	want := []LargeFile{{filepath.Join(src, "big"), 1025}, {filepath.Join(src, "sub/huge"), 5000},
		{filepath.Join(src, "sub/huge-link"), 5000}, {target, 2000}}
	if got := a.TooLarge(); !slices.Equal(got, want) {
		t.Errorf("TooLarge %v, want %v", got, want)
	}
	if _, err := snapshot.Lookup(context.Background(), r, sn, target); err == nil {
		t.Errorf("target %s larger than the limit is in the snapshot", target)
	}
	if s := sn.Summary; s.TotalFiles != 2 || s.TotalBytes != 1124 || s.DataBlobs != 2 {
		t.Errorf("summary counts left-out files: %d files, %d bytes, %d data blobs", s.TotalFiles, s.TotalBytes, s.DataBlobs)
	}
}
