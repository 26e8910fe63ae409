package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/testutil"
)

// TestOneFileSystemBoundaries backs up a tree on a real btrfs filesystem
// holding a subvolume with a nested subvolume, and two directories of an
// ext4 filesystem mounted into it: one beside the subvolume, one inside
// it. --one-file-system must keep the subvolume and the mount as empty
// directories and say so, naming each with its kind, in the text summary
// and in --json; --cross-subvolumes must go into both subvolumes but not
// into either mount; without a flag everything is backed up.
func TestOneFileSystemBoundaries(t *testing.T) {
	b := testutil.Btrfs(t)
	ext := testutil.Ext4(t)
	src := filepath.Join(b, "src")
	vol, inner := filepath.Join(src, "vol"), filepath.Join(src, "vol", "inner")
	mnt, volExt := filepath.Join(src, "mnt"), filepath.Join(src, "vol", "ext")
	writeFiles(t, src, map[string][]byte{"a.txt": []byte("top level\n")})
	testutil.BtrfsSubvolume(t, vol)
	testutil.BtrfsSubvolume(t, inner)
	writeFiles(t, vol, map[string][]byte{"f.txt": []byte("in the subvolume\n"), "dir/x.txt": []byte("deeper\n")})
	writeFiles(t, inner, map[string][]byte{"g.txt": []byte("in the nested subvolume\n")})
	writeFiles(t, ext, map[string][]byte{"one/o.txt": []byte("ext4 one\n"), "two/e.txt": []byte("ext4 two\n")})
	for _, d := range []string{mnt, volExt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	testutil.BindMount(t, filepath.Join(ext, "one"), mnt)
	testutil.BindMount(t, filepath.Join(ext, "two"), volExt)

	rel := func(ps ...string) []string {
		var out []string
		for _, p := range ps {
			out = append(out, filepath.Join(src, p))
		}
		return out
	}
	everything := rel("a.txt", "mnt", "mnt/o.txt", "vol", "vol/dir", "vol/dir/x.txt", "vol/ext", "vol/ext/e.txt",
		"vol/f.txt", "vol/inner", "vol/inner/g.txt")
	e := newRepo(t, 0)
	cases := []struct {
		name    string
		args    []string
		target  string
		entries []string       // below target
		crossed []jsonBoundary // not_crossed
	}{
		{"none", nil, src, everything, nil},
		{"one-file-system", []string{"--one-file-system"}, src, rel("a.txt", "mnt", "vol"),
			[]jsonBoundary{{mnt, "mount-point"}, {vol, "btrfs-subvolume"}}},
		{"cross-subvolumes", []string{"--cross-subvolumes"}, src,
			rel("a.txt", "mnt", "vol", "vol/dir", "vol/dir/x.txt", "vol/ext", "vol/f.txt", "vol/inner", "vol/inner/g.txt"),
			[]jsonBoundary{{mnt, "mount-point"}, {volExt, "mount-point"}}},
		{"x-on-a-subvolume", []string{"-x"}, vol, rel("vol/dir", "vol/dir/x.txt", "vol/ext", "vol/f.txt", "vol/inner"),
			[]jsonBoundary{{volExt, "mount-point"}, {inner, "btrfs-subvolume"}}},
	}
	for _, c := range cases {
		args := append(append([]string{"backup", "--json", "--force"}, c.args...), c.target)
		sum := checkBackupJSON(t, e.mustRun(args...))
		if !slices.Equal(sum.NotCrossed, c.crossed) {
			t.Errorf("%s: not_crossed %v, want %v", c.name, sum.NotCrossed, c.crossed)
		}
		var got []string
		for _, l := range jsonLines(t, e.mustRun("ls", "-R", "--json", sum.SnapshotID+":"+c.target)) {
			var n jsonNode
			checkDoc(t, "node", l.raw, &n)
			got = append(got, n.Path)
		}
		if !slices.Equal(got, c.entries) {
			t.Errorf("%s: snapshot holds\n%q\nwant\n%q", c.name, got, c.entries)
		}

		// The text summary names the same directories, and nothing else
		// is said about them.
		out := string(e.mustRun(append([]string{"backup", "--force"}, append(c.args, c.target)...)...).stdout)
		if n := strings.Count(out, "not crossed: "); n != len(c.crossed) {
			t.Errorf("%s: %d directories named as not crossed, want %d:\n%s", c.name, n, len(c.crossed), out)
		}
		for _, b := range c.crossed {
			want := "not crossed: " + b.Path + " (mount point)"
			if b.Kind == "btrfs-subvolume" {
				want = "not crossed: " + b.Path + " (btrfs subvolume; --cross-subvolumes goes into it)"
			}
			if !strings.Contains(out, want+", kept as an empty directory\n") {
				t.Errorf("%s: the summary does not say %q:\n%s", c.name, want, out)
			}
		}
	}
}
