package main

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func allocated(t *testing.T, p string) int64 {
	t.Helper()
	info, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return info.Sys().(*syscall.Stat_t).Blocks * 512
}

// TestResyncUndoesMutation copies the smoke set, changes it the ways mkdata
// and the tools' restores can, and checks that resync brings back the same
// names, contents, holes and times, and that changedBytes counted the change.
func TestResyncUndoesMutation(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	pristine, work := filepath.Join(dir, "pristine"), filepath.Join(dir, "work")
	if err := makeSmoke(pristine); err != nil {
		t.Fatal(err)
	}
	if err := resync(ctx, pristine, work); err != nil { // first time: a copy
		t.Fatal(err)
	}
	if err := compareTrees(ctx, pristine, work); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(work, "disk.img")
	holes := allocated(t, img)
	if holes >= 16<<20 || holes != allocated(t, filepath.Join(pristine, "disk.img")) {
		t.Fatalf("copy of the sparse file allocates %d bytes, want what the original does", holes)
	}
	if n, err := changedBytes(pristine, work); err != nil || n != 0 {
		t.Fatalf("changedBytes of an exact copy = %d, %v; want 0", n, err)
	}

	// The change: 100 bytes appended, a new 5,000-byte file, 64 KiB written
	// into a hole, 10 bytes overwritten, a file removed, a symlink retargeted.
	appendTo := filepath.Join(work, "site", "d01", "sub0", "f027.txt")
	f, err := os.OpenFile(appendTo, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.WriteFile(filepath.Join(work, "site", "d02", "new.txt"), make([]byte, 5000), 0o644); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	if err := writeAt(img, 8<<20, randomBytes(r, 64<<10)); err != nil {
		t.Fatal(err)
	}
	if err := writeAt(filepath.Join(work, "media", "blob.bin"), 1000, randomBytes(r, 10)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(work, "site", "d03", "sub2", "f077.txt")); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(work, "link")
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("elsewhere", link); err != nil {
		t.Fatal(err)
	}

	n, err := changedBytes(pristine, work)
	if err != nil {
		t.Fatal(err)
	}
	// Random bytes can equal the old ones by chance: allow a few.
	if want := int64(100 + 5000 + 64<<10 + 10); n > want || n < want-600 {
		t.Errorf("changedBytes = %d, want about %d", n, want)
	}
	if err := compareTrees(ctx, pristine, work); err == nil {
		t.Fatal("compareTrees found no difference after the change")
	}

	if err := resync(ctx, pristine, work); err != nil {
		t.Fatal(err)
	}
	if err := compareTrees(ctx, pristine, work); err != nil {
		t.Fatal(err)
	}
	if n, err := changedBytes(pristine, work); err != nil || n != 0 {
		t.Fatalf("changedBytes after resync = %d, %v; want 0", n, err)
	}
	if got := allocated(t, img); got != holes {
		t.Errorf("after resync the sparse file allocates %d bytes, want %d", got, holes)
	}
	pi, _ := os.Lstat(filepath.Join(pristine, "site", "d02"))
	wi, _ := os.Lstat(filepath.Join(work, "site", "d02"))
	if !pi.ModTime().Equal(wi.ModTime()) {
		t.Errorf("folder time %v after resync, want %v", wi.ModTime(), pi.ModTime())
	}
}

// TestLimitRows runs the machine-limit operations on the smoke set.
func TestLimitRows(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := makeSmoke(src); err != nil {
		t.Fatal(err)
	}
	n, err := readTree(ctx, src, 2)
	if err != nil {
		t.Fatal(err)
	}
	// The sparse file holds 3 × 256 KiB of data in 16 MiB: read only that.
	if n >= 16<<20 || n < 3*256<<10 {
		t.Errorf("readTree read %d bytes; want the data without the holes", n)
	}
	entries, err := walkTree(src)
	if err != nil || entries < 300 {
		t.Errorf("walkTree = %d, %v; want over 300 entries", entries, err)
	}
	dst := filepath.Join(dir, "dst")
	if err := copyTree(ctx, src, dst, 2); err != nil {
		t.Fatal(err)
	}
	if err := compareTrees(ctx, src, dst); err != nil {
		t.Fatal(err)
	}
	du, err := diskUsage(dst)
	if err != nil || du < n {
		t.Errorf("diskUsage = %d, %v; want at least the %d bytes of data", du, err, n)
	}
	if err := runLimit(ctx, "copy", src, ""); err == nil {
		t.Error("-limit copy without -dst worked")
	}
}

func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func writeAt(p string, off int64, b []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(b, off); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
