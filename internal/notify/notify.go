// Package notify tells people and monitoring systems what the agent's jobs
// do: a webhook (a JSON document per event), email over SMTP, and a
// Healthchecks-style ping URL. A Tracker turns run results and RPO checks
// into events (a failure, a recovery, an RPO breach), and a Notifier sends
// each event to the channels that want it. docs/AGENT.md ("Notifications")
// is the user's reference, including the webhook's JSON schema.
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/plan"
)

// Event kinds.
const (
	KindStart    = "start"    // a run began
	KindSuccess  = "success"  // a run ended well (success or warning), and the one before did too
	KindFailure  = "failure"  // a run failed
	KindRecovery = "recovery" // a run ended well after failures, or the RPO lag is back under target
	KindRPO      = "rpo"      // the newest restorable point is older than the job's RPO target
)

// DefaultOn is what notifies by webhook and email when the plan's
// notify.on is empty.
var DefaultOn = []string{KindFailure, KindRecovery, KindRPO}

// DefaultTimeout bounds one Notify call: every channel, with its retries.
const DefaultTimeout = 30 * time.Second

// Event is something to tell about one job.
type Event struct {
	Kind      string
	Host, Job string
	Time      time.Time
	// Run is the run the event is about; nil for RPO events.
	Run *event.Run
	// Lag and Target are the RPO lag and target, for rpo events and for
	// the recovery that ends one (0 when not known).
	Lag, Target time.Duration
	// Failures counts the job's failed runs in a row, this one included
	// (failure events).
	Failures int
	// Repeat marks a failure after another failure that the Tracker's
	// backoff keeps from people: webhook and email skip it, while the
	// ping URL, which wants every run, still gets it.
	Repeat bool
	// Text is a free line added to the message.
	Text string
}

// Sender is one notification channel.
type Sender interface {
	// Send delivers e, or says why it could not. It gives up when ctx
	// ends.
	Send(ctx context.Context, e Event) error
}

// channel is a Sender with its name and the events it wants.
type channel struct {
	name  string
	s     Sender
	wants func(Event) bool
}

// Notifier sends events to the channels of a plan's notify section.
type Notifier struct {
	// Timeout bounds each Notify call (DefaultTimeout when 0).
	Timeout  time.Duration
	log      *slog.Logger
	channels []channel
}

// New builds the channels cfg names. A nil cfg gives a Notifier that
// sends nothing. Errors are those of the configuration: an unknown event
// in on, an email without recipients, an unreadable password file.
func New(cfg *plan.Notify, log *slog.Logger) (*Notifier, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{log: log}
	if cfg == nil {
		return n, nil
	}
	on := map[string]bool{}
	list := cfg.On
	if len(list) == 0 {
		list = DefaultOn
	}
	for _, k := range list {
		switch k {
		case KindStart, KindSuccess, KindFailure, KindRecovery, KindRPO:
			on[k] = true
		default:
			return nil, fmt.Errorf("notify.on: unknown event %q (want start, success, failure, recovery or rpo)", k)
		}
	}
	// People hear about the kinds in on, and not about failures the
	// Tracker holds back.
	forPeople := func(e Event) bool { return on[e.Kind] && !e.Repeat }
	if cfg.Webhook != "" {
		w, err := NewWebhook(cfg.Webhook)
		if err != nil {
			return nil, err
		}
		n.channels = append(n.channels, channel{"webhook", w, forPeople})
	}
	if cfg.Email != nil {
		m, err := newEmailFromPlan(cfg.Email)
		if err != nil {
			return nil, err
		}
		n.channels = append(n.channels, channel{"email", m, forPeople})
	}
	if cfg.Healthchecks != "" {
		h, err := NewHealthchecks(cfg.Healthchecks)
		if err != nil {
			return nil, err
		}
		n.channels = append(n.channels, channel{"healthchecks", h, func(e Event) bool { return h.PingURL(e) != "" }})
	}
	return n, nil
}

// Add adds a channel that gets the events wants accepts (every event when
// wants is nil).
func (n *Notifier) Add(name string, s Sender, wants func(Event) bool) {
	if wants == nil {
		wants = func(Event) bool { return true }
	}
	n.channels = append(n.channels, channel{name, s, wants})
}

// Notify sends e to every channel that wants it, all at once, and waits
// for them at most Timeout. Each channel's failure is logged, and the
// failures are returned joined. The caller that must not wait even that
// long runs Notify in a goroutine it owns.
func (n *Notifier) Notify(ctx context.Context, e Event) error {
	if n == nil {
		return nil
	}
	timeout := n.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, c := range n.channels {
		if !c.wants(e) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.s.Send(ctx, e)
			if err == nil {
				n.log.Debug("notification sent", "channel", c.name, "kind", e.Kind, "job", e.Job)
				return
			}
			n.log.Warn("notification failed", "channel", c.name, "kind", e.Kind, "job", e.Job, "err", err)
			mu.Lock()
			errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
			mu.Unlock()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// readSecret reads a password file, without its final line break.
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}
