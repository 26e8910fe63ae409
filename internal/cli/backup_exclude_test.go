package cli

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestBackupExcludeFlags runs --exclude-if-present (with and without a
// content) and --exclude-larger-than through the binary: what the
// snapshot holds, the JSON count and list of files too large, and the
// text summary, which names them only with -v.
func TestBackupExcludeFlags(t *testing.T) {
	e := newRepo(t, 0)
	src := e.path("src")
	writeFiles(t, src, map[string][]byte{
		"keep/small":       []byte("s"),
		"keep/big.iso":     randomBytes(1, 3000),
		"marked/.nobackup": nil,
		"marked/big":       randomBytes(2, 5000),
		"tagged/.tag":      []byte("rewind-skip: yes"),
		"tagged/x":         []byte("x"),
		"untagged/.tag":    []byte("something else"),
		"untagged/y":       []byte("y"),
		"edge/two-k":       make([]byte, 2048),
	})
	args := []string{"backup", "--exclude-if-present", ".nobackup", "--exclude-if-present", ".tag:rewind-skip",
		"--exclude-larger-than", "2K", src}
	sum := checkBackupJSON(t, e.mustRun(append(args[:1:1], append([]string{"--json"}, args[1:]...)...)...))
	want := []string{"edge", "edge/two-k", "keep", "keep/small", "marked", "marked/.nobackup", "tagged", "tagged/.tag",
		"untagged", "untagged/.tag", "untagged/y"}
	for i := range want {
		want[i] = filepath.Join(src, want[i])
	}
	if got := snapshotPaths(t, e, sum.SnapshotID, src); !slices.Equal(got, want) {
		t.Errorf("snapshot holds\n%q\nwant\n%q", got, want)
	}
	// marked/big is inside a marked directory: left out, not too large.
	if sum.FilesTooLarge != 1 || len(sum.TooLarge) != 1 || sum.TooLarge[0] != (jsonLargeFile{filepath.Join(src, "keep/big.iso"), 3000}) {
		t.Errorf("files_too_large %d, too_large %v", sum.FilesTooLarge, sum.TooLarge)
	}
	quiet := e.mustRun(args...)
	if !strings.Contains(string(quiet.stdout), "Left out for size: 1 file, 2.93 KiB") || strings.Contains(string(quiet.stdout), "big.iso") {
		t.Errorf("summary without -v: %v", quiet)
	}
	loud := e.mustRun(append(args[:1:1], append([]string{"-v"}, args[1:]...)...)...)
	if !strings.Contains(string(loud.stdout), "too large: "+filepath.Join(src, "keep/big.iso")+" (2.93 KiB)\n") {
		t.Errorf("summary with -v does not name the file: %v", loud)
	}
	for _, bad := range [][]string{{"--exclude-larger-than", "10X"}, {"--exclude-if-present", "a/b"}} {
		r := e.expectCode(1, append(append([]string{"backup"}, bad...), src)...)
		if !strings.Contains(string(r.stderr), bad[1]) {
			t.Errorf("%v: error does not name the value: %v", bad, r)
		}
	}
}
