package fs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rewind-backup/rewind/internal/testutil"
	"github.com/rewind-backup/rewind/internal/tree"
)

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"", false},
		{".", false},
		{"..", false},
		{"/", false},
		{"a/b", false},
		{"../etc", false},
		{"dir/", false},
		{"/abs", false},
		{"a\x00b", false},
		{"\x00", false},
		{strings.Repeat("x", 256), false},
		{strings.Repeat("x", 255), true},
		{"a", true},
		{"...", true},
		{"..a", true},
		{".hidden", true},
		{"\xff\xfe", true},
		{"new\nline", true},
		{" ", true},
		{"\\", true},
		{"été", true},
	}
	for _, tt := range tests {
		err := ValidName(tt.name)
		if tt.ok && err != nil {
			t.Errorf("ValidName(%q) = %v, want nil", tt.name, err)
		}
		if !tt.ok && !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidName(%q) = %v, want ErrInvalidName", tt.name, err)
		}
	}
}

// escape sets up a restore target and, next to it, an outside directory
// holding a victim file that nothing done in the target may touch.
type escape struct {
	target, outside, victim string
	fd                      int // the target, open
}

func newEscape(t *testing.T) *escape {
	t.Helper()
	base := t.TempDir()
	e := &escape{
		target:  filepath.Join(base, "target"),
		outside: filepath.Join(base, "outside"),
	}
	e.victim = filepath.Join(e.outside, "victim")
	must(t, os.Mkdir(e.target, 0o755))
	must(t, os.Mkdir(e.outside, 0o755))
	must(t, os.WriteFile(e.victim, []byte("keep"), 0o644))
	var err error
	e.fd, err = OpenDir(e.target)
	must(t, err)
	t.Cleanup(func() { unix.Close(e.fd) })
	return e
}

// plant creates an entry in the target as a malicious snapshot would.
func (e *escape) symlink(t *testing.T, name, to string) {
	t.Helper()
	must(t, os.Symlink(to, filepath.Join(e.target, name)))
}

// checkOutside fails if anything outside the target changed.
func (e *escape) checkOutside(t *testing.T) {
	t.Helper()
	ents, err := os.ReadDir(e.outside)
	must(t, err)
	if len(ents) != 1 || ents[0].Name() != "victim" {
		var names []string
		for _, ent := range ents {
			names = append(names, ent.Name())
		}
		t.Errorf("outside holds %q, want only victim", names)
	}
	b, err := os.ReadFile(e.victim)
	must(t, err)
	if string(b) != "keep" {
		t.Errorf("victim content changed to %q", b)
	}
	var st unix.Stat_t
	must(t, unix.Lstat(e.victim, &st))
	if st.Mode&0o7777 != 0o644 || st.Nlink != 1 || int(st.Uid) != os.Geteuid() {
		t.Errorf("victim metadata changed: mode %#o, %d links, uid %d", st.Mode&0o7777, st.Nlink, st.Uid)
	}
	if xs, err := ReadXattrs(e.victim); err != nil || len(xs) != 0 {
		t.Errorf("victim xattrs: %v %v", xs, err)
	}
}

func TestCreateFileAtDoesNotFollow(t *testing.T) {
	e := newEscape(t)
	e.symlink(t, "abs", e.victim)
	e.symlink(t, "rel", "../outside/victim")
	e.symlink(t, "new", filepath.Join(e.outside, "new"))
	must(t, os.Link(e.victim, filepath.Join(e.target, "hard")))
	must(t, os.Mkdir(filepath.Join(e.target, "dir"), 0o755))

	for _, name := range []string{"abs", "rel", "new", "hard"} {
		if f, err := CreateFileAt(e.fd, name, false); !errors.Is(err, os.ErrExist) {
			t.Errorf("CreateFileAt(%q) without overwrite: %v, want ErrExist", name, err)
			if f != nil {
				f.Close()
			}
		}
	}
	if b, err := os.ReadFile(e.victim); err != nil || string(b) != "keep" {
		t.Errorf("victim: %q %v", b, err)
	}
	for _, name := range []string{"abs", "rel", "new", "hard"} {
		f, err := CreateFileAt(e.fd, name, true)
		must(t, err)
		_, err = f.WriteString("evil")
		must(t, err)
		must(t, f.Close())
		fi, err := os.Lstat(filepath.Join(e.target, name))
		if err != nil || !fi.Mode().IsRegular() || fi.Size() != 4 {
			t.Errorf("%q after overwrite: %v %v", name, fi, err)
		}
	}
	e.checkOutside(t)

	if _, err := CreateFileAt(e.fd, "dir", true); err == nil {
		t.Error("CreateFileAt replaced a directory")
	}
	if _, err := os.Stat(filepath.Join(e.target, "dir")); err != nil {
		t.Errorf("directory gone: %v", err)
	}
	for _, name := range []string{"../outside/x", "..", "/tmp/x"} {
		if _, err := CreateFileAt(e.fd, name, true); !errors.Is(err, ErrInvalidName) {
			t.Errorf("CreateFileAt(%q) = %v, want ErrInvalidName", name, err)
		}
	}
	e.checkOutside(t)
}

func TestMkdiratDoesNotFollow(t *testing.T) {
	e := newEscape(t)
	e.symlink(t, "to-outside", e.outside)
	e.symlink(t, "dangling", filepath.Join(e.outside, "newdir"))
	must(t, os.WriteFile(filepath.Join(e.target, "file"), nil, 0o644))
	must(t, os.Mkdir(filepath.Join(e.target, "real"), 0o755))

	for _, name := range []string{"to-outside", "dangling", "file"} {
		if err := Mkdirat(e.fd, name, 0o700); !errors.Is(err, os.ErrExist) {
			t.Errorf("Mkdirat(%q) = %v, want ErrExist", name, err)
		}
	}
	if err := Mkdirat(e.fd, "real", 0o700); err != nil {
		t.Errorf("Mkdirat on an existing directory: %v", err)
	}
	if err := Mkdirat(e.fd, "../outside/newdir", 0o700); !errors.Is(err, ErrInvalidName) {
		t.Errorf("Mkdirat with a slash: %v", err)
	}
	for _, name := range []string{"to-outside", "dangling", "file"} {
		if fd, err := OpenDirAt(e.fd, name); err == nil {
			unix.Close(fd)
			t.Errorf("OpenDirAt(%q) opened it", name)
		}
	}
	if _, err := OpenDirAt(e.fd, ".."); !errors.Is(err, ErrInvalidName) {
		t.Errorf("OpenDirAt(..) = %v", err)
	}
	fd, err := OpenDirAt(e.fd, "real")
	must(t, err)
	unix.Close(fd)
	e.checkOutside(t)
}

// TestApplyMetaDoesNotFollow applies a file's and a directory's metadata
// to a name that turns out to be a symlink to the outside, as a snapshot
// listing a symlink and then a file under the same name could make happen.
func TestApplyMetaDoesNotFollow(t *testing.T) {
	e := newEscape(t)
	e.symlink(t, "link", e.victim)
	for _, typ := range []tree.Type{tree.File, tree.Dir, tree.FIFO} {
		n := &tree.Node{Type: typ, Mode: 0o4777, UID: 1234, GID: 1234, MTime: 1, ATime: 1,
			Xattrs: []tree.Xattr{{Name: "user.evil", Value: []byte("x")}}}
		if err := ApplyMeta(e.fd, "link", n, ApplyOptions{Owner: testutil.IsRoot()}); err == nil {
			t.Errorf("%v metadata on a symlink: no error", typ)
		}
		e.checkOutside(t)
	}
	var st unix.Stat_t
	must(t, unix.Stat(e.victim, &st))
	if st.Mtim.Nano() == 1 {
		t.Error("victim times changed")
	}
}

func TestLinkAtDoesNotFollow(t *testing.T) {
	e := newEscape(t)
	e.symlink(t, "link", e.victim)
	must(t, LinkAt(e.fd, "link", e.fd, "link2"))
	fi, err := os.Lstat(filepath.Join(e.target, "link2"))
	if err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("hard link to a symlink is not a symlink: %v %v", fi, err)
	}
	if err := LinkAt(e.fd, "../outside/victim", e.fd, "x"); !errors.Is(err, ErrInvalidName) {
		t.Errorf("LinkAt from outside: %v", err)
	}
	if err := LinkAt(e.fd, "link", e.fd, "../outside/x"); !errors.Is(err, ErrInvalidName) {
		t.Errorf("LinkAt to outside: %v", err)
	}
	e.checkOutside(t)
}

func TestSymlinkAtMknodAtNames(t *testing.T) {
	e := newEscape(t)
	if err := SymlinkAt("x", e.fd, "../outside/s"); !errors.Is(err, ErrInvalidName) {
		t.Errorf("SymlinkAt: %v", err)
	}
	if err := MknodAt(e.fd, "../outside/f", &tree.Node{Type: tree.FIFO}); !errors.Is(err, ErrInvalidName) {
		t.Errorf("MknodAt: %v", err)
	}
	if err := ApplyMeta(e.fd, "..", &tree.Node{Type: tree.Dir, Mode: 0o777}, ApplyOptions{}); !errors.Is(err, ErrInvalidName) {
		t.Errorf("ApplyMeta(..): %v", err)
	}
	e.symlink(t, "taken", e.victim)
	if err := SymlinkAt("x", e.fd, "taken"); !errors.Is(err, os.ErrExist) {
		t.Errorf("SymlinkAt over a symlink: %v", err)
	}
	if err := MknodAt(e.fd, "taken", &tree.Node{Type: tree.FIFO}); !errors.Is(err, os.ErrExist) {
		t.Errorf("MknodAt over a symlink: %v", err)
	}
	for _, n := range []*tree.Node{{Type: tree.Socket}, {Type: tree.File}, {Type: tree.CharDev, Rdev: 1 << 40}} {
		if err := MknodAt(e.fd, "x", n); err == nil {
			t.Errorf("MknodAt(%v, rdev %#x): no error", n.Type, n.Rdev)
		}
	}
	if err := MknodAt(e.fd, "s", &tree.Node{Type: tree.Socket}); !errors.Is(err, ErrUnsupportedType) {
		t.Errorf("MknodAt(socket) = %v, want ErrUnsupportedType", err)
	}
	e.checkOutside(t)
}
