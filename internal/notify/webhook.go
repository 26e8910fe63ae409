package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Webhook POSTs each event as a JSON document (Payload) to a URL. A
// connection error, a 5xx or a 429 is retried a few times with a doubling
// wait; any other status outside 2xx is an error naming it.
type Webhook struct {
	url string
	p   poster
}

// NewWebhook returns a webhook sender for the http or https URL.
func NewWebhook(url string) (*Webhook, error) {
	p, err := newPoster(url)
	if err != nil {
		return nil, fmt.Errorf("notify.webhook: %w", err)
	}
	return &Webhook{url: url, p: p}, nil
}

// SetRetry changes how many tries a delivery gets and the wait after the
// first failed one (it doubles after each).
func (w *Webhook) SetRetry(attempts int, backoff time.Duration) {
	w.p.attempts, w.p.backoff = max(attempts, 1), backoff
}

// Send POSTs e's Payload.
func (w *Webhook) Send(ctx context.Context, e Event) error {
	body, err := json.Marshal(NewPayload(e))
	if err != nil {
		return err
	}
	return w.p.post(ctx, w.url, "application/json", body)
}
