// Package instant boots a device or image snapshot in QEMU straight from
// the repository (rewind instant, docs/IMAGES.md): the snapshot's image
// file is served by a private read-only FUSE mount (internal/mount), a
// qcow2 overlay in a state directory takes the guest's writes, and QEMU
// reads only the blocks the guest touches. Migrate copies the disk to a
// real device or file while the guest runs (QMP blockdev-mirror), after
// which the mount can go.
package instant

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/rewind-backup/rewind/internal/mount"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/ui"
)

// Exposed is an image snapshot served as one read-only file by a private
// FUSE mount.
type Exposed struct {
	// Dir is the mountpoint, File the image file in it.
	Dir, File string
	server    *fuse.Server
	unmounted bool
}

// FUSEReady says what is missing for a FUSE mount, and how to get it.
func FUSEReady() error {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("/dev/fuse is missing (%v): load the fuse module (modprobe fuse), or in a container pass --device /dev/fuse; install the fuse3 package for fusermount3", err)
	}
	if _, err := exec.LookPath("fusermount3"); err != nil {
		return errors.New("fusermount3 is not installed: install the fuse3 package (apt-get install fuse3)")
	}
	return nil
}

// Expose mounts the snapshot sn, which must be a device or image
// snapshot, in a new directory under parent and finds its image file.
// warn gets the mount's read failures. Unmount when done.
func Expose(ctx context.Context, r *repository.Repository, sn *snapshot.Snapshot, parent string, warn func(string)) (*Exposed, error) {
	if sn.Image == nil {
		return nil, NotImageError(sn)
	}
	if err := FUSEReady(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(parent, "rewind-instant-mnt-")
	if err != nil {
		return nil, err
	}
	root, _ := mount.New(context.WithoutCancel(ctx), r, mount.Options{
		Snapshots:  []*snapshot.Snapshot{sn},
		Host:       sn.Hostname,
		CacheBytes: 256 << 20,
		Warn:       warn,
	})
	ttl := time.Hour
	server, err := gofs.Mount(dir, root, &gofs.Options{
		EntryTimeout: &ttl,
		AttrTimeout:  &ttl,
		MountOptions: fuse.MountOptions{
			FsName:       "rewind",
			Name:         "rewind",
			Options:      []string{"ro"},
			MaxReadAhead: 1 << 20,
			MaxWrite:     1 << 20,
		},
	})
	if err != nil {
		os.Remove(dir)
		return nil, fmt.Errorf("mount the repository at %s: %w", dir, err)
	}
	e := &Exposed{Dir: dir, server: server}
	rel, ok := mount.ImagePath(sn)
	if !ok {
		e.Unmount()
		return nil, NotImageError(sn)
	}
	e.File = filepath.Join(dir, rel)
	if st, err := os.Stat(e.File); err != nil || st.Size() != sn.Image.Size {
		e.Unmount()
		if err == nil {
			err = fmt.Errorf("it has %d bytes, the snapshot says %d", st.Size(), sn.Image.Size)
		}
		return nil, fmt.Errorf("the image of snapshot %s in the mount: %w", sn.ID.Short(), err)
	}
	return e, nil
}

// Unmount unmounts the mount (lazily when a file in it is still open)
// and removes its directory.
func (e *Exposed) Unmount() error {
	if e.unmounted {
		return nil
	}
	e.unmounted = true
	err := e.server.Unmount()
	if err != nil {
		if out, lerr := exec.Command("fusermount3", "-u", "-z", e.Dir).CombinedOutput(); lerr != nil {
			return fmt.Errorf("unmount %s: %v; fusermount3 -u -z: %v: %s", e.Dir, err, lerr, out)
		}
	}
	e.server.Wait()
	os.Remove(e.Dir)
	return nil
}

// NotImageError is the refusal of a snapshot of paths.
func NotImageError(sn *snapshot.Snapshot) error {
	return fmt.Errorf("snapshot %s is not a device or image backup (it holds %s): instant and export take a snapshot made by backup --device or --image (rewind snapshots --tag image and --tag device list them)", sn.ID.Short(), ui.Count(int64(len(sn.Paths)), "path", "paths"))
}
