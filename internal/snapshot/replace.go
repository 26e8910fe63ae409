package snapshot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/repository"
)

// Replacing a snapshot (`rewind tag`, `rewind rewrite --forget`) is the
// only way to change one, since snapshot files are immutable: the new
// snapshot is saved first, then the old one is removed. The repository
// thus holds at least one of the two at every moment, and never both once
// Replace has returned: when the old one cannot be removed (an S3 object
// lock, a permission), the new one is removed again and the error says so.
// The caller holds the lock forget takes (lock.Shared) and has checked
// the guard with Guard.Refuse before anything is written.

// GuardedError refuses a command that would remove snapshots the guard
// keeps. It names each one and why.
type GuardedError struct {
	// Action is what was refused, e.g. "forget" or "change the tags of";
	// Outcome what that left, e.g. "nothing was removed".
	Action, Outcome string
	Named           int
	Kept            []*Snapshot
	Reasons         [][]string
}

func (e *GuardedError) Error() string {
	var b strings.Builder
	named := fmt.Sprintf("the %d snapshots named", e.Named) // plural: one is said below
	if e.Named == 1 {
		named = "the snapshot named"
	}
	fmt.Fprintf(&b, "refusing to %s %d of %s; %s:", e.Action, len(e.Kept), named, e.Outcome)
	for i, sn := range e.Kept {
		fmt.Fprintf(&b, "\n  %-8s  %-19s  %s", sn.ID.Short(), sn.Time.Local().Format("2006-01-02 15:04:05"), strings.Join(e.Reasons[i], ", "))
	}
	b.WriteString("\nLift a legal hold with `rewind unprotect SNAPSHOT`; `rewind config` shows the minimum retention")
	return b.String()
}

// Refuse returns a *GuardedError when g keeps any of the snapshots named
// for removal, else nil.
func (g Guard) Refuse(named []*Snapshot, now time.Time, action, outcome string) error {
	e := &GuardedError{Action: action, Outcome: outcome, Named: len(named)}
	for _, sn := range named {
		if why := g.Reasons(sn, now); len(why) > 0 {
			e.Kept = append(e.Kept, sn)
			e.Reasons = append(e.Reasons, why)
		}
	}
	if len(e.Kept) == 0 {
		return nil
	}
	return e
}

// ErrReplace matches every *ReplaceError.
var ErrReplace = errors.New("snapshot not replaced")

// ReplaceError says that a replacement did not happen and what is left.
type ReplaceError struct {
	Old *Snapshot
	// NewLeft is the ID of the replacement when it was saved and could
	// not be removed again; "" otherwise.
	NewLeft string
	Err     error
}

func (e *ReplaceError) Error() string {
	if e.NewLeft != "" {
		return fmt.Sprintf("snapshot %s: %v; both it and its replacement %s are in the repository: remove one with `rewind forget`",
			e.Old.ID.Short(), e.Err, e.NewLeft)
	}
	return fmt.Sprintf("snapshot %s is unchanged: %v", e.Old.ID.Short(), e.Err)
}

func (e *ReplaceError) Unwrap() []error { return []error{ErrReplace, e.Err} }

// Replace saves sn, a changed copy of old, and then removes old. When old
// cannot be removed, sn is removed again and a *ReplaceError reports it;
// sn's ID is set only on success.
func Replace(ctx context.Context, r *repository.Repository, old, sn *Snapshot) error {
	if err := Save(ctx, r, sn); err != nil {
		return &ReplaceError{Old: old, Err: fmt.Errorf("save its replacement: %w", err)}
	}
	if sn.ID == old.ID {
		return nil // the same file: nothing to remove
	}
	oh := backend.Handle{Type: backend.SnapshotFile, Name: old.ID.String()}
	err := r.Backend().Remove(ctx, oh)
	if err == nil || backend.IsNotExist(err) {
		return nil
	}
	rmErr := fmt.Errorf("remove it: %w", err)
	nh := backend.Handle{Type: backend.SnapshotFile, Name: sn.ID.String()}
	if err2 := r.Backend().Remove(ctx, nh); err2 != nil && !backend.IsNotExist(err2) {
		left := sn.ID.String()
		sn.ID = id.ID{}
		return &ReplaceError{Old: old, NewLeft: left, Err: errors.Join(rmErr, fmt.Errorf("remove the replacement again: %w", err2))}
	}
	sn.ID = id.ID{}
	return &ReplaceError{Old: old, Err: fmt.Errorf("%w (its replacement was removed again)", rmErr)}
}
