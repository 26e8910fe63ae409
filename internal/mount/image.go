package mount

import (
	"path"
	"strings"

	"github.com/rewind-backup/rewind/internal/snapshot"
)

// ImagePath returns where the image of a device or image snapshot
// (snapshot.ImageInfo) is in a mount, relative to its root:
// ids/SHORTID/PATH, PATH being the device or image file as backed up
// (/dev/vg0/root-snap, /var/lib/images/web1.img). The file has the
// image's size, reads at any offset and reports its holes to SEEK_HOLE.
// false: sn is no image snapshot.
func ImagePath(sn *snapshot.Snapshot) (string, bool) {
	if sn.Image == nil || len(sn.Paths) != 1 {
		return "", false
	}
	return path.Join("ids", sn.ID.Short(), strings.TrimPrefix(path.Clean("/"+sn.Paths[0]), "/")), true
}
