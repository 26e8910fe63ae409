package snapshot_test

import (
	"context"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/backend/mem"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
)

// newRepo returns a repository in memory and its backend.
func newRepo(t testing.TB) (*repository.Repository, *mem.Backend) {
	t.Helper()
	be := mem.New()
	r, err := repository.Init(context.Background(), be, []byte("pw"), repository.InitOptions{KDF: crypto.TestKDFParams})
	if err != nil {
		t.Fatal(err)
	}
	return r, be
}

// rootTree stores an empty directory and returns its tree, for snapshots
// whose tree does not matter.
func rootTree(t testing.TB, r *repository.Repository) []id.ID {
	t.Helper()
	ctx := context.Background()
	r.StartWriting(ctx)
	b := tree.Builder{Emit: func(blob []byte) (id.ID, error) {
		i, _, err := r.SaveBlob(ctx, pack.TreeBlob, blob)
		return i, err
	}}
	ids, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return ids
}

// save stores a snapshot with the given fields and a time n seconds after
// a fixed moment.
func save(t testing.TB, r *repository.Repository, root []id.ID, n int, host string, paths []string, tags ...string) *snapshot.Snapshot {
	t.Helper()
	sn := &snapshot.Snapshot{
		Time:     time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Second),
		Tree:     root,
		Paths:    paths,
		Hostname: host,
		Tags:     tags,
	}
	if err := snapshot.Save(context.Background(), r, sn); err != nil {
		t.Fatal(err)
	}
	if sn.ID.IsNull() {
		t.Fatal("Save did not set the ID")
	}
	return sn
}
