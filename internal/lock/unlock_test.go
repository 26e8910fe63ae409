package lock_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/repository"
)

// TestRemove: unlock removes stale locks, every file of each (a lock that
// was refreshed leaves several), and leaves live ones; with all, it removes
// the live ones too.
func TestRemove(t *testing.T) {
	eachBackend(t, func(t *testing.T, r *repository.Repository) {
		ctx := context.Background()
		old := time.Now().Add(-2 * lock.DefaultStaleAfter).UTC().Format(time.RFC3339Nano)
		older := time.Now().Add(-3 * lock.DefaultStaleAfter).UTC().Format(time.RFC3339Nano)
		stale := newRawLock(lock.Exclusive, "otherhost").with("created", older, "refreshed", old)
		stale.save(t, r)
		stale.with("refreshed", older).save(t, r) // an earlier file of the same lock
		live := newRawLock(lock.Shared, "otherhost")
		live.save(t, r)
		held := acquire(t, r, lock.Shared, lock.Options{Command: "backup"})

		removed, err := lock.Remove(ctx, r, 0, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(removed) != 1 || removed[0].ID != stale.id() {
			t.Fatalf("removed %+v, want only the stale lock %s", removed, stale.id())
		}
		if n := len(lockFiles(t, r)); n != 2 {
			t.Fatalf("%d lock files left, want the live and the held lock's", n)
		}
		if err := held.Check(); err != nil {
			t.Fatalf("the held lock is no longer good after removing stale ones: %v", err)
		}

		removed, err = lock.Remove(ctx, r, 0, true)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, l := range removed {
			ids = append(ids, l.ID)
		}
		if !slices.Contains(ids, live.id()) || !slices.Contains(ids, held.ID()) || len(ids) != 2 {
			t.Fatalf("remove all: removed %v, want %s and %s", ids, live.id(), held.ID())
		}
		if n := len(lockFiles(t, r)); n != 0 {
			t.Fatalf("%d lock files left after removing all", n)
		}
	})
}
