package lock

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/repository"
)

// maxPasses bounds the listings of one scan when files keep disappearing
// between being listed and being read.
const maxPasses = 8

// entry is one lock as found in locks/: the newest of its files, and all
// of them.
type entry struct {
	info  Info // from the file with the newest Refreshed time
	files []id.ID
}

// scan reads every lock file, at least twice over and again as long as a
// listed file disappeared before it could be read, and returns the locks
// seen in any pass, by lock ID. A holder refreshing meanwhile saves its new
// file before removing the old one, so one of the passes sees it.
func scan(ctx context.Context, r *repository.Repository, log *slog.Logger) (map[string]*entry, error) {
	locks := map[string]*entry{}
	read := map[id.ID]bool{} // files read or reported unreadable
	for pass := 1; ; pass++ {
		vanished, err := scanOnce(ctx, r, log, locks, read)
		if err != nil {
			return nil, err
		}
		if pass >= 2 && !vanished {
			return locks, nil
		}
		if pass == maxPasses {
			return nil, fmt.Errorf("list locks: lock files keep disappearing before they can be read")
		}
	}
}

// scanOnce lists locks/ once and adds the files not read yet to locks. It
// reports whether a listed file was gone when it was read.
func scanOnce(ctx context.Context, r *repository.Repository, log *slog.Logger, locks map[string]*entry, read map[id.ID]bool) (vanished bool, err error) {
	files, err := r.List(ctx, backend.LockFile)
	if err != nil {
		return false, err
	}
	for _, f := range files {
		if read[f] {
			continue
		}
		var info Info
		err := r.LoadJSON(ctx, backend.LockFile, f, &info)
		switch {
		case backend.IsNotExist(err):
			vanished = true
			continue
		case errors.Is(err, repository.ErrCorrupt):
			// Not a lock, but not ours to delete either.
			log.Warn("ignoring unreadable lock file; remove it by hand if it stays", "file", "locks/"+f.String(), "err", err)
			read[f] = true
			continue
		case err != nil:
			return false, err
		}
		read[f] = true
		info.File = f
		key := info.ID
		if key == "" {
			key = "file:" + f.String()
		}
		e := locks[key]
		if e == nil {
			locks[key] = &entry{info: info, files: []id.ID{f}}
			continue
		}
		e.files = append(e.files, f)
		if info.Refreshed.After(e.info.Refreshed) {
			e.info = info
		}
	}
	return vanished, nil
}

// sorted returns the locks oldest first.
func sorted(locks map[string]*entry) []*entry {
	out := make([]*entry, 0, len(locks))
	for _, e := range locks {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *entry) int {
		return cmp.Or(a.info.Created.Compare(b.info.Created), cmp.Compare(a.info.ID, b.info.ID))
	})
	return out
}

// conflicting returns the oldest live lock, other than own, that conflicts
// with own, or nil.
func conflicting(locks map[string]*entry, own Info, now time.Time, staleAfter time.Duration) *Info {
	for _, e := range sorted(locks) {
		if e.info.ID == own.ID || !own.Kind.conflicts(e.info.Kind) || e.info.IsStale(now, staleAfter) {
			continue
		}
		h := e.info
		return &h
	}
	return nil
}

// removeStale removes the files of the stale locks among locks, except
// those of the lock own. Failures are logged: another process may have
// removed them first, and they stay stale anyway.
func removeStale(ctx context.Context, r *repository.Repository, locks map[string]*entry, own string, now time.Time, staleAfter time.Duration, log *slog.Logger) {
	for _, e := range sorted(locks) {
		if e.info.ID == own || !e.info.IsStale(now, staleAfter) {
			continue
		}
		removed := true
		for _, f := range e.files {
			if err := removeFile(ctx, r, f); err != nil {
				log.Warn("could not remove stale lock file", "file", "locks/"+f.String(), "err", err)
				removed = false
			}
		}
		if !removed {
			continue
		}
		log.Info("removed stale lock", "lock", e.info.ID, "kind", e.info.Kind, "command", e.info.Command,
			"host", e.info.Host, "pid", e.info.PID, "refreshed", e.info.Refreshed)
	}
}

// List returns the locks of r, one per lock ID (Info.File is the newest of
// its files), oldest first, split into live and stale ones as IsStale
// decides with staleAfter (0: DefaultStaleAfter). Unreadable lock files
// are left out and reported with slog's default logger.
func List(ctx context.Context, r *repository.Repository, staleAfter time.Duration) (live, stale []Info, err error) {
	if staleAfter <= 0 {
		staleAfter = DefaultStaleAfter
	}
	locks, err := scan(ctx, r, slog.Default())
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	for _, e := range sorted(locks) {
		if e.info.IsStale(now, staleAfter) {
			stale = append(stale, e.info)
		} else {
			live = append(live, e.info)
		}
	}
	return live, stale, nil
}
