package notify

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rewind-backup/rewind/internal/plan"
)

func TestNotifierFilters(t *testing.T) {
	hook := newRecorder(t)
	ping := newRecorder(t)
	n, err := New(&plan.Notify{Webhook: hook.URL + "/hook", Healthchecks: ping.URL + "/ping"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := NewTracker("web1")
	ok, bad := goodRun(), failedRun()
	events := []Event{
		tr.RunStarted(ok),
		tr.RunFinished(ok),  // success: ping only
		tr.RunFinished(bad), // failure 1: both
		tr.RunFinished(bad), // failure 2: both
		tr.RunFinished(bad), // failure 3, a repeat: ping only
		tr.RunFinished(ok),  // recovery: both
	}
	if rpo := tr.CheckRPO("www", ok.End, 60, ok.End.Add(120)); rpo != nil {
		events = append(events, *rpo) // rpo: webhook only
	} else {
		t.Fatal("no rpo event")
	}
	for _, e := range events {
		if err := n.Notify(context.Background(), e); err != nil {
			t.Fatalf("%s: %v", e.Kind, err)
		}
	}
	var kinds []string
	for _, r := range hook.requests() {
		p := decodePayload(t, r.body)
		kinds = append(kinds, p.Kind)
	}
	if got := strings.Join(kinds, " "); got != "failure failure recovery rpo" {
		t.Errorf("webhook got %q, want failure failure recovery rpo", got)
	}
	var paths []string
	for _, r := range ping.requests() {
		paths = append(paths, strings.TrimPrefix(r.path, "/ping"))
	}
	if got := strings.Join(paths, " "); got != "/start  /fail /fail /fail " {
		t.Errorf("pings %q, want start, success, 3 fails, success", got)
	}
}

func TestNotifierOn(t *testing.T) {
	hook := newRecorder(t)
	n, err := New(&plan.Notify{Webhook: hook.URL, On: []string{"success", "failure"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := NewTracker("web1")
	for _, e := range []Event{tr.RunFinished(goodRun()), tr.RunFinished(failedRun()), tr.RunFinished(goodRun())} {
		if err := n.Notify(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(hook.requests()); got != 2 {
		t.Errorf("%d webhook calls, want 2 (success, failure; not recovery)", got)
	}
	if _, err := New(&plan.Notify{On: []string{"failure", "sometimes"}}, nil); err == nil || !strings.Contains(err.Error(), "sometimes") {
		t.Errorf("unknown event in on: %v", err)
	}
}

// failing is a Sender that always fails.
type failing struct{}

func (failing) Send(context.Context, Event) error { return errors.New("no route to the moon") }

// counting is a Sender that counts what it got.
type counting struct {
	mu sync.Mutex
	n  int
}

func (c *counting) Send(context.Context, Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return nil
}

func TestNotifierJoinsErrors(t *testing.T) {
	hook := newRecorder(t, 400)
	n, err := New(&plan.Notify{Webhook: hook.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var c counting
	n.Add("moon", failing{}, nil)
	n.Add("count", &c, nil)
	err = n.Notify(context.Background(), NewTracker("h").RunFinished(failedRun()))
	if err == nil || !strings.Contains(err.Error(), "webhook: POST") || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "moon: no route to the moon") {
		t.Fatalf("error %v, want the webhook's and the moon's", err)
	}
	if c.n != 1 {
		t.Errorf("the working channel got %d events, want 1", c.n)
	}
}

func TestNewNil(t *testing.T) {
	n, err := New(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(context.Background(), Event{Kind: KindFailure}); err != nil {
		t.Fatal(err)
	}
}

func TestNewEmailConfig(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := plan.Email{SMTP: "mail.example.com:587", From: "rewind@example.com", To: []string{"ops@example.com"}, Username: "rewind", PasswordFile: pw}
	n, err := New(&plan.Notify{Email: &good}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m := n.channels[0].s.(*Email); m.Password != "s3cret" {
		t.Errorf("password %q, want it without the line break", m.Password)
	}
	for name, change := range map[string]func(*plan.Email){
		"smtp":          func(e *plan.Email) { e.SMTP = "mail.example.com" },
		"from":          func(e *plan.Email) { e.From = "not an address" },
		"to":            func(e *plan.Email) { e.To = nil },
		"tls":           func(e *plan.Email) { e.TLS = "ssl" },
		"password_file": func(e *plan.Email) { e.PasswordFile = filepath.Join(dir, "missing") },
	} {
		bad := good
		change(&bad)
		if _, err := New(&plan.Notify{Email: &bad}, nil); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("bad %s: error %v", name, err)
		}
	}
}
