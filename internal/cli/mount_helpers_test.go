package cli

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/testutil"
)

// mounted is one running `rewind mount`.
type mounted struct {
	t      *testing.T
	dir    string
	cmd    *exec.Cmd
	mu     sync.Mutex
	stderr bytes.Buffer
	exited chan struct{}
	err    error
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// isMountpoint reports whether dir is a mount (of any filesystem) now.
func isMountpoint(t *testing.T, dir string) bool {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) > 4 && fields[4] == dir {
			return true
		}
	}
	return false
}

// startMount runs rewind mount dir args... and waits until dir is mounted;
// the test's cleanup stops it (SIGTERM) and unmounts what is left.
func startMount(t *testing.T, e *env, dir string, args ...string) *mounted {
	t.Helper()
	fusermount := testutil.RequireFUSE(t)
	m := &mounted{t: t, dir: dir, cmd: e.cmd(append([]string{"mount", dir}, args...)...), exited: make(chan struct{})}
	m.cmd.Stderr = lockedWriter{&m.mu, &m.stderr}
	m.cmd.Stdout = lockedWriter{&m.mu, &m.stderr}
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { m.err = m.cmd.Wait(); close(m.exited) }()
	t.Cleanup(func() {
		m.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.exited:
		case <-time.After(30 * time.Second):
			m.cmd.Process.Kill()
			<-m.exited
		}
		if isMountpoint(t, dir) {
			exec.Command(fusermount, "-u", "-z", dir).Run()
		}
	})
	for deadline := time.Now().Add(60 * time.Second); !isMountpoint(t, dir); {
		select {
		case <-m.exited:
			t.Fatalf("rewind mount exited before mounting (%v): %s", m.err, m.log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not mounted after 60 s: %s", dir, m.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return m
}

func (m *mounted) log() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stderr.String()
}

// wait waits for the command to end and returns its exit code.
func (m *mounted) wait() int {
	m.t.Helper()
	select {
	case <-m.exited:
	case <-time.After(30 * time.Second):
		m.t.Fatalf("rewind mount still running 30 s after being told to stop: %s", m.log())
	}
	if ee, ok := m.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if m.err != nil {
		m.t.Fatal(m.err)
	}
	return 0
}

// rsyncDiff compares a with b (directories) as rsync -aHAX --checksum
// would copy a onto b, and returns what it would change: nothing when
// they hold the same names, contents, modes, owners, times, hard links,
// ACLs and xattrs.
func rsyncDiff(t *testing.T, a, b string) string {
	t.Helper()
	rsync := testutil.RequireTool(t, "rsync")
	out, err := exec.Command(rsync, "-aHAXn", "--checksum", "--delete", "--itemize-changes", a+"/", b+"/").CombinedOutput()
	if err != nil {
		t.Fatalf("rsync %s %s: %v: %s", a, b, err, out)
	}
	return string(out)
}
