package diskimage

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/rewind-backup/rewind/internal/testutil"
)

// golden reads testdata/ext4-1k.img.gz: a 512 KiB ext4 with 1 KiB blocks
// and one 100,000-byte file, made by mkfs.ext4 and debugfs, whose
// dumpe2fs reported 384 free blocks of 512.
func golden(t testing.TB) []byte {
	f, err := os.Open("testdata/ext4-1k.img.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestExt4AllocationGolden(t *testing.T) {
	img := golden(t)
	a, err := Ext4Allocation(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	if a.BlockSize != 1024 || a.Blocks != 512 {
		t.Fatalf("block size %d, blocks %d; want 1024, 512", a.BlockSize, a.Blocks)
	}
	if got, want := a.UsedBytes(), int64(512-384)*1024; got != want {
		t.Errorf("used %d bytes, want %d (dumpe2fs: 384 of 512 blocks free)", got, want)
	}
	// Every free block reads as zeros or as what mkfs left: the file's
	// bytes ("rewind\n" repeated) are all in used blocks.
	for b := range a.Blocks {
		if !a.InUse(b) && bytes.Contains(img[b*1024:(b+1)*1024], []byte("rewind\n")) {
			t.Errorf("block %d holds the file's data but counts as free", b)
		}
	}
}

func TestExt4AllocationNotExt4(t *testing.T) {
	img := make([]byte, 8192)
	if _, err := Ext4Allocation(bytes.NewReader(img), int64(len(img))); !errors.Is(err, ErrNotExt4) {
		t.Fatalf("zeros: err %v, want ErrNotExt4", err)
	}
	if _, err := Ext4Allocation(bytes.NewReader(img[:100]), 100); !errors.Is(err, ErrNotExt4) {
		t.Fatalf("short: err %v, want ErrNotExt4", err)
	}
}

// TestExt4AllocationMatchesDumpe2fs makes a 4 KiB-block ext4 of many
// groups, most never initialized, and compares the blocks found in use
// with the free count e2fsprogs reports.
func TestExt4AllocationMatchesDumpe2fs(t *testing.T) {
	mkfs := testutil.RequireTool(t, "mkfs.ext4")
	dumpe2fs := testutil.RequireTool(t, "dumpe2fs")
	debugfs := testutil.RequireTool(t, "debugfs")
	dir := t.TempDir()
	img := filepath.Join(dir, "fs.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	const size = 1 << 30
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	runOK(t, mkfs, "-q", "-F", "-b", "4096", "-E", "nodiscard", img)
	data := filepath.Join(dir, "data")
	if err := os.WriteFile(data, bytes.Repeat([]byte("block data "), 300_000), 0o600); err != nil {
		t.Fatal(err)
	}
	runOK(t, debugfs, "-w", "-R", "write "+data+" data", img)
	out := runOK(t, dumpe2fs, "-h", img)
	m := regexp.MustCompile(`(?m)^Free blocks:\s+(\d+)`).FindStringSubmatch(out)
	n := regexp.MustCompile(`(?m)^Block count:\s+(\d+)`).FindStringSubmatch(out)
	if m == nil || n == nil {
		t.Fatalf("dumpe2fs -h: no counts in:\n%s", out)
	}
	free, _ := strconv.ParseInt(m[1], 10, 64)
	total, _ := strconv.ParseInt(n[1], 10, 64)
	f, err = os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a, err := Ext4Allocation(f, size)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := a.UsedBytes(), (total-free)*4096; got != want {
		t.Errorf("used %d bytes, dumpe2fs says %d (%d of %d blocks free)", got, want, free, total)
	}
}

func runOK(t *testing.T, prog string, args ...string) string {
	t.Helper()
	out, err := exec.Command(prog, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", prog, args, err, out)
	}
	return string(out)
}

func TestRuns(t *testing.T) {
	a := newAllocation(100, 10)
	a.setRange(2, 3)
	a.set(7)
	got := a.Runs(150, 900)
	want := []Run{{200, 300}, {700, 100}, {1000, 50}}
	if len(got) != len(want) {
		t.Fatalf("runs %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("runs %v, want %v", got, want)
		}
	}
}

// FuzzExt4Allocation feeds corrupt images to the parser: it must return
// an error or an allocation, never panic or allocate without bound.
func FuzzExt4Allocation(f *testing.F) {
	img := golden(f)
	f.Add(img[:16384])
	f.Add(img[:2048])
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := Ext4Allocation(bytes.NewReader(b), int64(len(b)))
		if err == nil && a.Blocks*uint64(a.BlockSize) > uint64(len(b)) {
			t.Fatalf("%d blocks of %d bytes on %d bytes", a.Blocks, a.BlockSize, len(b))
		}
	})
}
