package mount

import (
	"testing"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

func TestImagePath(t *testing.T) {
	i := id.ID{0x4f, 0x2a, 0x91, 0xc3, 7}
	img := &snapshot.Snapshot{ID: i, Paths: []string{"/var/lib/images/web1.img"}, Image: &snapshot.ImageInfo{Kind: snapshot.ImageFile}}
	if p, ok := ImagePath(img); !ok || p != "ids/"+i.Short()+"/var/lib/images/web1.img" {
		t.Errorf("ImagePath = %q, %v", p, ok)
	}
	files := &snapshot.Snapshot{ID: i, Paths: []string{"/etc"}}
	if p, ok := ImagePath(files); ok {
		t.Errorf("ImagePath of a snapshot of paths = %q", p)
	}
}
