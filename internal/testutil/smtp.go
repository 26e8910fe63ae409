package testutil

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

//go:embed smtpserver.py
var smtpServerScript []byte

// smtpStartTimeout bounds the wait for a starting SMTP server.
const smtpStartTimeout = 30 * time.Second

// SMTP encryption modes of a test server (SMTPOptions.TLS).
const (
	SMTPPlain           = ""                 // no TLS at all
	SMTPStartTLS        = "starttls"         // offers STARTTLS
	SMTPRequireStartTLS = "require-starttls" // refuses mail before STARTTLS
	SMTPImplicitTLS     = "tls"              // TLS from the first byte
)

// SMTPOptions change how StartSMTP sets up the server.
type SMTPOptions struct {
	// TLS is one of SMTPPlain, SMTPStartTLS, SMTPRequireStartTLS or
	// SMTPImplicitTLS. With TLS the server's certificate is for 127.0.0.1
	// and signed by a new CA whose PEM file is SMTP.CACert.
	TLS string
	// Username and Password, when set, make the server require AUTH
	// (PLAIN or LOGIN) with them before it takes mail. With TLS, AUTH is
	// offered only once the session is encrypted.
	Username, Password string
}

// SMTP is a real SMTP server (Debian's python3-aiosmtpd) run by a test on
// 127.0.0.1. Each message it accepts is kept for Messages.
type SMTP struct {
	// Addr is the server's address, 127.0.0.1:PORT.
	Addr string
	// CACert is the PEM file of the CA that signed the server's
	// certificate (TLS modes only).
	CACert string

	spool, logFile string

	mu     sync.Mutex
	cmd    *exec.Cmd     // mu
	exited chan struct{} // closed when cmd has exited; mu
}

// SMTPMessage is one message the server accepted.
type SMTPMessage struct {
	From string   `json:"mail_from"`
	To   []string `json:"rcpt_tos"`
	// Data is the message as sent: headers, blank line, body.
	Data string `json:"data"`
	// TLS says the session was encrypted when the message was sent;
	// StartTLS that it became so through STARTTLS.
	TLS      bool `json:"tls"`
	StartTLS bool `json:"starttls"`
	// Login is the user that authenticated, or "".
	Login string `json:"login"`
}

// StartSMTP starts an SMTP server for the test and stops it when the test
// ends. Without /usr/bin/python3 and its aiosmtpd module (scripts/smtp.sh
// installs them), or when the server does not start, the test is
// skipped, or failed under CI=true. $REWIND_PYTHON3 names another Python.
func StartSMTP(t testing.TB, opt SMTPOptions) *SMTP {
	t.Helper()
	py := os.Getenv("REWIND_PYTHON3")
	if py == "" {
		py = "/usr/bin/python3"
	}
	if out, err := exec.Command(py, "-c", "import aiosmtpd").CombinedOutput(); err != nil {
		unavailable(t, "SMTP server: %s cannot import aiosmtpd: %v %s(run scripts/smtp.sh to install python3-aiosmtpd)", py, err, out)
	}
	dir := t.TempDir()
	s := &SMTP{spool: filepath.Join(dir, "spool"), logFile: filepath.Join(dir, "smtp.log")}
	script := filepath.Join(dir, "smtpserver.py")
	if err := os.WriteFile(script, smtpServerScript, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(s.spool, 0o700); err != nil {
		t.Fatal(err)
	}
	args := []string{script, "--spool", s.spool}
	switch opt.TLS {
	case SMTPPlain:
		args = append(args, "--mode", "none")
	case SMTPStartTLS, SMTPRequireStartTLS, SMTPImplicitTLS:
		certs := filepath.Join(dir, "certs")
		if err := os.Mkdir(certs, 0o700); err != nil {
			t.Fatal(err)
		}
		s.CACert = filepath.Join(dir, "ca.pem")
		if err := writeCerts(certs, s.CACert); err != nil {
			t.Fatalf("make TLS certificates for the SMTP server: %v", err)
		}
		args = append(args, "--mode", opt.TLS,
			"--cert", filepath.Join(certs, "public.crt"), "--key", filepath.Join(certs, "private.key"))
	default:
		t.Fatalf("StartSMTP: unknown TLS mode %q", opt.TLS)
	}
	if opt.Username != "" {
		pwFile := filepath.Join(dir, "smtp-password")
		if err := os.WriteFile(pwFile, []byte(opt.Password), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--user", opt.Username, "--password-file", pwFile)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("SMTP server log (%s):\n%s", s.Addr, s.logTail())
		}
	})
	// The free port may be taken before the server binds it: try a few.
	var err error
	for try := 0; ; try++ {
		s.Addr, err = freePort()
		if err == nil {
			err = s.start(py, args)
		}
		if err == nil {
			return s
		}
		if try == 2 {
			unavailable(t, "start the SMTP server: %v\n%s", err, s.logTail())
		}
	}
}

// start runs the server on s.Addr and waits until it says it is ready.
func (s *SMTP) start(py string, args []string) error {
	_, port, _ := strings.Cut(s.Addr, ":")
	if _, err := strconv.Atoi(port); err != nil {
		return fmt.Errorf("bad address %q", s.Addr)
	}
	logf, err := os.OpenFile(s.logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(py, append(args, "--port", port)...)
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", py, err)
	}
	ready := make(chan bool, 1)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stdout)
		ready <- sc.Scan() && sc.Text() == "ready"
		for sc.Scan() { // keep the pipe drained
		}
		// Wait only once every read from the pipe is done.
		_ = cmd.Wait()
	}()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	select {
	case ok := <-ready:
		if !ok {
			s.Stop()
			return errors.New("the SMTP server exited during start")
		}
		return nil
	case <-time.After(smtpStartTimeout):
		s.Stop()
		return fmt.Errorf("the SMTP server did not start within %v", smtpStartTimeout)
	}
}

// Stop stops the server (SIGTERM, then SIGKILL after 10 s).
func (s *SMTP) Stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	stopProcess(cmd, exited)
}

// Messages returns the messages the server accepted so far, in order.
func (s *SMTP) Messages(t testing.TB) []SMTPMessage {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(s.spool, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	msgs := make([]SMTPMessage, 0, len(names))
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		var m SMTPMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("SMTP spool %s: %v", name, err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// logTail returns the last lines of the server's stderr.
func (s *SMTP) logTail() string {
	b, err := os.ReadFile(s.logFile)
	if err != nil {
		return "(no SMTP server log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}
