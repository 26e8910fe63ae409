package archiver

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/rewind-backup/rewind/internal/snapshot"
)

func imageBackup(t *testing.T, a *Archiver, p string, bs int64) *snapshot.Snapshot {
	t.Helper()
	sn, err := a.SnapshotImage(context.Background(), ImageOptions{Path: p, Kind: snapshot.ImageFile, BlockSize: bs})
	if err != nil {
		t.Fatal(err)
	}
	return sn
}

// TestImageBlocksAligned backs up an image file whose size is not a
// multiple of the block size, changes one byte, and backs it up again:
// every data chunk is one whole block at a block offset, zero blocks
// are merged holes, and only the changed block is new.
func TestImageBlocksAligned(t *testing.T) {
	r := newTestRepo(t, "")
	const bs = 64 << 10
	img := filepath.Join(t.TempDir(), "disk.img")
	data := make([]byte, 20*bs+1000)
	copy(data[0:], randomBytes(1, 3*bs))      // blocks 0-2
	copy(data[10*bs+5:], randomBytes(2, 100)) // block 10
	copy(data[20*bs:], randomBytes(3, 1000))  // the short last block
	if err := os.WriteFile(img, data, 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := New(r, Options{Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	first := imageBackup(t, a, img, bs)
	im := first.Image
	if im.Method != snapshot.MethodFull || im.Blocks != 21 || im.BlocksHole != 16 || im.BlocksChanged != 5 || im.BytesRead != int64(len(data)) {
		t.Fatalf("first: %+v", im)
	}
	n := lookup(t, r, first, img)
	var off uint64
	for _, c := range n.Content {
		switch {
		case c.IsHole():
			if off%bs != 0 || (c.Size%bs != 0 && off+c.Size != uint64(len(data))) {
				t.Errorf("hole at %d of %d bytes is not whole blocks", off, c.Size)
			}
		case off%bs != 0 || (c.Size != bs && off+c.Size != uint64(len(data))):
			t.Errorf("chunk at %d of %d bytes is not one aligned block", off, c.Size)
		}
		off += c.Size
	}
	if len(n.Content) != 7 { // 3 data, hole, data, hole, data
		t.Errorf("%d chunk entries, want 7 (holes merged): %v", len(n.Content), n.Content)
	}
	if got := content(t, r, n); !bytes.Equal(got, data) {
		t.Fatal("content differs")
	}

	data[10*bs+7] ^= 0xff
	if err := os.WriteFile(img, data, 0o600); err != nil {
		t.Fatal(err)
	}
	a, err = New(r, Options{Hostname: "h", Parent: first})
	if err != nil {
		t.Fatal(err)
	}
	second := imageBackup(t, a, img, bs)
	if second.Image.BlocksChanged != 1 || second.Summary.DataBlobs != 1 {
		t.Errorf("second: %d blocks changed, %d data blobs; want 1 and 1", second.Image.BlocksChanged, second.Summary.DataBlobs)
	}
	if second.Parent == nil || *second.Parent != first.ID {
		t.Errorf("second's parent: %v", second.Parent)
	}
	if got := content(t, r, lookup(t, r, second, img)); !bytes.Equal(got, data) {
		t.Fatal("second content differs")
	}
}
