package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"os"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/plan"
)

// Email TLS modes (plan's notify.email.tls).
const (
	// TLSAuto, the default, upgrades with STARTTLS when the server
	// offers it, and sends in clear text when it does not.
	TLSAuto = ""
	// TLSStartTLS requires STARTTLS: a server that does not offer it is
	// an error, and nothing is sent.
	TLSStartTLS = "starttls"
	// TLSImplicit speaks TLS from the first byte (SMTPS, port 465).
	TLSImplicit = "tls"
	// TLSNone never encrypts.
	TLSNone = "none"
)

// defaultSMTPTimeout bounds one delivery when ctx has no deadline.
const defaultSMTPTimeout = 30 * time.Second

// Email sends each event as a plain-text message over SMTP.
//
// Encryption follows TLS (TLSAuto, TLSStartTLS, TLSImplicit, TLSNone);
// the server's certificate is checked against the system's CAs, or
// TLSConfig's. With a Username, the message is sent only after AUTH
// PLAIN; Go's net/smtp refuses to send the password over an unencrypted
// connection except to localhost, so a remote server needs TLS.
type Email struct {
	// Addr is the server, host:port.
	Addr string
	From string
	To   []string
	// Username and Password authenticate with AUTH PLAIN when Username is
	// set.
	Username, Password string
	TLS                string
	// TLSConfig, when not nil, is the base of the client's TLS
	// settings (for example a RootCAs with a private CA); ServerName is
	// filled in from Addr when empty.
	TLSConfig *tls.Config
	// Hello is the name given in EHLO and used in Message-ID (the
	// event's host when empty).
	Hello string
}

// newEmailFromPlan builds an Email from the plan, reading the password
// file now: a plan reload reads it again.
func newEmailFromPlan(c *plan.Email) (*Email, error) {
	m := &Email{Addr: c.SMTP, From: c.From, To: c.To, Username: c.Username, TLS: c.TLS}
	if c.PasswordFile != "" {
		pw, err := readSecret(c.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("notify.email.password_file: %w", err)
		}
		m.Password = pw
	}
	if ca := os.Getenv("REWIND_CACERT"); ca != "" {
		cfg, err := tlsConfigWithCA(ca)
		if err != nil {
			return nil, fmt.Errorf("notify.email: REWIND_CACERT: %w", err)
		}
		m.TLSConfig = cfg
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("notify.email: %w", err)
	}
	return m, nil
}

// check validates the settings.
func (m *Email) check() error {
	if _, _, err := net.SplitHostPort(m.Addr); err != nil {
		return fmt.Errorf("smtp %q: want host:port", m.Addr)
	}
	if _, err := mail.ParseAddress(m.From); err != nil {
		return fmt.Errorf("from %q: %w", m.From, err)
	}
	if len(m.To) == 0 {
		return errors.New("to: no recipient")
	}
	for _, to := range m.To {
		if _, err := mail.ParseAddress(to); err != nil {
			return fmt.Errorf("to %q: %w", to, err)
		}
	}
	switch m.TLS {
	case TLSAuto, TLSStartTLS, TLSImplicit, TLSNone:
	default:
		return fmt.Errorf("tls %q: want starttls, tls or none", m.TLS)
	}
	if m.Username != "" && m.Password == "" {
		return errors.New("username without password_file")
	}
	return nil
}

// Send delivers e's message to every recipient.
func (m *Email) Send(ctx context.Context, e Event) error {
	if err := m.check(); err != nil {
		return err
	}
	hello := m.Hello
	if hello == "" {
		hello = e.Host
	}
	if hello == "" {
		hello = "localhost"
	}
	msg, err := m.message(e, hello)
	if err != nil {
		return err
	}
	if err := m.deliver(ctx, hello, msg); err != nil {
		return fmt.Errorf("smtp %s: %w", m.Addr, err)
	}
	return nil
}

// deliver runs one SMTP session.
func (m *Email) deliver(ctx context.Context, hello string, msg []byte) error {
	host, _, _ := net.SplitHostPort(m.Addr)
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if m.TLSConfig != nil {
		cfg = m.TLSConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	var conn net.Conn
	var err error
	if m.TLS == TLSImplicit {
		d := &tls.Dialer{Config: cfg}
		conn, err = d.DialContext(ctx, "tcp", m.Addr)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", m.Addr)
	}
	if err != nil {
		return err
	}
	// net/smtp takes no context: a deadline on the connection bounds the
	// session, and closing it ends the session when ctx is cancelled.
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(defaultSMTPTimeout)
	}
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	if err := c.Hello(hello); err != nil {
		return err
	}
	if m.TLS == TLSAuto || m.TLS == TLSStartTLS {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(cfg); err != nil {
				return fmt.Errorf("STARTTLS: %w", err)
			}
		} else if m.TLS == TLSStartTLS {
			return errors.New("the server does not offer STARTTLS (tls: starttls requires it)")
		}
	}
	if m.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return errors.New("the server offers no AUTH, and a username is set")
		}
		if err := c.Auth(smtp.PlainAuth("", m.Username, m.Password, host)); err != nil {
			return fmt.Errorf("AUTH: %w", err)
		}
	}
	if err := c.Mail(m.From); err != nil {
		return err
	}
	for _, to := range m.To {
		if err := c.Rcpt(to); err != nil {
			return fmt.Errorf("RCPT TO %s: %w", to, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// message is the RFC 5322 message for e: headers, then a quoted-printable
// UTF-8 text body.
func (m *Email) message(e Event, hello string) ([]byte, error) {
	var b bytes.Buffer
	id := make([]byte, 12)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	date := e.Time
	if date.IsZero() {
		date = time.Now()
	}
	// No value may break out of its header line.
	oneLine := strings.NewReplacer("\r", " ", "\n", " ")
	header := func(name, value string) { fmt.Fprintf(&b, "%s: %s\r\n", name, oneLine.Replace(value)) }
	header("From", m.From)
	header("To", strings.Join(m.To, ", "))
	header("Subject", mime.QEncoding.Encode("utf-8", Subject(e)))
	header("Date", date.Format(time.RFC1123Z))
	header("Message-ID", fmt.Sprintf("<%s.%d@%s>", hex.EncodeToString(id), date.Unix(), hello))
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	header("Auto-Submitted", "auto-generated")
	header("X-Rewind-Event", e.Kind)
	header("X-Rewind-Job", e.Job)
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	body := strings.ReplaceAll(Body(e), "\n", "\r\n")
	if _, err := qp.Write([]byte(body)); err != nil {
		return nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// tlsConfigWithCA is a TLS configuration that trusts the system's CAs and
// those in the PEM file.
func tlsConfigWithCA(file string) (*tls.Config, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate", file)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}
