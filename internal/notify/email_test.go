package notify

import (
	"context"
	"io"
	"mime"
	"net/mail"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/testutil"
)

// emailTo returns an Email sender for the test server, trusting its CA.
func emailTo(t *testing.T, s *testutil.SMTP, mode string) *Email {
	t.Helper()
	m := &Email{Addr: s.Addr, From: "rewind@web1.example.com", To: []string{"ops@example.com", "oncall@example.com"}, TLS: mode}
	if s.CACert != "" {
		cfg, err := tlsConfigWithCA(s.CACert)
		if err != nil {
			t.Fatal(err)
		}
		m.TLSConfig = cfg
	}
	return m
}

func failureEvent() Event {
	return NewTracker("web1").RunFinished(failedRun())
}

func TestEmailMessage(t *testing.T) {
	s := testutil.StartSMTP(t, testutil.SMTPOptions{})
	m := emailTo(t, s, TLSAuto)
	e := failureEvent()
	e.Run.Error = "backup: " + strings.Repeat("very long error ", 80) + "end of error"
	if err := m.Send(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	msgs := s.Messages(t)
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	got := msgs[0]
	if got.From != "rewind@web1.example.com" || strings.Join(got.To, ",") != "ops@example.com,oncall@example.com" {
		t.Errorf("envelope from %s to %v", got.From, got.To)
	}
	if got.TLS || got.Login != "" {
		t.Errorf("plain server: tls=%v login=%q", got.TLS, got.Login)
	}
	msg, err := mail.ReadMessage(strings.NewReader(got.Data))
	if err != nil {
		t.Fatalf("parse the message: %v\n%s", err, got.Data)
	}
	h := msg.Header
	subject, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	if subject != "[rewind] web1: job www FAILED" {
		t.Errorf("subject %q", subject)
	}
	if h.Get("From") != "rewind@web1.example.com" || h.Get("To") != "ops@example.com, oncall@example.com" {
		t.Errorf("From %q To %q", h.Get("From"), h.Get("To"))
	}
	date, err := h.Date()
	if err != nil || !date.Equal(failedRun().End) {
		t.Errorf("Date %q: %v, want the run's end", h.Get("Date"), err)
	}
	if !regexp.MustCompile(`^<[0-9a-f]{24}\.\d+@web1>$`).MatchString(h.Get("Message-Id")) {
		t.Errorf("Message-ID %q", h.Get("Message-Id"))
	}
	if h.Get("Auto-Submitted") != "auto-generated" || h.Get("X-Rewind-Event") != "failure" {
		t.Errorf("Auto-Submitted %q X-Rewind-Event %q", h.Get("Auto-Submitted"), h.Get("X-Rewind-Event"))
	}
	if h.Get("Content-Transfer-Encoding") != "quoted-printable" {
		t.Fatalf("Content-Transfer-Encoding %q", h.Get("Content-Transfer-Encoding"))
	}
	for _, line := range strings.Split(got.Data, "\r\n") {
		if len(line) > 998 {
			t.Errorf("a line of %d bytes", len(line))
		}
	}
	raw, err := io.ReadAll(msg.Body)
	if err != nil {
		t.Fatal(err)
	}
	body := decodeQP(t, raw)
	for _, want := range []string{
		"web1: job www FAILED.",
		"Host:       web1",
		"Job:        www",
		"Result:     failed",
		"Trigger:    schedule",
		"Attempt:    2",
		"Ended:      2026-03-01T02:01:30Z (took 1m30s)",
		"Error:      backup: very long error",
		"end of error",
		"before     stop nginx.service: success",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
}

func TestEmailStartTLS(t *testing.T) {
	s := testutil.StartSMTP(t, testutil.SMTPOptions{TLS: testutil.SMTPStartTLS})
	for _, mode := range []string{TLSAuto, TLSStartTLS} {
		if err := emailTo(t, s, mode).Send(context.Background(), failureEvent()); err != nil {
			t.Fatalf("tls %q: %v", mode, err)
		}
	}
	// none keeps to clear text even when STARTTLS is offered.
	if err := emailTo(t, s, TLSNone).Send(context.Background(), failureEvent()); err != nil {
		t.Fatalf("tls none: %v", err)
	}
	msgs := s.Messages(t)
	if len(msgs) != 3 {
		t.Fatalf("%d messages, want 3", len(msgs))
	}
	for i, want := range []bool{true, true, false} {
		if msgs[i].StartTLS != want || msgs[i].TLS != want {
			t.Errorf("message %d: starttls=%v tls=%v, want %v", i, msgs[i].StartTLS, msgs[i].TLS, want)
		}
	}
}

func TestEmailStartTLSRequiredByClient(t *testing.T) {
	s := testutil.StartSMTP(t, testutil.SMTPOptions{})
	err := emailTo(t, s, TLSStartTLS).Send(context.Background(), failureEvent())
	if err == nil || !strings.Contains(err.Error(), "does not offer STARTTLS") {
		t.Fatalf("error %v, want that STARTTLS is missing", err)
	}
	if n := len(s.Messages(t)); n != 0 {
		t.Errorf("%d messages sent in clear text", n)
	}
}

func TestEmailStartTLSRequiredByServer(t *testing.T) {
	s := testutil.StartSMTP(t, testutil.SMTPOptions{TLS: testutil.SMTPRequireStartTLS})
	if err := emailTo(t, s, TLSNone).Send(context.Background(), failureEvent()); err == nil {
		t.Fatal("tls none sent to a server that requires STARTTLS")
	}
	if err := emailTo(t, s, TLSAuto).Send(context.Background(), failureEvent()); err != nil {
		t.Fatal(err)
	}
	if msgs := s.Messages(t); len(msgs) != 1 || !msgs[0].StartTLS {
		t.Fatalf("messages %+v, want one over STARTTLS", msgs)
	}
}

func TestEmailImplicitTLS(t *testing.T) {
	s := testutil.StartSMTP(t, testutil.SMTPOptions{TLS: testutil.SMTPImplicitTLS})
	if err := emailTo(t, s, TLSImplicit).Send(context.Background(), failureEvent()); err != nil {
		t.Fatal(err)
	}
	if msgs := s.Messages(t); len(msgs) != 1 || !msgs[0].TLS || msgs[0].StartTLS {
		t.Fatalf("messages %+v, want one over implicit TLS", msgs)
	}
	// A client that speaks SMTP first gets nowhere, within its deadline.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := emailTo(t, s, TLSAuto).Send(ctx, failureEvent()); err == nil {
		t.Fatal("clear-text SMTP to an implicit-TLS server succeeded")
	}
}

func TestEmailUntrustedCertificate(t *testing.T) {
	s := testutil.StartSMTP(t, testutil.SMTPOptions{TLS: testutil.SMTPStartTLS})
	m := emailTo(t, s, TLSAuto)
	m.TLSConfig = nil // system CAs only: the test CA is unknown
	err := m.Send(context.Background(), failureEvent())
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("error %v, want a certificate error", err)
	}
	if n := len(s.Messages(t)); n != 0 {
		t.Errorf("%d messages sent", n)
	}
}

func TestEmailAuth(t *testing.T) {
	s := testutil.StartSMTP(t, testutil.SMTPOptions{TLS: testutil.SMTPStartTLS, Username: "rewind", Password: "pa55 word"})
	m := emailTo(t, s, TLSAuto)
	// Without credentials the server refuses the mail.
	if err := m.Send(context.Background(), failureEvent()); err == nil {
		t.Fatal("sent without AUTH to a server that requires it")
	}
	m.Username, m.Password = "rewind", "wrong"
	if err := m.Send(context.Background(), failureEvent()); err == nil || !strings.Contains(err.Error(), "AUTH") {
		t.Fatalf("wrong password: %v", err)
	}
	m.Password = "pa55 word"
	if err := m.Send(context.Background(), failureEvent()); err != nil {
		t.Fatal(err)
	}
	msgs := s.Messages(t)
	if len(msgs) != 1 || msgs[0].Login != "rewind" || !msgs[0].StartTLS {
		t.Fatalf("messages %+v, want one from rewind over STARTTLS", msgs)
	}
	// tls none: the server offers no AUTH before STARTTLS.
	m.TLS = TLSNone
	if err := m.Send(context.Background(), failureEvent()); err == nil || !strings.Contains(err.Error(), "no AUTH") {
		t.Fatalf("tls none with a username: %v", err)
	}
}

func decodeQP(t *testing.T, raw []byte) string {
	t.Helper()
	// The multipart reader undoes quoted-printable only inside parts;
	// mime/quotedprintable does it for a whole body.
	r := qpReader(raw)
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("quoted-printable body: %v", err)
	}
	return strings.ReplaceAll(string(b), "\r\n", "\n")
}
