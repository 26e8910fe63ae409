package testutil

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPowerCutFS writes one file and syncs it, then writes another
// without syncing, and cuts the power: after the reboot the synced file
// is whole and the other one is gone.
func TestPowerCutFS(t *testing.T) {
	RequireRootOrCI(t)
	fs := NewPowerCutFS(t)
	synced := bytes.Repeat([]byte("durable "), 64<<10)
	write := func(name string, data []byte, sync bool) {
		f, err := os.Create(filepath.Join(fs.Dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(data); err != nil {
			t.Fatal(err)
		}
		if sync {
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			d, err := os.Open(fs.Dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Sync(); err != nil {
				t.Fatal(err)
			}
			d.Close()
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	write("synced", synced, true)
	write("unsynced", []byte("lost"), false)
	if err := fs.CutPower(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Create(filepath.Join(fs.Dir, "after")); !errors.Is(err, unix.EIO) {
		t.Errorf("create after the power cut: got %v, want EIO", err)
	}
	fsck := fs.Remount(t)
	t.Logf("e2fsck exit %d:\n%s", fsck.Code, fsck.Output)

	got, err := os.ReadFile(filepath.Join(fs.Dir, "synced"))
	if err != nil || !bytes.Equal(got, synced) {
		t.Errorf("synced file after the power cut: %d bytes, %v; want %d bytes", len(got), err, len(synced))
	}
	for _, name := range []string{"unsynced", "after"} {
		if _, err := os.Lstat(filepath.Join(fs.Dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: survived the power cut (%v)", name, err)
		}
	}
	// The filesystem works again.
	write("again", []byte("x"), true)
}
