package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rewind-backup/rewind/internal/testutil"
)

// TestRestoreXattrNotKept restores, onto ext4, files backed up from XFS
// with an attribute too large for ext4: restore goes on, warns naming the
// file and attribute (on standard error, and in the --json summary), and
// exits 3; the other file and attributes come back.
func TestRestoreXattrNotKept(t *testing.T) {
	e := newRepo(t, 0)
	src := filepath.Join(testutil.XFS(t), "src")
	files := map[string][]byte{"big-attr": randomBytes(1, 5000), "fine": randomBytes(2, 7000)}
	writeFiles(t, src, files)
	if err := unix.Setxattr(filepath.Join(src, "big-attr"), "user.too-big-for-ext4", randomBytes(3, 12000), 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(filepath.Join(src, "big-attr"), "user.small", []byte("s"), 0); err != nil {
		t.Fatal(err)
	}
	e.mustRun("backup", src)
	mnt := testutil.Ext4(t)

	r := e.expectCode(3, "restore", "latest:"+src, "--target", filepath.Join(mnt, "text"))
	if !bytes.Contains(r.stderr, []byte("warning: ")) || !bytes.Contains(r.stderr, []byte("big-attr")) ||
		!bytes.Contains(r.stderr, []byte("user.too-big-for-ext4")) {
		t.Errorf("no warning naming the file and attribute: %v", r)
	}

	target := filepath.Join(mnt, "json")
	s := checkRestoreJSON(t, e.expectCode(3, "restore", "--json", "latest:"+src, "--target", target))
	if len(s.Errors) != 0 || len(s.Warnings) != 1 || !strings.HasSuffix(s.Warnings[0].Path, "/big-attr") ||
		!strings.Contains(s.Warnings[0].Error, "user.too-big-for-ext4") {
		t.Errorf("summary errors %v, warnings %v; want one warning for big-attr naming the attribute", s.Errors, s.Warnings)
	}
	if s.FilesRestored != 2 {
		t.Errorf("%d files restored, want 2", s.FilesRestored)
	}
	sameFiles(t, src, target)
	if v, err := getxattr(filepath.Join(target, "big-attr"), "user.small"); err != nil || v != "s" {
		t.Errorf("user.small: %q, %v", v, err)
	}
}

func getxattr(p, name string) (string, error) {
	buf := make([]byte, 1<<16)
	n, err := unix.Lgetxattr(p, name, buf)
	if err != nil {
		return "", &os.PathError{Op: "getxattr " + name, Path: p, Err: err}
	}
	return string(buf[:n]), nil
}
