package cli

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
			m.waitKilled()
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
	// The mount is in the table before go-fuse's WaitMount has done: it
	// then polls a file of the new mount from the mounting process
	// itself. Killed in between, that process can never exit (its own
	// FUSE request has no one left to answer it): wait for the line it
	// prints once mounted, unless it was told to print nothing.
	if !slices.ContainsFunc(args, func(a string) bool { return a == "--json" || a == "--quiet" || a == "-q" }) {
		for deadline := time.Now().Add(60 * time.Second); !strings.Contains(m.log(), "repository mounted at"); {
			if time.Now().After(deadline) {
				t.Fatalf("rewind mount did not say it was mounted after 60 s: %s", m.log())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return m
}

// waitKilled waits for a killed mount process; one stuck on its own
// mount's FUSE connection is freed by aborting that connection
// (/sys/fs/fuse/connections), so that no test waits forever.
func (m *mounted) waitKilled() {
	select {
	case <-m.exited:
		return
	case <-time.After(10 * time.Second):
	}
	abortFUSE(m.dir)
	<-m.exited
}

// abortFUSE aborts the FUSE connection of the mount at dir, if any,
// mounting the fusectl filesystem first where it is not (root only).
func abortFUSE(dir string) {
	const conns = "/sys/fs/fuse/connections"
	if ents, err := os.ReadDir(conns); err == nil && len(ents) == 0 {
		syscall.Mount("fusectl", conns, "fusectl", 0, "")
	}
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == dir {
			_, minor, _ := strings.Cut(f[2], ":")
			os.WriteFile(filepath.Join(conns, minor, "abort"), []byte("1"), 0o200)
		}
	}
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
		m.cmd.Process.Kill()
		m.waitKilled()
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
