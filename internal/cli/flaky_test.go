package cli

// A backup over a link that fails: the MinIO server killed in the middle
// of a backup and started again, and a link with latency on every
// request.

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/testutil"
)

// storedPacks returns the number and total size of the packs stored under
// prefix in bucket.
func storedPacks(t *testing.T, m *testutil.MinIO, bucket, prefix string) (n int, size int64) {
	t.Helper()
	for _, s := range bucketKeys(t, m, bucket, prefix+"/data/") {
		n++
		size += s
	}
	return n, size
}

// TestS3ServerKilledMidBackup kills MinIO with SIGKILL while a backup of
// a few hundred MiB is uploading, and starts it again on the same port and
// data folder two seconds later. The backup may ride it out with retries
// or fail with a clear error; either way the repository checks clean and
// the next backup completes, sending only what was not stored yet.
func TestS3ServerKilledMidBackup(t *testing.T) {
	m := testutil.StartMinIO(t)
	const bucket, prefix = "rewind-flaky", "repo"
	e := s3Env(t, m, bucket, prefix)
	e.mustRun("init")

	src := e.path("src")
	const files, fileSize = 12, 20 << 20 // 240 MiB, incompressible
	data := map[string][]byte{}
	for i := range files {
		data[fmt.Sprintf("f%02d.bin", i)] = randomBytes(uint64(1000+i), fileSize)
	}
	writeFiles(t, src, data)
	data = nil

	c := e.cmd("backup", "--json", src)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- c.Wait() }()
	t.Cleanup(func() { _ = c.Process.Kill() }) // if the test stops early

	// Kill the server once a few packs are stored: the backup is then well
	// under way, with more to upload.
	var packsAtKill int
	for packsAtKill < 4 {
		select {
		case err := <-exited:
			t.Fatalf("the backup ended (%v) before the server could be killed; make the test's data larger\n%s", err, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		packsAtKill, _ = storedPacks(t, m, bucket, prefix)
	}
	m.Kill()
	t.Logf("killed MinIO with %d packs stored", packsAtKill)
	time.Sleep(2 * time.Second)
	m.Restart(t)

	err := <-exited
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	t.Logf("the interrupted backup exited %d; stderr:\n%s", code, stderr.String())
	switch code {
	case 0:
		s := checkBackupJSON(t, result{args: c.Args[1:], stdout: stdout.Bytes(), stderr: stderr.Bytes()})
		logBackend(t, "interrupted backup (completed)", s)
		if !strings.Contains(stderr.String(), "retrying") {
			t.Errorf("the backup survived the server's death without logging a retry:\n%s", stderr.String())
		}
	case ExitFatal:
		msg := stderr.String()
		if !strings.Contains(msg, "rewind: ") || strings.Contains(msg, "panic") {
			t.Errorf("the failed backup's error is not a clear message:\n%s", msg)
		}
	default:
		t.Fatalf("the interrupted backup exited %d, want 0 or 1:\n%s", code, stderr.String())
	}

	e.mustRun("check", "--read-data")

	packsBefore, storedBefore := storedPacks(t, m, bucket, prefix)
	next := checkBackupJSON(t, e.mustRun("backup", "--json", src))
	logBackend(t, "next backup", next)
	packsAfter, storedAfter := storedPacks(t, m, bucket, prefix)
	newPacks := storedAfter - storedBefore
	t.Logf("source %d bytes; packs stored before the next backup: %d (%d bytes), after: %d (%d bytes); the next backup sent %d bytes",
		files*fileSize, packsBefore, storedBefore, packsAfter, storedAfter, next.Backend.BytesUp)
	// What the next backup sent is the packs that were missing, plus
	// index, snapshot and lock files: nothing already stored again.
	if next.Backend.BytesUp > newPacks+(1<<20) {
		t.Errorf("the next backup sent %d bytes, but only %d bytes of packs were missing", next.Backend.BytesUp, newPacks)
	}
	if code == 0 && next.Backend.BytesUp > 1<<20 {
		t.Errorf("after a completed backup, the next one sent %d bytes", next.Backend.BytesUp)
	}

	target := e.path("restore")
	e.mustRun("restore", "latest", "--target", target)
	sameFiles(t, src, target+src)
	e.mustRun("check", "--read-data")
}

// latencyProxy forwards TCP connections from a loopback port to target,
// holding back the first bytes of each request and of each response by
// delay: every request/response exchange takes at least twice delay.
type latencyProxy struct {
	l        net.Listener
	target   string
	delay    time.Duration
	requests atomic.Int64
	wg       sync.WaitGroup
}

func startLatencyProxy(t *testing.T, target string, delay time.Duration) *latencyProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &latencyProxy{l: l, target: target, delay: delay}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		l.Close()
		p.wg.Wait()
	})
	return p
}

func (p *latencyProxy) addr() string { return p.l.Addr().String() }

func (p *latencyProxy) serve() {
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		client, err := p.l.Accept()
		if err != nil {
			return
		}
		conns.Go(func() { p.handle(client) })
	}
}

// handle pumps one connection both ways. turn says which side spoke
// last, so that each side's first bytes after the other's are delayed.
func (p *latencyProxy) handle(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()
	var turn atomic.Int32 // 0: server spoke last (or nobody), 1: client
	pump := func(dst, src net.Conn, me int32) {
		buf := make([]byte, 64<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if turn.Swap(me) != me {
					if me == 1 {
						p.requests.Add(1)
					}
					time.Sleep(p.delay)
				}
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		// Unblock the other direction.
		client.Close()
		server.Close()
	}
	var wg sync.WaitGroup
	wg.Go(func() { pump(server, client, 1) })
	pump(client, server, 2)
	wg.Wait()
}

// TestS3Latency backs up and restores through a link that adds 20 ms each
// way to every request, with bandwidth limits on, and compares the
// restored files bit for bit.
func TestS3Latency(t *testing.T) {
	m := testutil.StartMinIO(t)
	bucket := m.NewBucket(t)
	proxy := startLatencyProxy(t, m.Endpoint, 20*time.Millisecond)
	e := s3Env(t, m, bucket, "slow").with("REWIND_REPOSITORY", "s3:http://"+proxy.addr()+"/"+bucket+"/slow")
	e.mustRun("init")

	src := e.path("src")
	files := map[string][]byte{"big.bin": randomBytes(42, 24<<20)}
	for i := range 50 {
		files[fmt.Sprintf("small/%02d", i)] = randomBytes(uint64(i), 1000*i)
	}
	writeFiles(t, src, files)
	s := checkBackupJSON(t, e.mustRun("backup", "--json", "--limit-upload", "40000", src))
	logBackend(t, "backup over 40 ms round trips", s)
	target := e.path("restore")
	e.mustRun("restore", "latest", "--target", target, "--limit-download", "40000")
	sameFiles(t, src, target+src)
	if n := proxy.requests.Load(); n < 10 {
		t.Fatalf("only %d requests went through the proxy", n)
	}
	t.Logf("%d requests through the proxy", proxy.requests.Load())
}
