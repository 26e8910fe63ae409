package mount

import (
	"context"
	"syscall"
	"testing"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/tree"
)

// TestLseekHoles: SEEK_DATA and SEEK_HOLE follow the chunk list, a file
// ending in data has its "hole" at the end, and offsets past it are ENXIO.
func TestLseekHoles(t *testing.T) {
	d := id.ID{1}
	n := &tree.Node{Type: tree.File, Size: 100, Content: []tree.Chunk{
		{Size: 10}, {ID: d, Size: 20}, {ID: d, Size: 20}, {Size: 30}, {ID: d, Size: 20},
	}}
	f := &file{leaf: leaf{m: &Mount{ctx: context.Background()}, meta: n}}
	for _, c := range []struct {
		off    uint64
		whence uint32
		want   uint64
		errno  syscall.Errno
	}{
		{0, seekData, 10, 0},
		{0, seekHole, 0, 0},
		{15, seekHole, 50, 0},
		{15, seekData, 15, 0},
		{55, seekData, 80, 0},
		{85, seekHole, 100, 0},
		{85, seekData, 85, 0},
		{100, seekData, 0, syscall.ENXIO},
		{100, seekHole, 0, syscall.ENXIO},
	} {
		got, errno := f.Lseek(context.Background(), nil, c.off, c.whence)
		if got != c.want || errno != c.errno {
			t.Errorf("lseek(%d, %d) = %d, %v; want %d, %v", c.off, c.whence, got, errno, c.want, c.errno)
		}
	}
}
