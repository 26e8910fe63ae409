package notify

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Healthchecks pings a Healthchecks-style URL (healthchecks.io, or a
// self-hosted one; the same scheme as Uptime Kuma's push monitors and
// Cronitor's): URL/start when a run starts, URL when it ends well
// (success, warning, recovery), URL/fail when it fails, every run, even a
// failure the Tracker holds back from people. Each ping is a POST whose
// body is the event's text (Body), which the service shows with the
// ping; a failure's body starts with the error.
//
// RPO events are not sent: the service already raises an alarm by itself
// when pings stop coming for longer than the period and grace time it was
// set up with, which is the same question asked from outside the host
// (and still answered when the host is down). An RPO recovery is not a
// run, so it has no ping either.
type Healthchecks struct {
	url string
	p   poster
}

// NewHealthchecks returns a sender pinging the http or https URL.
func NewHealthchecks(url string) (*Healthchecks, error) {
	p, err := newPoster(url)
	if err != nil {
		return nil, fmt.Errorf("notify.healthchecks: %w", err)
	}
	return &Healthchecks{url: strings.TrimRight(url, "/"), p: p}, nil
}

// SetRetry changes how many tries a ping gets and the wait after the
// first failed one (it doubles after each).
func (h *Healthchecks) SetRetry(attempts int, backoff time.Duration) {
	h.p.attempts, h.p.backoff = max(attempts, 1), backoff
}

// PingURL is the URL e is pinged at, or "" when e is not pinged.
func (h *Healthchecks) PingURL(e Event) string {
	switch {
	case e.Kind == KindStart:
		return h.url + "/start"
	case e.Kind == KindSuccess, e.Kind == KindRecovery && e.Run != nil:
		return h.url
	case e.Kind == KindFailure:
		return h.url + "/fail"
	}
	return ""
}

// Send pings the URL for e; events that have no ping are ignored.
func (h *Healthchecks) Send(ctx context.Context, e Event) error {
	target := h.PingURL(e)
	if target == "" {
		return nil
	}
	body := Body(e)
	if e.Kind == KindFailure && e.Run != nil && e.Run.Error != "" {
		body = e.Run.Error + "\n\n" + body
	}
	// healthchecks.io keeps the first 100 kB of a ping's body.
	const limit = 100_000
	if len(body) > limit {
		body = body[:limit]
	}
	return h.p.post(ctx, target, "text/plain; charset=utf-8", []byte(body))
}
