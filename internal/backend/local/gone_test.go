package local_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/backend"
)

// TestRepositoryFolderGone removes the repository folder from under an
// open backend, as an unmounted backup disk does: saving a file fails with
// a message naming the folder, and the folder is not made again (files
// would land on the filesystem under the mount point).
func TestRepositoryFolderGone(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	be := create(t, dir)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []backend.FileType{backend.PackFile, backend.SnapshotFile, backend.LockFile} {
		data := []byte("content")
		h := backend.Handle{Type: typ, Name: hexName("ab")}
		err := be.Save(context.Background(), h, backend.NewByteReader(data))
		if err == nil || !strings.Contains(err.Error(), "no longer exists") || !backend.IsPermanent(err) {
			t.Errorf("save %v into a removed repository: %v, want a permanent error naming it", h, err)
		}
		if _, err := os.Lstat(dir); err == nil {
			t.Fatalf("saving %v made the removed repository folder %s again", h, dir)
		}
	}
}
