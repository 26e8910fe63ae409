package diskimage

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/rewind-backup/rewind/internal/testutil"
)

// TestXFSAllocationMatchesXfsDB makes an XFS of 1 GiB holding a 30 MB
// file (mkfs.xfs -p, no mount needed) and compares the blocks found free
// with the free blocks xfs_db counts.
func TestXFSAllocationMatchesXfsDB(t *testing.T) {
	mkfs := testutil.RequireTool(t, "mkfs.xfs")
	xfsdb := testutil.RequireTool(t, "xfs_db")
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.WriteFile(data, bytes.Repeat([]byte("xfs data "), 3_000_000), 0o600); err != nil {
		t.Fatal(err)
	}
	proto := filepath.Join(dir, "proto")
	if err := os.WriteFile(proto, []byte("/dev/null\n0 0\nd--755 0 0\ndata ---644 0 0 "+data+"\n$\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "fs.img")
	const size = 1 << 30
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	runOK(t, mkfs, "-q", "-f", "-p", proto, img)
	out := runOK(t, xfsdb, "-r", "-c", "freesp -s", img)
	m := regexp.MustCompile(`total free blocks (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("xfs_db freesp: %s", out)
	}
	free, _ := strconv.ParseInt(m[1], 10, 64)
	// freesp counts the blocks on each group's free list (AGFL) as free;
	// the reader keeps them, as the free-space trees do not list them.
	for ag := 0; ; ag++ {
		out, err := exec.Command(xfsdb, "-r", "-c", "agf "+strconv.Itoa(ag), "-c", "print flcount", img).CombinedOutput()
		m := regexp.MustCompile(`flcount = (\d+)`).FindSubmatch(out)
		if err != nil || m == nil {
			if ag == 0 {
				t.Fatalf("xfs_db agf 0: %v: %s", err, out)
			}
			break
		}
		n, _ := strconv.ParseInt(string(m[1]), 10, 64)
		free -= n
	}
	f, err = os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a, err := XFSAllocation(f, size)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := a.UsedBytes(), (int64(a.Blocks)-free)*a.BlockSize; got != want {
		t.Errorf("used %d bytes; xfs_db counts %d free blocks of %d, so %d", got, free, a.Blocks, want)
	}
	// The file's bytes are all in blocks in use.
	img2, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	for b := range a.Blocks {
		if !a.InUse(b) && bytes.Contains(img2[int64(b)*a.BlockSize:int64(b+1)*a.BlockSize], []byte("xfs data ")) {
			t.Fatalf("block %d holds the file's data but counts as free", b)
		}
	}
	if _, err := Ext4Allocation(f, size); !errors.Is(err, ErrNotExt4) {
		t.Errorf("ext4 reader on XFS: %v, want ErrNotExt4", err)
	}
	if _, err := XFSAllocation(bytes.NewReader(golden(t)), 512<<10); !errors.Is(err, ErrNotXFS) {
		t.Errorf("XFS reader on ext4: %v, want ErrNotXFS", err)
	}
}

// FuzzXFSAllocation feeds corrupt images to the XFS reader: an error or
// an allocation, never a panic or a loop.
func FuzzXFSAllocation(f *testing.F) {
	f.Add(xfsSeed())
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := XFSAllocation(bytes.NewReader(b), int64(len(b)))
		if err == nil && a.Blocks*uint64(a.BlockSize) > uint64(len(b)) {
			t.Fatalf("%d blocks of %d bytes on %d bytes", a.Blocks, a.BlockSize, len(b))
		}
	})
}

// xfsSeed builds a tiny XFS-shaped image by hand: one AG of 16 blocks of
// 512 bytes, a v4 free-space leaf at block 2 listing blocks 4-15 free.
func xfsSeed() []byte {
	b := make([]byte, 16*512)
	be := func(off int, v uint64, n int) {
		for i := n - 1; i >= 0; i-- {
			b[off+i] = byte(v)
			v >>= 8
		}
	}
	be(0, xfsSBMagic, 4)
	be(4, 512, 4)
	be(8, 16, 8)
	be(84, 16, 4)
	be(88, 1, 4)
	be(100, 4, 2)
	be(102, 512, 2)
	agf := 512
	be(agf, xfsAGFMagic, 4)
	be(agf+16, 2, 4)
	be(agf+28, 1, 4)
	leaf := 2 * 512
	be(leaf, xfsBnoMagic, 4)
	be(leaf+6, 1, 2)
	be(leaf+16, 4, 4)
	be(leaf+20, 12, 4)
	return b
}

func TestXFSSeed(t *testing.T) {
	b := xfsSeed()
	a, err := XFSAllocation(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if got := a.UsedBytes(); got != 4*512 {
		t.Errorf("used %d bytes, want 4 blocks of 512", got)
	}
}
