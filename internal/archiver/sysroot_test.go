package archiver

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/testutil"
	"github.com/rewind-backup/rewind/internal/tree"
	"golang.org/x/sys/unix"
)

// TestSystemRoot backs up a system that is not running, mounted at a
// temporary directory with its /boot on another filesystem and a tmpfs
// on its /run: the snapshot holds the system's paths, goes into /boot
// (a device it is told to cross) and not into /run.
func TestSystemRoot(t *testing.T) {
	d := testutil.NewSystemDisk(t, testutil.SystemDiskOptions{Hostname: "cold-srv"})
	testutil.MountTmpfs(t, filepath.Join(d.Root, "run"))
	writeFile(t, filepath.Join(d.Root, "run", "lock"), []byte("this host's"))
	var boot unix.Stat_t
	if err := unix.Stat(filepath.Join(d.Root, "boot"), &boot); err != nil {
		t.Fatal(err)
	}
	r := newTestRepo(t, "")
	sn, a := backup(t, r, Options{SystemRoot: d.Root, CrossDevices: []uint64{boot.Dev}}, "/")
	if !slices.Equal(sn.Paths, []string{"/"}) {
		t.Fatalf("paths %q", sn.Paths)
	}
	if got := string(content(t, r, lookup(t, r, sn, "/etc/hostname"))); got != "cold-srv\n" {
		t.Errorf("/etc/hostname holds %q", got)
	}
	if got := string(content(t, r, lookup(t, r, sn, "/boot/grub/grub.cfg"))); got != "set default=0\n" {
		t.Errorf("/boot/grub/grub.cfg holds %q", got)
	}
	if _, err := snapshotLookup(r, sn, filepath.Join(d.Root, "etc/hostname")); err == nil {
		t.Errorf("the snapshot holds the host's path %s", d.Root)
	}
	if _, err := snapshotLookup(r, sn, "/run/lock"); err == nil {
		t.Error("the tmpfs on /run was backed up")
	}
	if nc := a.NotCrossed(); len(nc) != 1 || nc[0].Path != "/run" || nc[0].Kind != BoundaryMount {
		t.Errorf("not crossed: %+v", nc)
	}

	// Paths name the system's folders; without the device to cross,
	// /boot is a boundary.
	sn, a = backup(t, r, Options{SystemRoot: d.Root}, "/etc", "/boot")
	if !slices.Equal(sn.Paths, []string{"/boot", "/etc"}) {
		t.Fatalf("paths %q", sn.Paths)
	}
	lookup(t, r, sn, "/boot/grub/grub.cfg") // a target's own filesystem is walked
	sn, a = backup(t, r, Options{SystemRoot: d.Root}, "/")
	if _, err := snapshotLookup(r, sn, "/boot/grub"); err == nil {
		t.Error("/boot crossed without being named")
	}
	if nc := a.NotCrossed(); len(nc) != 2 {
		t.Errorf("not crossed: %+v", nc)
	}
}

func TestSystemRootChecks(t *testing.T) {
	r := newTestRepo(t, "")
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, opt := range []Options{
		{SystemRoot: filepath.Join(dir, "missing")},
		{SystemRoot: file},
		{SystemRoot: dir, ReadFrom: []ReadFrom{{Real: dir, Source: dir}}},
	} {
		if _, err := New(r, opt); err == nil {
			t.Errorf("New accepted %+v", opt)
		}
	}
}

// snapshotLookup finds p in sn, or fails.
func snapshotLookup(r *repository.Repository, sn *snapshot.Snapshot, p string) (*tree.Node, error) {
	return snapshot.Lookup(context.Background(), r, sn, p)
}
