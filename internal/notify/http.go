package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// HTTP delivery defaults, for the webhook and the ping URL.
const (
	defaultAttempts       = 4                // tries of one request
	defaultBackoff        = time.Second      // wait after the first failed try; doubles
	defaultAttemptTimeout = 10 * time.Second // bound of one try
)

// poster sends one request with retries: on a connection error, a 5xx
// or a 429 it tries again after a doubling wait, up to attempts times or
// until ctx ends. Any other status outside 2xx fails at once.
type poster struct {
	client   *http.Client
	attempts int
	backoff  time.Duration
	// where names the endpoint in errors: scheme and host only, since
	// webhook and ping URLs often carry a secret in their path.
	where string
}

func newPoster(raw string) (poster, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return poster{}, err
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return poster{}, fmt.Errorf("%q is not an http or https URL", raw)
	}
	return poster{
		client:   &http.Client{Timeout: defaultAttemptTimeout},
		attempts: defaultAttempts,
		backoff:  defaultBackoff,
		where:    u.Scheme + "://" + u.Host,
	}, nil
}

// errRetry marks a failed try that another may fix.
type errRetry struct{ error }

func (p poster) post(ctx context.Context, target, contentType string, body []byte) error {
	wait := p.backoff
	var err error
	for try := 1; ; try++ {
		err = p.try(ctx, target, contentType, body)
		var retry errRetry
		if err == nil || !errors.As(err, &retry) {
			return err
		}
		err = retry.error
		if try >= p.attempts {
			return fmt.Errorf("%w (after %d tries)", err, try)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (gave up after %d tries: %w)", err, try, ctx.Err())
		case <-time.After(wait):
		}
		wait *= 2
	}
}

func (p poster) try(ctx context.Context, target, contentType string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", "rewind-agent")
	resp, err := p.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("POST %s: %w", p.where, ctx.Err())
		}
		// The URL would show in err: name only the host.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return errRetry{fmt.Errorf("POST %s: %w", p.where, err)}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	err = fmt.Errorf("POST %s: status %s", p.where, resp.Status)
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
		return errRetry{err}
	}
	return err
}
