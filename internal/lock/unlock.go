package lock

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/rewind-backup/rewind/internal/repository"
)

// Remove removes locks of r by hand (`rewind unlock`): the stale ones as
// IsStale decides with staleAfter (0: DefaultStaleAfter), and with all,
// the live ones too. A live lock belongs to a running process, and
// removing it lets commands that conflict with it run at the same time
// (a prune beside a backup): only the user can know that its holder is
// gone. Remove returns the locks whose every file it removed, oldest
// first; a lock it could not remove whole is in the returned error.
func Remove(ctx context.Context, r *repository.Repository, staleAfter time.Duration, all bool) ([]Info, error) {
	if staleAfter <= 0 {
		staleAfter = DefaultStaleAfter
	}
	locks, err := scan(ctx, r, slog.Default())
	if err != nil {
		return nil, err
	}
	now := time.Now()
	var removed []Info
	var errs []error
	for _, e := range sorted(locks) {
		if !all && !e.info.IsStale(now, staleAfter) {
			continue
		}
		ok := true
		for _, f := range e.files {
			if err := removeFile(ctx, r, f); err != nil {
				errs = append(errs, err)
				ok = false
			}
		}
		if ok {
			removed = append(removed, e.info)
		}
	}
	return removed, errors.Join(errs...)
}
