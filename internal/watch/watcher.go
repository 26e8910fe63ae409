package watch

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"runtime/debug"
	"slices"
	"time"

	"github.com/rewind-backup/rewind/internal/snapshot"
)

// Defaults of Options.
const (
	DefaultInterval      = 2 * time.Second
	DefaultSettle        = time.Second
	DefaultQuiet         = 100 * time.Millisecond
	DefaultFullScanEvery = time.Hour
	maxRetry             = time.Minute
	statusEvery          = time.Second
)

// Committer captures a batch of changes into a snapshot.
type Committer interface {
	Commit(ctx context.Context, b Batch) (Result, error)
}

// Result is what a capture did.
type Result struct {
	// Snapshot is the snapshot saved, nil when nothing had changed.
	Snapshot *snapshot.Snapshot
	// Full is set when every root was walked (asked for, or needed).
	Full bool
}

// Capture describes one finished capture, for Options.OnCommit.
type Capture struct {
	Batch     Batch
	Result    Result
	Started   time.Time
	Committed time.Time
}

// Options configure a Watcher. Zero durations take the defaults.
type Options struct {
	// Roots are the absolute, clean paths watched and backed up.
	Roots   []string
	Backend string // auto, fanotify or inotify
	// Ignore are paths whose events are dropped (the repository, the
	// status file).
	Ignore []string
	// Interval is the shortest time between the starts of two captures.
	Interval time.Duration
	// Settle is how long a capture waits at most for files being written
	// to go quiet; Quiet is how long without a write counts as quiet.
	Settle time.Duration
	Quiet  time.Duration
	// NoSettle, when set, names files that need not go quiet: their
	// capture is consistent while they are written (a SQLite database
	// and its -wal or -journal, copied through SQLite's backup API).
	NoSettle func(path string) bool
	// FullScanEvery is the period of the safety-net full scan; negative
	// turns it off.
	FullScanEvery time.Duration
	Committer     Committer
	Logger        *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// OnCommit is called after each capture that saved a snapshot.
	OnCommit func(Capture)
	// OnStatus is called with the watcher's state when it changes, at
	// most about once a second while changes come in.
	OnStatus func(Status)
}

// Watcher turns change notifications into snapshots: it coalesces events
// into a Pending set, and at most once per Interval waits for written
// files to settle and hands the batch to its Committer.
type Watcher struct {
	opt Options
	log *slog.Logger
	st  Status
}

// New checks the options and fills in the defaults.
func New(opt Options) (*Watcher, error) {
	if len(opt.Roots) == 0 {
		return nil, errors.New("watch: no paths")
	}
	if opt.Committer == nil {
		return nil, errors.New("watch: no committer")
	}
	if opt.Interval <= 0 {
		opt.Interval = DefaultInterval
	}
	if opt.Settle < 0 {
		opt.Settle = 0
	}
	if opt.Quiet <= 0 {
		opt.Quiet = min(DefaultQuiet, opt.Settle)
	}
	if opt.FullScanEvery == 0 {
		opt.FullScanEvery = DefaultFullScanEvery
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	host, _ := os.Hostname()
	w := &Watcher{opt: opt, log: log}
	w.st = Status{Paths: opt.Roots, Host: host, PID: os.Getpid(), State: "running", Started: opt.Now().UTC()}
	return w, nil
}

// finished is what a capture goroutine reports.
type finished struct {
	Capture
	err error
}

// Run sets up the watches, captures the whole of the roots once, then
// captures changes until ctx is done. Then it finishes the capture under
// way, captures what is still pending, and returns nil; it returns an
// error only if watching failed, or the last capture did.
func (w *Watcher) Run(ctx context.Context) error {
	opt := w.opt
	src, err := Open(opt.Backend, opt.Roots, opt.Ignore, w.log)
	if err != nil {
		return err
	}
	defer src.Close()
	w.st.Backend = src.Name()
	w.log.Info("watching", "paths", opt.Roots, "backend", src.Name(), "interval", opt.Interval,
		"settle", opt.Settle, "full_scan_every", opt.FullScanEvery)

	events := make(chan []Event, 64)
	readCtx, stopReading := context.WithCancel(context.WithoutCancel(ctx))
	readDone := make(chan error, 1)
	go func() {
		readDone <- src.Run(readCtx, func(evs []Event) {
			select {
			case events <- evs:
			case <-readCtx.Done():
			}
		})
	}()
	readCh, readFinished := readDone, false
	defer func() {
		stopReading()
		if !readFinished {
			<-readDone
		}
	}()

	commitCtx := context.WithoutCancel(ctx)
	done := make(chan finished, 1)
	pend := NewPending(opt.Roots)
	now := opt.Now()
	pend.MarkFull(now, "start")
	var (
		committing  bool
		stopping    bool
		failure     error // a source that failed, or the last capture
		lastFailed  bool  // the capture made while stopping failed
		lastStart   time.Time
		settleStart time.Time
		retryAt     time.Time
		backoff     = opt.Interval
		nextFull    = now.Add(opt.FullScanEvery)
		lastPublish time.Time
		published   Status
		ctxDone     = ctx.Done()
	)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	w.publish(pend, now, true, &lastPublish, &published)

	for {
		now = opt.Now()
		if !committing {
			if stopping && (pend.Len() == 0 || lastFailed) {
				w.st.State = "stopped"
				w.publish(pend, now, true, &lastPublish, &published)
				return failure
			}
			if opt.FullScanEvery > 0 && !now.Before(nextFull) {
				pend.MarkFull(now, "full scan")
				nextFull = now.Add(opt.FullScanEvery)
			}
			due := stopping || !now.Before(lastStart.Add(opt.Interval)) && !now.Before(retryAt)
			if pend.Len() > 0 && due {
				if settleStart.IsZero() {
					settleStart = now
				}
				unsettled := pend.Unsettled(now, opt.Quiet)
				if opt.NoSettle != nil {
					unsettled = slices.DeleteFunc(unsettled, opt.NoSettle)
				}
				if len(unsettled) == 0 || stopping || now.Sub(settleStart) >= opt.Settle {
					if len(unsettled) > 0 {
						w.log.Info("files still being written; capturing them as they are, marked in flux", "files", len(unsettled), "first", unsettled[0])
					}
					b := pend.Take(unsettled)
					committing, lastStart, settleStart = true, now, time.Time{}
					go func() {
						started := opt.Now()
						res, err := opt.Committer.Commit(commitCtx, b)
						done <- finished{Capture{Batch: b, Result: res, Started: started, Committed: opt.Now()}, err}
					}()
				}
			}
		}
		w.publish(pend, now, false, &lastPublish, &published)

		wake := w.nextWake(pend, now, committing, lastStart, retryAt, settleStart, nextFull)
		if w.opt.OnStatus != nil && published.PendingChanges != pend.Len() {
			// A change of status held back by the rate limit.
			wake = minTime(wake, lastPublish.Add(statusEvery))
		}
		timer.Reset(max(0, wake.Sub(now)))
		select {
		case evs := <-events:
			now = opt.Now()
			for _, ev := range evs {
				w.log.Debug("event", "path", ev.Path, "op", ev.Op)
				if ev.Op == OpOverflow {
					w.st.Overflows++
					w.log.Warn("event queue overflowed: changes were lost; walking the affected paths whole", "path", ev.Path)
				}
				pend.Add(ev, now)
			}
		case f := <-done:
			committing = false
			w.finish(pend, f, &retryAt, &backoff)
			// A capture's buffers (chunker, listings, pack spools) are
			// garbage now: hand them back to the system rather than keep
			// the peak of the largest capture resident between captures.
			debug.FreeOSMemory()
			if f.err != nil && stopping {
				failure, lastFailed = f.err, true
			}
			w.publish(pend, opt.Now(), true, &lastPublish, &published)
		case <-timer.C:
		case <-ctxDone:
			ctxDone = nil
			stopping = true
			w.log.Info("stopping: finishing the capture under way and what is pending", "pending", pend.Len())
		case err := <-readCh:
			readCh, readFinished = nil, true
			if err == nil {
				err = errors.New("watch: the event source stopped")
			}
			w.log.Error("watching failed", "err", err)
			failure, stopping = err, true
		}
	}
}

// nextWake is when the loop has something to do without an event.
func (w *Watcher) nextWake(pend *Pending, now time.Time, committing bool, lastStart, retryAt, settleStart, nextFull time.Time) time.Time {
	wake := now.Add(24 * time.Hour)
	if w.opt.FullScanEvery > 0 && nextFull.Before(wake) {
		wake = nextFull
	}
	if committing || pend.Len() == 0 {
		return wake
	}
	due := lastStart.Add(w.opt.Interval)
	if retryAt.After(due) {
		due = retryAt
	}
	if due.After(now) {
		return minTime(wake, due)
	}
	// Settling: when the last write goes quiet, or at the deadline.
	wake = minTime(wake, settleStart.Add(w.opt.Settle))
	if q := pend.QuietAt(w.opt.Quiet); !q.IsZero() {
		wake = minTime(wake, q)
	}
	return wake
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// finish records the outcome of a capture.
func (w *Watcher) finish(pend *Pending, f finished, retryAt *time.Time, backoff *time.Duration) {
	b, res := f.Batch, f.Result
	if f.err != nil {
		pend.Restore(b)
		*retryAt = f.Committed.Add(*backoff)
		w.log.Warn("capture failed; its changes stay pending and are retried", "err", f.err, "retry_in", *backoff)
		*backoff = min(2**backoff, maxRetry)
		w.st.LastError = f.err.Error()
		return
	}
	*retryAt, *backoff = time.Time{}, w.opt.Interval
	w.st.LastError = ""
	if res.Full {
		w.st.FullScans++
	}
	took := f.Committed.Sub(f.Started)
	if res.Snapshot == nil {
		w.log.Debug("nothing changed", "reason", b.Reason, "full", res.Full, "took", took)
		return
	}
	w.st.Snapshots++
	w.st.LastSnapshot = res.Snapshot.ID.String()
	t := f.Committed.UTC()
	w.st.LastSnapshotTime = &t
	var lag time.Duration
	if !b.Oldest.IsZero() {
		lag = f.Committed.Sub(b.Oldest)
	}
	w.st.LastLagSeconds = lag.Seconds()
	w.log.Info("snapshot saved", "snapshot", res.Snapshot.ID.Short(), "reason", b.Reason, "full", res.Full,
		"paths", len(b.Paths), "rescan", len(b.Rescan), "in_flux", len(b.InFlux), "lag", lag.Round(time.Millisecond),
		"took", took.Round(time.Millisecond))
	if w.opt.OnCommit != nil {
		w.opt.OnCommit(f.Capture)
	}
}

// publish hands the status to OnStatus when it changed: at once when
// forced, else at most once per statusEvery.
func (w *Watcher) publish(pend *Pending, now time.Time, force bool, last *time.Time, prev *Status) {
	if w.opt.OnStatus == nil {
		return
	}
	w.st.PendingChanges = pend.Len()
	w.st.OldestPending = nil
	if o := pend.Oldest(); !o.IsZero() && pend.Len() > 0 {
		o = o.UTC()
		w.st.OldestPending = &o
	}
	same := prev.PendingChanges == w.st.PendingChanges && prev.State == w.st.State &&
		prev.Snapshots == w.st.Snapshots && prev.LastError == w.st.LastError && prev.Backend == w.st.Backend
	if !force && (same || now.Sub(*last) < statusEvery) {
		return
	}
	w.st.Updated = now.UTC()
	*last, *prev = now, w.st
	st := w.st
	st.Paths = slices.Clone(st.Paths)
	w.opt.OnStatus(st)
}
