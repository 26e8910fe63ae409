package retention

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
)

// The retry policy of Retrying and Retry, that of package backend/retry:
// waits of about 0.5 s, 1 s, 2 s, ... up to 30 s, each a random time
// between half and all of it.
const (
	retryInitial = 500 * time.Millisecond
	retryMax     = 30 * time.Second
)

// Retry calls fn until it succeeds, fails with an error that
// backend.IsPermanent reports, ctx is done, or attempts calls failed.
// Retries are logged at Warn level (log may be nil).
func Retry(ctx context.Context, attempts int, log *slog.Logger, op string, fn func() error) error {
	d := retryInitial
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || backend.IsPermanent(err) || ctx.Err() != nil {
			return err
		}
		if attempt >= attempts {
			return fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
		}
		wait := d/2 + time.Duration(rand.Float64()*float64(d/2))
		if log != nil {
			log.Warn("request failed, retrying", "op", op, "attempt", attempt, "delay", wait, "err", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
		d = min(2*d, retryMax)
	}
}

// retrying is a Store whose requests are tried again as Retry does.
type retrying struct {
	st       Store
	attempts int
	log      *slog.Logger
}

// Retrying returns st with each request tried up to attempts times while
// its error may be transient: the retention requests are not part of
// backend.Backend, so the backend/retry wrapper does not see them.
func Retrying(st Store, attempts int, log *slog.Logger) Store {
	return &retrying{st: st, attempts: attempts, log: log}
}

func (r *retrying) Retention(ctx context.Context, h backend.Handle) (t time.Time, err error) {
	err = Retry(ctx, r.attempts, r.log, "get retention of "+h.String(), func() error {
		t, err = r.st.Retention(ctx, h)
		return err
	})
	return t, err
}

func (r *retrying) ExtendRetention(ctx context.Context, h backend.Handle, until time.Time) error {
	return Retry(ctx, r.attempts, r.log, "extend retention of "+h.String(), func() error {
		return r.st.ExtendRetention(ctx, h, until)
	})
}
