package lock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/repository"
)

// Kind says what a lock allows others to do at the same time.
type Kind string

// The kinds of lock. See the package documentation for their conflicts.
const (
	// Shared is taken by commands that read the repository or add to it:
	// backup, restore, dump, check, forget, ls, find, diff, cat. Shared
	// locks coexist with each other and with a Prune lock.
	Shared Kind = "shared"
	// Prune is taken by prune: at most one live Prune lock at a time; it
	// coexists with Shared locks.
	Prune Kind = "prune"
	// Exclusive is taken by repair: nothing else may hold a live lock.
	Exclusive Kind = "exclusive"
)

// Defaults of Options.
const (
	DefaultRefreshEvery = 5 * time.Minute
	DefaultStaleAfter   = 30 * time.Minute
)

// Sentinel errors.
var (
	// ErrLocked is matched by *LockedError.
	ErrLocked = errors.New("repository is locked")
	// ErrLost is wrapped by Check's errors once a held lock can no longer
	// be trusted.
	ErrLost = errors.New("lock lost")
)

// known reports whether k is one of the kinds this version knows.
func (k Kind) known() bool { return k == Shared || k == Prune || k == Exclusive }

// effective returns k, or Exclusive for a kind this version does not know:
// a lock written by a newer rewind is respected as strictly as possible.
func (k Kind) effective() Kind {
	if k.known() {
		return k
	}
	return Exclusive
}

// conflicts reports whether a lock of kind k and one of kind o cannot be
// live at the same time.
func (k Kind) conflicts(o Kind) bool {
	k, o = k.effective(), o.effective()
	return k == Exclusive || o == Exclusive || k == Prune && o == Prune
}

// Info is what a lock file records. Its JSON form is the content of the
// file (docs/FORMAT.md, locks); File is where it was read from.
type Info struct {
	// ID is the lock's random ID, 32 hex digits, the same in every file
	// the lock writes as it is refreshed.
	ID string `json:"id"`
	// File is the name of the lock's newest file in locks/.
	File    id.ID  `json:"-"`
	Kind    Kind   `json:"kind"`
	Command string `json:"command"`
	Host    string `json:"host"`
	User    string `json:"user"`
	PID     int    `json:"pid"`
	// PIDStart is the start time of process PID, field 22 of
	// /proc/PID/stat (clock ticks since boot): a different value means
	// the PID was reused by another process.
	PIDStart uint64 `json:"pid_start"`
	// BootID is /proc/sys/kernel/random/boot_id of the holder's host.
	BootID string `json:"boot_id"`
	// PIDNamespace names the PID namespace of the holder (the target of
	// /proc/self/ns/pid): PIDs are only compared within one namespace.
	PIDNamespace string    `json:"pid_ns,omitempty"`
	Created      time.Time `json:"created"`
	Refreshed    time.Time `json:"refreshed"`
}

// LockedError says that a conflicting live lock is held.
type LockedError struct {
	Holder Info
	// StaleAfter is the age after which the holder's lock would be
	// ignored if it were no longer refreshed.
	StaleAfter time.Duration
}

func (e *LockedError) Error() string {
	h := e.Holder
	stale := e.StaleAfter
	if stale <= 0 {
		stale = DefaultStaleAfter
	}
	return fmt.Sprintf("%v: %s lock of %q held by PID %d on host %s (user %s) since %s; "+
		"stale locks are ignored automatically, as soon as the holder's process is gone or after %s without refresh",
		ErrLocked, h.Kind, h.Command, h.PID, h.Host, h.User,
		h.Created.Local().Format("2006-01-02 15:04:05 MST"), stale)
}

// Unwrap lets errors.Is match ErrLocked.
func (e *LockedError) Unwrap() error { return ErrLocked }

// Options tune Acquire. Zero values take the defaults.
type Options struct {
	// Command names what the holder does ("backup", "prune").
	Command string
	// RetryFor is how long a conflicting acquire keeps retrying before it
	// gives up with a *LockedError; 0 gives up at once.
	RetryFor time.Duration
	// RefreshEvery is the refresh interval (default 5 minutes). It must be
	// well below StaleAfter.
	RefreshEvery time.Duration
	// StaleAfter is the age after which a lock that was not refreshed is
	// stale (default 30 minutes).
	StaleAfter time.Duration
	// Logger receives warnings about unreadable lock files, failed
	// refreshes and removed stale locks; nil discards them.
	Logger *slog.Logger
	// OnWait, when set, is called once, when Acquire first finds a
	// conflicting lock and is going to retry.
	OnWait func(holder Info)
}

func (o Options) withDefaults() Options {
	if o.RefreshEvery <= 0 {
		o.RefreshEvery = DefaultRefreshEvery
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = DefaultStaleAfter
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// trustFor is how long a holder trusts its lock after its last successful
// refresh: the stale age less a safety margin of a sixth of it, which
// covers the clock differences between hosts and slow listings.
func trustFor(staleAfter time.Duration) time.Duration { return staleAfter - staleAfter/6 }

// Backoff of a conflicting Acquire that retries.
const (
	firstBackoff = 200 * time.Millisecond
	maxBackoff   = 10 * time.Second
)

// Lock is a held lock. Its methods are safe for concurrent use.
type Lock struct {
	id  string // the lock's ID, never changed
	r   *repository.Repository
	opt Options
	log *slog.Logger

	stop    context.CancelFunc // stops the refresher
	stopped chan struct{}      // closed when the refresher has returned

	releaseOnce sync.Once
	releaseErr  error

	mu        sync.Mutex
	info      Info      // mu; File is the newest file
	files     []id.ID   // mu; the lock's files not known to be removed, oldest first
	refreshed time.Time // mu; when the newest file's Refreshed was taken, with a monotonic reading
	lost      error     // mu; set once, never cleared
}

// Acquire takes a lock of kind on r, retrying for up to o.RetryFor while a
// conflicting live lock is held by someone else. It returns a *LockedError
// if the conflict remains. The lock is refreshed in the background until
// Release.
func Acquire(ctx context.Context, r *repository.Repository, kind Kind, o Options) (*Lock, error) {
	if !kind.known() {
		return nil, fmt.Errorf("lock: unknown kind %q", kind)
	}
	o = o.withDefaults()
	if o.RefreshEvery >= trustFor(o.StaleAfter) {
		return nil, fmt.Errorf("lock: refresh interval %s is not below %s, five sixths of the stale age %s", o.RefreshEvery, trustFor(o.StaleAfter), o.StaleAfter)
	}
	lockID, err := newLockID()
	if err != nil {
		return nil, err
	}
	me := self()
	info := Info{
		ID: lockID, Kind: kind, Command: o.Command,
		Host: me.host, User: me.user, PID: me.pid, PIDStart: me.pidStart,
		BootID: me.bootID, PIDNamespace: me.pidNS,
	}
	deadline := time.Now().Add(o.RetryFor)
	backoff := firstBackoff
	waited := false
	for {
		l, holder, err := try(ctx, r, info, o)
		if err != nil || l != nil {
			return l, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, &LockedError{Holder: *holder, StaleAfter: o.StaleAfter}
		}
		if !waited && o.OnWait != nil {
			o.OnWait(*holder)
		}
		waited = true
		o.Logger.Info("repository is locked, waiting", "holder", holder.ID, "kind", holder.Kind, "command", holder.Command, "host", holder.Host, "pid", holder.PID)
		// Jitter keeps two acquirers that backed off from each other
		// from meeting again at the next attempt.
		d := min(backoff/2+mrand.N(backoff/2+1), left)
		if err := sleep(ctx, d); err != nil {
			return nil, fmt.Errorf("wait for the repository lock held by %s (%s): %w", holder.Command, holder.Host, err)
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// try makes one attempt at taking the lock described by info. It returns
// the lock, or the holder of a conflicting lock.
func try(ctx context.Context, r *repository.Repository, info Info, o Options) (*Lock, *Info, error) {
	// Look before writing: an acquirer that waits should not put a file
	// in the way of others meanwhile.
	locks, err := scan(ctx, r, o.Logger)
	if err != nil {
		return nil, nil, err
	}
	if h := conflicting(locks, info, time.Now(), o.StaleAfter); h != nil {
		return nil, h, nil
	}
	now := time.Now()
	info.Created, info.Refreshed = now.UTC(), now.UTC()
	f, err := r.SaveJSON(ctx, backend.LockFile, info)
	if err != nil {
		return nil, nil, fmt.Errorf("save lock file: %w", err)
	}
	info.File = f
	removeOwn := func() {
		// Even when ctx was cancelled, a file left behind would stand in
		// the way of others until it is stale.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := removeFile(rctx, r, f); err != nil {
			o.Logger.Warn("could not remove own lock file after a failed attempt; it expires by itself", "file", f.String(), "err", err)
		}
	}
	locks, err = scan(ctx, r, o.Logger)
	if err != nil {
		removeOwn()
		return nil, nil, err
	}
	if h := conflicting(locks, info, time.Now(), o.StaleAfter); h != nil {
		removeOwn()
		return nil, h, nil
	}
	l := &Lock{id: info.ID, r: r, opt: o, log: o.Logger, info: info, files: []id.ID{f}, refreshed: now, stopped: make(chan struct{})}
	if info.Kind != Shared {
		removeStale(ctx, r, locks, info.ID, time.Now(), o.StaleAfter, o.Logger)
	}
	// The refresher belongs to the lock and ends with Release, not with
	// the context of the acquisition.
	rctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	l.stop = stop
	go l.refreshLoop(rctx)
	return l, nil, nil
}

// newLockID returns 16 random bytes in hex.
func newLockID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("lock ID: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func removeFile(ctx context.Context, r *repository.Repository, f id.ID) error {
	err := r.Backend().Remove(ctx, backend.Handle{Type: backend.LockFile, Name: f.String()})
	if backend.IsNotExist(err) {
		return nil
	}
	return err
}

// ID returns the lock's ID.
func (l *Lock) ID() string { return l.id }

// Info returns what the lock's newest file records.
func (l *Lock) Info() Info {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.info
}

// Check returns nil while the lock is certainly valid, and an error
// wrapping ErrLost once it may have been taken for stale by others, its
// file was removed by someone else, or it was released. It does no I/O.
func (l *Lock) Check() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.checkLocked(time.Now())
}

// checkLocked is Check at time now. l.mu must be held.
func (l *Lock) checkLocked(now time.Time) error {
	if l.lost != nil {
		return l.lost
	}
	if age := age(now, l.refreshed); age > trustFor(l.opt.StaleAfter) {
		l.lost = fmt.Errorf("%w: %s lock %s of %q was last refreshed %s ago, and other processes ignore it after %s",
			ErrLost, l.info.Kind, l.info.ID, l.info.Command, age.Round(time.Second), l.opt.StaleAfter)
	}
	return l.lost
}

// age returns how long ago then was, by the larger of the monotonic and the
// wall clock: the monotonic clock stops while the machine is suspended,
// the wall clock does not.
func age(now, then time.Time) time.Duration {
	return max(now.Sub(then), now.Round(0).Sub(then.Round(0)))
}

// setLost marks the lock lost with err unless it already is, and returns
// the error that marks it.
func (l *Lock) setLost(err error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost == nil {
		l.lost = err
	}
	return l.lost
}

// refreshLoop refreshes the lock until ctx is done or the lock is lost.
func (l *Lock) refreshLoop(ctx context.Context) {
	defer close(l.stopped)
	t := time.NewTimer(l.opt.RefreshEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := l.refresh(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, ErrLost):
			l.log.Error("repository lock lost", "lock", l.id, "err", err)
			return
		case err != nil:
			// Retry sooner than the interval: a few failures in a row
			// are survivable, as long as one refresh gets through
			// before the lock is lost.
			l.log.Warn("refresh repository lock", "lock", l.id, "err", err)
			t.Reset(max(l.opt.RefreshEvery/4, time.Millisecond))
		default:
			t.Reset(l.opt.RefreshEvery)
		}
	}
}

// refresh saves a new file for the lock, then removes the older ones.
func (l *Lock) refresh(ctx context.Context) error {
	l.mu.Lock()
	if err := l.checkLocked(time.Now()); err != nil {
		l.mu.Unlock()
		return err
	}
	info := l.info
	l.mu.Unlock()
	be := l.r.Backend()

	// A process that found the lock stale removed its file: the lock
	// must not come back to life with a new file.
	cur := backend.Handle{Type: backend.LockFile, Name: info.File.String()}
	if _, err := be.Stat(ctx, cur); backend.IsNotExist(err) {
		return l.setLost(fmt.Errorf("%w: lock file %s of %s lock %s was removed by another process", ErrLost, cur, info.Kind, info.ID))
	} else if err != nil {
		return fmt.Errorf("refresh lock %s: %w", info.ID, err)
	}

	now := time.Now()
	info.Refreshed = now.UTC()
	f, err := l.r.SaveJSON(ctx, backend.LockFile, info)
	if err != nil {
		return fmt.Errorf("refresh lock %s: %w", info.ID, err)
	}
	l.mu.Lock()
	// The new file only helps if others could see it before they may
	// have given up on the previous one.
	if err := l.checkLocked(time.Now()); err != nil {
		l.files = append(l.files, f)
		l.mu.Unlock()
		return err
	}
	old := l.files
	l.files = append(l.files[:len(l.files):len(l.files)], f)
	l.info.File, l.info.Refreshed = f, info.Refreshed
	l.refreshed = now
	l.mu.Unlock()

	kept := []id.ID{}
	var lost error
	for _, o := range old {
		err := be.Remove(ctx, backend.Handle{Type: backend.LockFile, Name: o.String()})
		switch {
		case err == nil:
		case backend.IsNotExist(err):
			if o == info.File {
				lost = fmt.Errorf("%w: lock file %s of %s lock %s was removed by another process", ErrLost, o, info.Kind, info.ID)
			}
		default:
			l.log.Warn("remove previous lock file", "lock", info.ID, "file", o.String(), "err", err)
			kept = append(kept, o)
		}
	}
	l.mu.Lock()
	l.files = append(kept, l.files[len(old):]...)
	l.mu.Unlock()
	if lost != nil {
		return l.setLost(lost)
	}
	return nil
}

// Release stops the refresher and removes the lock's files. It may be
// called more than once; later calls return the first call's result.
func (l *Lock) Release(ctx context.Context) error {
	l.releaseOnce.Do(func() {
		l.stop()
		<-l.stopped
		l.mu.Lock()
		files := l.files
		l.files = nil
		if l.lost == nil {
			l.lost = fmt.Errorf("%w: lock %s was released", ErrLost, l.id)
		}
		l.mu.Unlock()
		var errs []error
		for _, f := range files {
			if err := removeFile(ctx, l.r, f); err != nil {
				errs = append(errs, fmt.Errorf("release lock %s: %w", l.id, err))
			}
		}
		l.releaseErr = errors.Join(errs...)
	})
	return l.releaseErr
}
