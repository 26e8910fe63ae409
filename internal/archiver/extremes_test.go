package archiver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/restorer"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
)

// The tests in this file cover the source-side extremes of issue 4 §7: a
// 1 TiB sparse file, a directory with 100,000 entries, paths at PATH_MAX
// and files appearing mid-backup. (A FIFO that never delivers data is
// TestFIFOWithoutWriter in badinput_test.go.)

// restoreInto restores the snapshot's folder at snapPath into target.
func restoreInto(t testing.TB, r *repository.Repository, sn *snapshot.Snapshot, snapPath, target string) (*restorer.Stats, error) {
	t.Helper()
	rs, err := restorer.New(r, restorer.Options{Target: target})
	must(t, err)
	return rs.Restore(context.Background(), sn, snapPath)
}

// TestSparseTiB backs up a 1 TiB file holding a few KiB of data at three
// offsets: the holes must be recorded without being read, and a restore
// must leave them holes.
func TestSparseTiB(t *testing.T) {
	const size = int64(1) << 40
	src := filepath.Join(t.TempDir(), "src")
	must(t, os.Mkdir(src, 0o755))
	p := filepath.Join(src, "huge")
	f, err := os.Create(p)
	must(t, err)
	if err := f.Truncate(size); err != nil {
		f.Close()
		t.Skipf("source filesystem refuses a 1 TiB sparse file: %v", err)
	}
	offsets := []int64{0, 3<<37 + 12345, size - 5000}
	pieces := map[int64][]byte{}
	for i, off := range offsets {
		b := randomBytes(uint64(i+1), 3000+1000*i)
		if _, err := f.WriteAt(b, off); err != nil {
			f.Close()
			t.Fatal(err)
		}
		pieces[off] = b
	}
	must(t, f.Close())

	r := newTestRepo(t, "")
	sn, _ := backupWithin(t, r, Options{}, src)
	if len(sn.Summary.Errors) != 0 {
		t.Fatalf("backup errors: %v", sn.Summary.Errors)
	}
	if got := sn.Summary.BytesRead; got > 4<<20 {
		t.Errorf("backup read %d bytes of a file with a few KiB of data: holes were read", got)
	}
	n := lookup(t, r, sn, p)
	if n.Type != tree.File || n.Size != uint64(size) {
		t.Fatalf("node is %v of %d bytes, want a file of %d", n.Type, n.Size, size)
	}
	if len(n.ContentLists) != 0 {
		t.Fatalf("a few data regions took %d content-list blobs", len(n.ContentLists))
	}
	var total, holes uint64
	for _, c := range n.Content {
		total += c.Size
		if c.IsHole() {
			holes += c.Size
		}
	}
	t.Logf("read %d bytes; %d chunks, %d bytes of holes", sn.Summary.BytesRead, len(n.Content), holes)
	if total != uint64(size) {
		t.Errorf("chunks cover %d bytes, want %d", total, size)
	}
	if data := total - holes; data > 1<<20 {
		t.Errorf("only %d of %d bytes are holes (%d data chunks bytes)", holes, total, data)
	}

	dst := filepath.Join(t.TempDir(), "dst")
	st, err := restoreInto(t, r, sn, src, dst)
	if err != nil {
		if errors.Is(err, unix.EFBIG) || errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EOPNOTSUPP) {
			t.Skipf("restore target refuses a 1 TiB sparse file: %v", err)
		}
		t.Fatalf("restore: %v", err)
	}
	if len(st.Errors) != 0 {
		t.Fatalf("restore errors: %v", st.Errors)
	}
	rp := filepath.Join(dst, "huge")
	var rst unix.Stat_t
	must(t, unix.Stat(rp, &rst))
	if rst.Size != size {
		t.Errorf("restored size %d, want %d", rst.Size, size)
	}
	if used := rst.Blocks * 512; used > 4<<20 {
		t.Errorf("restored file takes %d bytes on disk: holes were filled", used)
	}
	rf, err := os.Open(rp)
	must(t, err)
	defer rf.Close()
	for off, want := range pieces {
		got := make([]byte, len(want))
		if _, err := rf.ReadAt(got, off); err != nil {
			t.Fatalf("read restored file at %d: %v", off, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("restored bytes at %d differ", off)
		}
	}
	// Just around the data: zeros.
	zero := make([]byte, 512)
	if _, err := rf.ReadAt(zero, offsets[1]-512); err != nil {
		t.Fatal(err)
	}
	if !isZero(zero) {
		t.Errorf("restored hole before offset %d is not zeros", offsets[1])
	}
}

// TestHugeDirectory backs up a directory of 100,000 entries: its listing
// is cut into several tree blobs, and a second backup reads nothing.
func TestHugeDirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 100,000 files")
	}
	const entries = 100_000
	src := filepath.Join(t.TempDir(), "src")
	must(t, os.Mkdir(src, 0o755))
	dfd, err := unix.Open(src, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	must(t, err)
	for i := range entries {
		fd, err := unix.Openat(dfd, fmt.Sprintf("entry-%06d", i), unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
		if err != nil {
			unix.Close(dfd)
			t.Fatal(err)
		}
		unix.Close(fd)
	}
	unix.Close(dfd)
	withData := map[string][]byte{}
	for i := range 5 {
		name := fmt.Sprintf("data-%d", i)
		withData[name] = randomBytes(uint64(100+i), 1000+i*7000)
		writeFile(t, filepath.Join(src, name), withData[name])
	}

	r := newTestRepo(t, "")
	sn, _ := backupWithin(t, r, Options{}, src)
	if len(sn.Summary.Errors) != 0 {
		t.Fatalf("backup errors: %v", sn.Summary.Errors[:min(5, len(sn.Summary.Errors))])
	}
	dir := lookup(t, r, sn, src)
	if len(dir.Subtree) < 2 {
		t.Errorf("a listing of %d entries is %d tree blob(s), want several", entries+len(withData), len(dir.Subtree))
	}
	t.Logf("listing of %d entries in %d tree blobs", entries+len(withData), len(dir.Subtree))
	count := 0
	err = snapshot.EachNode(context.Background(), r, dir.Subtree, func(n *tree.Node) error {
		count++
		return nil
	})
	must(t, err)
	if want := entries + len(withData); count != want {
		t.Errorf("snapshot lists %d entries, want %d", count, want)
	}
	for name, want := range withData {
		if got := content(t, r, lookup(t, r, sn, filepath.Join(src, name))); !bytes.Equal(got, want) {
			t.Errorf("%s: content differs", name)
		}
	}
	last := lookup(t, r, sn, filepath.Join(src, fmt.Sprintf("entry-%06d", entries-1)))
	if last.Type != tree.File || last.Size != 0 {
		t.Errorf("last entry recorded as %v of %d bytes", last.Type, last.Size)
	}

	sn2, _ := backupWithin(t, r, Options{Parent: sn}, src)
	if len(sn2.Summary.Errors) != 0 {
		t.Fatalf("second backup errors: %v", sn2.Summary.Errors[:min(5, len(sn2.Summary.Errors))])
	}
	if got := sn2.Summary.BytesRead; got != 0 {
		t.Errorf("second backup of an unchanged directory read %d bytes", got)
	}
	if got := lookup(t, r, sn2, src).Subtree; !equalIDs(got, dir.Subtree) {
		t.Errorf("unchanged directory stored anew: %d blobs, was %d", len(got), len(dir.Subtree))
	}
}

func equalIDs[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestPathMax backs up a file whose absolute path is 4095 bytes, the most
// PATH_MAX (4096 with its NUL) allows, and restores it.
func TestPathMax(t *testing.T) {
	const pathMax = 4095
	src := filepath.Join(t.TempDir(), "s")
	must(t, os.Mkdir(src, 0o755))
	// Components of 200 bytes, then a file name taking the rest.
	var comps []string
	length := len(src)
	for i := 0; pathMax-length > 1+255; i++ {
		comps = append(comps, strings.Repeat(string(rune('a'+i%26)), 200))
		length += 1 + 200
	}
	fileName := strings.Repeat("f", pathMax-length-1)
	fd, err := unix.Open(src, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	must(t, err)
	for _, c := range comps {
		if err := unix.Mkdirat(fd, c, 0o755); err != nil {
			unix.Close(fd)
			t.Fatal(err)
		}
		next, err := unix.Openat(fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		must(t, err)
		fd = next
	}
	data := []byte("at the bottom of a very long path\n")
	ffd, err := unix.Openat(fd, fileName, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
	unix.Close(fd)
	must(t, err)
	_, err = unix.Write(ffd, data)
	unix.Close(ffd)
	must(t, err)
	deep := src + "/" + strings.Join(comps, "/") + "/" + fileName
	if len(deep) != pathMax {
		t.Fatalf("built a path of %d bytes, want %d", len(deep), pathMax)
	}

	r := newTestRepo(t, "")
	sn, _ := backupWithin(t, r, Options{}, src)
	if len(sn.Summary.Errors) != 0 {
		t.Fatalf("backup errors: %v", sn.Summary.Errors)
	}
	n := lookup(t, r, sn, deep)
	if n.Type != tree.File || !bytes.Equal(content(t, r, n), data) {
		t.Fatalf("deepest file recorded as %v with wrong content", n.Type)
	}

	dst := filepath.Join(t.TempDir(), "t")
	st, err := restoreInto(t, r, sn, src, dst)
	must(t, err)
	if len(st.Errors) != 0 {
		t.Fatalf("restore errors: %v", st.Errors)
	}
	// Walk down with openat: the restored path may pass PATH_MAX.
	fd, err = unix.Open(dst, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	must(t, err)
	for _, c := range comps {
		next, err := unix.Openat(fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			t.Fatalf("restored tree lacks a component: %v", err)
		}
		fd = next
	}
	ffd, err = unix.Openat(fd, fileName, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	unix.Close(fd)
	if err != nil {
		t.Fatalf("restored tree lacks the deepest file: %v", err)
	}
	f := os.NewFile(uintptr(ffd), fileName)
	defer f.Close()
	got := make([]byte, 2*len(data))
	k, _ := f.Read(got)
	if !bytes.Equal(got[:k], data) {
		t.Errorf("restored deepest file holds %q, want %q", got[:k], data)
	}
}

// TestAppearingEntry creates a file in a folder after the walker listed
// it: the backup succeeds without it, and the next backup picks it up.
func TestAppearingEntry(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	writeFile(t, filepath.Join(src, "old"), []byte("old"))
	writeFile(t, filepath.Join(src, "sub", "x"), []byte("x"))
	late := filepath.Join(src, "late")
	lateSub := filepath.Join(src, "sub", "late")
	afterList = func(dir string) {
		// The walker's goroutine: report with Error, not Fatal.
		switch dir {
		case src:
			if err := os.WriteFile(late, []byte("late content"), 0o644); err != nil {
				t.Error(err)
			}
			if err := os.Mkdir(filepath.Join(src, "latedir"), 0o755); err != nil {
				t.Error(err)
			}
		case filepath.Join(src, "sub"):
			if err := os.WriteFile(lateSub, []byte("late in sub"), 0o644); err != nil {
				t.Error(err)
			}
		}
	}
	defer func() { afterList = nil }()

	r := newTestRepo(t, "")
	sn, a := backupWithin(t, r, Options{}, src)
	afterList = nil
	if len(sn.Summary.Errors) != 0 || a.Vanished() != 0 {
		t.Errorf("backup errors %v, vanished %d", sn.Summary.Errors, a.Vanished())
	}
	var names []string
	err := snapshot.EachNode(context.Background(), r, lookup(t, r, sn, src).Subtree, func(n *tree.Node) error {
		names = append(names, n.Name)
		return nil
	})
	must(t, err)
	if want := []string{"old", "sub"}; !equalIDs(names, want) {
		t.Errorf("first snapshot lists %q, want %q", names, want)
	}
	if got := content(t, r, lookup(t, r, sn, filepath.Join(src, "old"))); string(got) != "old" {
		t.Errorf("old holds %q", got)
	}
	if _, err := snapshot.Lookup(context.Background(), r, sn, lateSub); err == nil {
		t.Errorf("first snapshot holds %s, created after its folder was listed", lateSub)
	}

	sn2, _ := backupWithin(t, r, Options{Parent: sn}, src)
	if len(sn2.Summary.Errors) != 0 {
		t.Errorf("second backup errors %v", sn2.Summary.Errors)
	}
	for p, want := range map[string]string{late: "late content", lateSub: "late in sub"} {
		if got := content(t, r, lookup(t, r, sn2, p)); string(got) != want {
			t.Errorf("second snapshot: %s holds %q, want %q", p, got, want)
		}
	}
	if n := lookup(t, r, sn2, filepath.Join(src, "latedir")); n.Type != tree.Dir {
		t.Errorf("second snapshot: latedir is %v", n.Type)
	}
}
