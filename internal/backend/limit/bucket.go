package limit

import (
	"context"
	"sync"
	"time"
)

// tokenBucket lets bytes through at rate per second on average, with
// bursts of up to burst bytes. Callers pay for what they moved after
// moving it: the balance may go negative, and the caller that made it so
// sleeps until it is back to zero, so that concurrent users share the
// rate.
type tokenBucket struct {
	rate  float64 // bytes per second
	burst float64

	mu     sync.Mutex
	tokens float64   // mu
	last   time.Time // when tokens was brought up to date; mu
}

// newTokenBucket returns a bucket for bytesPerSecond, empty: the first
// bytes already wait, so that the rate over a transfer is the limit and
// not the limit plus a burst.
func newTokenBucket(bytesPerSecond int64) *tokenBucket {
	rate := float64(bytesPerSecond)
	// A tenth of a second's worth (at least one read's chunk): small
	// against a transfer of seconds, large enough not to sleep per read.
	burst := max(rate/10, float64(chunkSize))
	return &tokenBucket{rate: rate, burst: burst, last: time.Now()}
}

// chunkSize is the most a throttled reader reads at once, so that one
// Read cannot overdraw the bucket by much.
const chunkSize = 16 << 10

// pay takes n bytes from the bucket and sleeps while it is in debt, or
// until ctx is done.
func (b *tokenBucket) pay(ctx context.Context, n int) error {
	if n <= 0 {
		return nil
	}
	b.mu.Lock()
	now := time.Now()
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	b.tokens -= float64(n)
	debt := -b.tokens
	b.mu.Unlock()
	if debt <= 0 {
		return nil
	}
	t := time.NewTimer(time.Duration(debt / b.rate * float64(time.Second)))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
