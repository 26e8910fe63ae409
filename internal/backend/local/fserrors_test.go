package local_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rewind-backup/rewind/internal/backend"
)

// mountTmpfs mounts a tmpfs of size bytes for the test, or skips the test
// where mounting is not allowed.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// TestDiskFull fills a small tmpfs: Save must fail permanently, say so, and
// leave no temporary file.
func TestDiskFull(t *testing.T) {
	dir := mountTmpfs(t, "1m")
	be := create(t, dir)
	defer be.Close()

	h := backend.Handle{Type: backend.PackFile, Name: hexName("ab")}
	err := be.Save(context.Background(), h, backend.NewByteReader(make([]byte, 4<<20)))
	switch {
	case err == nil:
		t.Fatal("Save of 4 MiB into 1 MiB succeeded")
	case !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "disk full"):
		t.Fatalf("Save: got %q, want a disk full error", err)
	case !backend.IsPermanent(err):
		t.Fatalf("Save: disk full error %q is not permanent", err)
	}
	if tmp := tempFiles(t, dir); len(tmp) > 0 {
		t.Fatalf("temporary files left: %v", tmp)
	}
	if _, err := be.Stat(context.Background(), h); !backend.IsNotExist(err) {
		t.Fatalf("Stat after a failed Save: got %v, want ErrNotExist", err)
	}
	// There is room for a small file still.
	save(t, be, h, "small")
}

// TestReadOnly remounts the repository's filesystem read-only: writes fail
// permanently, reads go on.
func TestReadOnly(t *testing.T) {
	dir := mountTmpfs(t, "4m")
	be := create(t, dir)
	defer be.Close()
	h := backend.Handle{Type: backend.SnapshotFile, Name: hexName("ab")}
	save(t, be, h, "snapshot")

	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		t.Skipf("cannot remount read-only: %v", err)
	}
	defer func() { _ = unix.Mount("tmpfs", dir, "tmpfs", unix.MS_REMOUNT, "") }()

	other := backend.Handle{Type: backend.SnapshotFile, Name: hexName("cd")}
	err := be.Save(context.Background(), other, backend.NewByteReader([]byte("x")))
	if err == nil || !backend.IsPermanent(err) {
		t.Fatalf("Save on a read-only filesystem: got %v, want a permanent error", err)
	}
	if err := be.Remove(context.Background(), h); err == nil || !backend.IsPermanent(err) {
		t.Fatalf("Remove on a read-only filesystem: got %v, want a permanent error", err)
	}
	if got := loadAll(t, be, h); got != "snapshot" {
		t.Fatalf("Load = %q", got)
	}
}
