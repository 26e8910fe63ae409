package fs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rewind-backup/rewind/internal/tree"
)

// xattrDir returns a temporary directory on a filesystem with user
// extended attributes, or skips.
func xattrDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if !xattrsSupported(t, dir) {
		t.Skip("no user xattrs on the temporary directory's filesystem")
	}
	return dir
}

func TestReadXattrsNone(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	must(t, os.WriteFile(p, nil, 0o644))
	xs, err := ReadXattrs(p)
	if err != nil || xs != nil {
		t.Fatalf("ReadXattrs = %v, %v; want nil, nil", xs, err)
	}
	// The hot path of an unchanged backup: one llistxattr into a stack
	// buffer, and only the path's C string allocated.
	if n := testing.AllocsPerRun(100, func() { ReadXattrs(p) }); n > 1 {
		t.Errorf("ReadXattrs of a file without attributes: %v allocations, want at most 1", n)
	}
	if _, err := ReadXattrs(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("ReadXattrs of a missing file: no error")
	}
}

// TestReadXattrsLarge reads more names than the first list buffer holds
// and values larger than the value buffer, so both grow.
func TestReadXattrsLarge(t *testing.T) {
	p := filepath.Join(xattrDir(t), "f")
	must(t, os.WriteFile(p, nil, 0o644))
	var want []tree.Xattr
	for i := range 40 {
		want = append(want, tree.Xattr{
			Name:  fmt.Sprintf("user.%s-%03d", strings.Repeat("n", 30), i),
			Value: []byte{byte(i), 0, byte(i)},
		})
	}
	want[7].Value = bytes.Repeat([]byte{7}, 3*valueBufSize/2)
	want[8].Value = []byte{}
	for _, x := range slices.Backward(want) { // out of order
		must(t, unix.Lsetxattr(p, x.Name, x.Value, 0))
	}
	if n, _ := unix.Llistxattr(p, nil); n <= listBufSize {
		t.Fatalf("attribute list is %d bytes, want more than %d", n, listBufSize)
	}
	got, err := ReadXattrs(p)
	must(t, err)
	if !xattrsEqual(got, want) {
		t.Errorf("ReadXattrs = %v\nwant %v", got, want)
	}
	f, err := os.Open(p)
	must(t, err)
	defer f.Close()
	got, err = ReadXattrsFd(int(f.Fd()))
	must(t, err)
	if !xattrsEqual(got, want) {
		t.Errorf("ReadXattrsFd = %v\nwant %v", got, want)
	}
}

func TestReadXattrsDoesNotFollow(t *testing.T) {
	dir := xattrDir(t)
	target := filepath.Join(dir, "target")
	must(t, os.WriteFile(target, nil, 0o644))
	must(t, unix.Lsetxattr(target, "user.x", []byte("v"), 0))
	link := filepath.Join(dir, "link")
	must(t, os.Symlink(target, link))
	xs, err := ReadXattrs(link)
	must(t, err)
	if slices.ContainsFunc(xs, func(x tree.Xattr) bool { return x.Name == "user.x" }) {
		t.Errorf("ReadXattrs followed the symlink: %v", xs)
	}
}

// TestReadXattrsRace reads attributes while another goroutine adds,
// grows and removes them: every read must succeed and be consistent.
func TestReadXattrsRace(t *testing.T) {
	p := filepath.Join(xattrDir(t), "f")
	must(t, os.WriteFile(p, nil, 0o644))
	value := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 100*(i+1)) }
	name := func(i int) string { return fmt.Sprintf("user.racing-attribute-%s-%02d", strings.Repeat("r", 40), i) }

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i = (i + 1) % 20 {
			select {
			case <-stop:
				return
			default:
			}
			unix.Lsetxattr(p, name(i), value(i), 0)
			if i%3 == 0 {
				unix.Lremovexattr(p, name((i+10)%20))
			}
		}
	})
	defer wg.Wait()
	defer close(stop)

	for range 3000 {
		xs, err := ReadXattrs(p)
		if err != nil {
			t.Fatalf("ReadXattrs while attributes change: %v", err)
		}
		if !slices.IsSortedFunc(xs, func(a, b tree.Xattr) int { return strings.Compare(a.Name, b.Name) }) {
			t.Fatalf("not sorted: %v", xs)
		}
		for _, x := range xs {
			var i int
			if _, err := fmt.Sscanf(x.Name[len(x.Name)-2:], "%d", &i); err != nil || !bytes.Equal(x.Value, value(i)) {
				t.Fatalf("%s: value of %d bytes does not match", x.Name, len(x.Value))
			}
		}
	}
}
