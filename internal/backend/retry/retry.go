// Package retry wraps a Backend to try failed operations again, with
// exponential backoff and jitter, as long as the error may be transient.
//
// # Policy
//
// An error is retried unless backend.IsPermanent says otherwise: not found
// (ErrNotExist), ErrExists, errors the provider marked Permanent (S3 403,
// 404 and most 400 answers, a full disk, a bad range) and a cancelled
// context. An operation whose context is done is not retried either.
//
// Attempt n waits about InitialDelay·2^(n-1), capped at MaxDelay, before
// the next one: a random time between half that and all of it, so that
// many clients failing together do not retry in step. After MaxAttempts
// attempts the last error is returned with a note of how many there were.
// Each retry is logged at Warn level, and a success after retries at
// Info, through the slog.Logger given in Config.
//
// Save rewinds its reader before every new attempt. Load calls fn again
// with a fresh reader (fn must cope, as the backend contract says).
// List is retried only while fn has seen no file, so that no file is
// reported twice; a listing cut in the middle returns its error. A Remove
// that is retried after an attempt whose answer was lost may find the file
// gone: that counts as success.
package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
)

// Defaults for the zero fields of Config: 10 attempts over about two
// minutes when every one fails at once.
const (
	DefaultMaxAttempts  = 10
	DefaultInitialDelay = 500 * time.Millisecond
	DefaultMaxDelay     = 30 * time.Second
)

// Config sets the retry policy.
type Config struct {
	// MaxAttempts is the most attempts per operation, the first included.
	MaxAttempts int
	// InitialDelay is the wait after the first failure, before jitter.
	InitialDelay time.Duration
	// MaxDelay caps the wait between attempts.
	MaxDelay time.Duration
	// Logger receives the retries; nil discards them.
	Logger *slog.Logger
	// Sleep waits d or until ctx is done, returning ctx's error then; nil
	// uses a timer. Tests replace it to run without waiting.
	Sleep func(ctx context.Context, d time.Duration) error
	// Jitter returns a number in [0, 1) that places each wait between
	// half and all of its nominal length; nil uses math/rand/v2.
	Jitter func() float64
}

// Backend retries the failed operations of the backend it wraps.
type Backend struct {
	inner backend.Backend
	cfg   Config
}

var _ backend.Backend = (*Backend)(nil)

// New returns be wrapped with the policy of cfg. The wrapper offers no
// backend.TempFiler: writers go through Save, which can be retried.
func New(be backend.Backend, cfg Config) *Backend {
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.InitialDelay <= 0 {
		cfg.InitialDelay = DefaultInitialDelay
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = DefaultMaxDelay
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	if cfg.Jitter == nil {
		cfg.Jitter = rand.Float64
	}
	return &Backend{inner: be, cfg: cfg}
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

// Delay returns the wait after failed attempt number attempt (1 for the
// first) before jitter: InitialDelay doubled per attempt, capped.
func (b *Backend) Delay(attempt int) time.Duration {
	d := b.cfg.InitialDelay
	for i := 1; i < attempt && d < b.cfg.MaxDelay; i++ {
		d *= 2
	}
	return min(d, b.cfg.MaxDelay)
}

// retry runs try until it succeeds, fails for good, or runs out of
// attempts. try gets the attempt number, from 1. op and what name the
// operation in logs.
func (b *Backend) retry(ctx context.Context, op, what string, try func(attempt int) error) error {
	start := time.Now()
	for attempt := 1; ; attempt++ {
		err := try(attempt)
		if err == nil {
			if attempt > 1 {
				b.cfg.Logger.Info("backend operation succeeded after retrying", "op", op, "file", what, "attempts", attempt)
			}
			return nil
		}
		if backend.IsPermanent(err) {
			return err
		}
		if cerr := ctx.Err(); cerr != nil {
			if errors.Is(err, cerr) {
				return err
			}
			return backend.Wrap(op, what, fmt.Errorf("%w (then: %w)", err, cerr))
		}
		if attempt >= b.cfg.MaxAttempts {
			return backend.Wrap(op, what, fmt.Errorf("%w (gave up after %d attempts in %v)", err, attempt, time.Since(start).Round(time.Millisecond)))
		}
		nominal := b.Delay(attempt)
		d := nominal/2 + time.Duration(b.cfg.Jitter()*float64(nominal/2))
		b.cfg.Logger.Warn("backend operation failed, retrying", "op", op, "file", what, "attempt", attempt, "delay", d, "err", err)
		if serr := b.cfg.Sleep(ctx, d); serr != nil {
			return backend.Wrap(op, what, fmt.Errorf("%w (then, while waiting to retry: %w)", err, serr))
		}
	}
}

// Location returns the wrapped backend's location.
func (b *Backend) Location() string { return b.inner.Location() }

// Save retries, rewinding rd before each new attempt.
func (b *Backend) Save(ctx context.Context, h backend.Handle, rd backend.RewindReader) error {
	return b.retry(ctx, "save", h.String(), func(attempt int) error {
		if attempt > 1 {
			if err := rd.Rewind(); err != nil {
				return backend.Permanent(backend.Wrap("save", h.String(), fmt.Errorf("rewind for another attempt: %w", err)))
			}
		}
		return b.inner.Save(ctx, h, rd)
	})
}

// Load retries, calling fn again with a fresh reader.
func (b *Backend) Load(ctx context.Context, h backend.Handle, length int, offset int64, fn func(rd io.Reader) error) error {
	return b.retry(ctx, "load", h.String(), func(int) error {
		return b.inner.Load(ctx, h, length, offset, fn)
	})
}

// Stat retries.
func (b *Backend) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	var fi backend.FileInfo
	err := b.retry(ctx, "stat", h.String(), func(int) error {
		var err error
		fi, err = b.inner.Stat(ctx, h)
		return err
	})
	return fi, err
}

// Remove retries; a file found gone by a later attempt was removed by an
// earlier one whose answer was lost.
func (b *Backend) Remove(ctx context.Context, h backend.Handle) error {
	return b.retry(ctx, "remove", h.String(), func(attempt int) error {
		err := b.inner.Remove(ctx, h)
		if attempt > 1 && backend.IsNotExist(err) {
			return nil
		}
		return err
	})
}

// errListCut marks a List that failed after fn had seen files.
var errListCut = errors.New("listing cut short")

// List retries while fn has seen no file.
func (b *Backend) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	called := false
	var fnErr error
	err := b.retry(ctx, "list", t.String(), func(int) error {
		err := b.inner.List(ctx, t, func(fi backend.FileInfo) error {
			called = true
			fnErr = fn(fi)
			return fnErr
		})
		if err != nil && called && fnErr == nil {
			// Not retried: another attempt would report files again.
			return backend.Permanent(fmt.Errorf("%w: %w", errListCut, err))
		}
		if err != nil && fnErr != nil {
			return backend.Permanent(err) // fn's error ends the listing
		}
		return err
	})
	if fnErr != nil {
		return fnErr // as fn returned it, not marked
	}
	return err
}

// Close closes the wrapped backend.
func (b *Backend) Close() error { return b.inner.Close() }
