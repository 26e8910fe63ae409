package lock_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/repository"
)

// TestBackupNotCommittedAfterLockLost runs the archiver with the lock check
// the CLI installs: a backup whose lock was lost stores no snapshot, keeps
// the data it uploaded, and the next backup reuses that data.
func TestBackupNotCommittedAfterLockLost(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "repo")
	be, err := local.Create(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	r := initRepo(t, be)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "data"), []byte(randomHex(200_000)), 0o644); err != nil {
		t.Fatal(err)
	}

	l := acquire(t, r, lock.Shared, lock.Options{Command: "backup", RefreshEvery: 10 * time.Millisecond})
	f := l.Info().File
	if err := r.Backend().Remove(ctx, backend.Handle{Type: backend.LockFile, Name: f.String()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the lock is lost", func() bool { return l.Check() != nil })
	a, err := archiver.New(r, archiver.Options{Hostname: "h", BeforeCommit: func(context.Context) error { return l.Check() }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Snapshot(ctx, []string{src}); !errors.Is(err, lock.ErrLost) {
		t.Fatalf("backup with a lost lock: %v, want ErrLost", err)
	}
	count := func(ft backend.FileType) int {
		ids, err := r.List(ctx, ft)
		if err != nil {
			t.Fatal(err)
		}
		return len(ids)
	}
	if n := count(backend.SnapshotFile); n != 0 {
		t.Fatalf("%d snapshots stored with a lost lock", n)
	}
	if count(backend.PackFile) == 0 || count(backend.IndexFile) == 0 {
		t.Fatal("the uploaded data was not kept")
	}

	// The next backup, in a new process's view of the repository, stores
	// nothing new.
	be2, err := local.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := repository.Open(ctx, be2, []byte(testPassword))
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	l2 := acquire(t, r2, lock.Shared, lock.Options{Command: "backup"})
	if err := r2.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	a2, err := archiver.New(r2, archiver.Options{Hostname: "h", BeforeCommit: func(context.Context) error { return l2.Check() }})
	if err != nil {
		t.Fatal(err)
	}
	sn, err := a2.Snapshot(ctx, []string{src})
	if err != nil {
		t.Fatal(err)
	}
	// Its directory listings may differ (access times); its file data
	// must not.
	if sn.Summary.DataBlobs != 0 {
		t.Fatalf("the next backup stored %d new data blobs, want the kept data reused", sn.Summary.DataBlobs)
	}
}
