package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/spf13/cobra"
)

// readOnlyCommands may run with --no-lock: they never write to the
// repository, so they can read one that is read-only to them.
var readOnlyCommands = []string{"restore", "dump", "ls", "find", "diff", "cat", "snapshots", "check", "versions", "stats", "inventory show", "inventory diff", "pg wal-fetch", "pg wal-list"}

// commandName is the command's path without the program name, e.g.
// "repair index".
func commandName(cmd *cobra.Command) string {
	name := cmd.CommandPath()
	if i := strings.IndexByte(name, ' '); i >= 0 {
		return name[i+1:]
	}
	return name
}

// checkNoLock refuses --no-lock for a command that writes.
func (g *globals) checkNoLock(cmd *cobra.Command) error {
	if !g.noLock || slices.Contains(readOnlyCommands, commandName(cmd)) {
		return nil
	}
	return fmt.Errorf("--no-lock is only accepted by commands that only read (%s), not by %s",
		strings.Join(readOnlyCommands, ", "), commandName(cmd))
}

// takeLock locks r with a lock of kind for command, waiting up to
// --retry-lock for a conflicting lock to go. With --no-lock (read-only
// commands only) it takes none and returns nil.
func (g *globals) takeLock(ctx context.Context, r *repository.Repository, kind lock.Kind, command string) (*lock.Lock, error) {
	if g.noLock {
		if kind != lock.Shared || !slices.Contains(readOnlyCommands, command) {
			return nil, fmt.Errorf("--no-lock: %s writes to the repository and cannot run without a lock", command)
		}
		g.log.Info("not locking the repository (--no-lock)", "command", command)
		return nil, nil
	}
	lk, err := lock.Acquire(ctx, r, kind, lock.Options{
		Command:  command,
		RetryFor: g.retryLock,
		Logger:   g.log,
		OnWait: func(h lock.Info) {
			g.ui.Infof("repository is locked by %s (%s lock, PID %d on host %s); waiting up to %s for it (--retry-lock)\n",
				h.Command, h.Kind, h.PID, h.Host, g.retryLock)
		},
	})
	switch {
	case err == nil:
		return lk, nil
	case errors.Is(err, lock.ErrLocked):
		return nil, err
	case errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS):
		return nil, fmt.Errorf("lock the repository: %w (a read-only repository can be read with --no-lock)", err)
	}
	return nil, fmt.Errorf("lock the repository: %w", err)
}

// releaseLock releases lk (nil: nothing to do), even when ctx was
// cancelled: a lock file left behind would be in others' way until it is
// stale.
func (g *globals) releaseLock(ctx context.Context, lk *lock.Lock) {
	if lk == nil {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := lk.Release(rctx); err != nil {
		g.log.Warn("could not remove the repository lock; it will be ignored once it is stale", "lock", lk.ID(), "err", err)
	}
}

// lockRepo locks r for command, right after the repository was opened and
// before its index is read: prune relies on every holder having locked the
// repository before it read the index. release gives the lock back.
func (g *globals) lockRepo(ctx context.Context, r *repository.Repository, kind lock.Kind, command string) (release func(), err error) {
	lk, err := g.takeLock(ctx, r, kind, command)
	if err != nil {
		return nil, err
	}
	return func() { g.releaseLock(ctx, lk) }, nil
}

// lockedHint says what to do about a repository locked by someone else.
func lockedHint(err error) string {
	var le *lock.LockedError
	holder := "another rewind process"
	if errors.As(err, &le) {
		holder = fmt.Sprintf("`rewind %s` (PID %d on host %s)", le.Holder.Command, le.Holder.PID, le.Holder.Host)
	}
	return "The repository is in use by " + holder + ". Wait for it to finish, or retry with --retry-lock DURATION to wait for it.\n" +
		"Nothing needs unlocking by hand: a lock whose process has died is ignored at once on its own host, " +
		"and any lock that is no longer refreshed is ignored after " + lock.DefaultStaleAfter.String() + "."
}

// lockedCommit is the BeforeCommit of a backup holding lk: when the lock
// was lost meanwhile (prune may have begun), no snapshot is saved, and
// what was uploaded stays for the next backup to reuse.
func lockedCommit(lk *lock.Lock) func(context.Context) error {
	return func(context.Context) error {
		if err := lk.Check(); err != nil {
			return fmt.Errorf("snapshot not saved: %w; the data already uploaded is kept, and the next backup reuses it", err)
		}
		return nil
	}
}
