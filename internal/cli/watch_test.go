package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/testutil"
	"golang.org/x/sys/unix"
)

type jsonWatchSnapshot struct {
	MessageType     string    `json:"message_type"`
	SnapshotID      string    `json:"snapshot_id"`
	Parent          string    `json:"parent"`
	Time            time.Time `json:"time"`
	Committed       time.Time `json:"committed"`
	Reason          string    `json:"reason"`
	Full            bool      `json:"full"`
	Paths           int       `json:"paths"`
	Rescanned       int       `json:"rescanned"`
	InFlux          []string  `json:"in_flux"`
	LagSeconds      float64   `json:"lag_seconds"`
	DurationSeconds float64   `json:"duration_seconds"`
	FilesNew        int64     `json:"files_new"`
	FilesChanged    int64     `json:"files_changed"`
	BytesRead       int64     `json:"bytes_read"`
	DataAdded       int64     `json:"data_added"`
	DataAddedPacked int64     `json:"data_added_packed"`
	SQLiteCaptured  int64     `json:"sqlite_captured"`
}

type jsonWatchStatus struct {
	Paths            []string  `json:"paths"`
	Repository       string    `json:"repository"`
	Host             string    `json:"hostname"`
	PID              int       `json:"pid"`
	Backend          string    `json:"backend"`
	State            string    `json:"state"`
	Started          time.Time `json:"started"`
	Updated          time.Time `json:"updated"`
	LastSnapshot     string    `json:"last_snapshot"`
	LastSnapshotTime time.Time `json:"last_snapshot_time"`
	LastLagSeconds   float64   `json:"last_lag_seconds"`
	PendingChanges   int       `json:"pending_changes"`
	OldestPending    time.Time `json:"oldest_pending"`
	Snapshots        int64     `json:"snapshots"`
	FullScans        int64     `json:"full_scans"`
	Overflows        int64     `json:"overflows"`
	LastError        string    `json:"last_error"`
	Running          bool      `json:"running"`
	LagSeconds       float64   `json:"lag_seconds"`
}

func init() {
	schemaTypes["watch.snapshot"] = reflect.TypeFor[jsonWatchSnapshot]()
	schemaTypes["watch.status"] = reflect.TypeFor[jsonWatchStatus]()
}

// watchProc is a `rewind watch --json` running in the background, with the
// snapshot lines it printed so far.
type watchProc struct {
	t      *testing.T
	e      *env
	cmd    *exec.Cmd
	stderr bytes.Buffer
	done   chan struct{}

	mu    sync.Mutex
	snaps []jsonWatchSnapshot
	bad   []string // lines that are not documented snapshot lines
}

// startWatch starts rewind watch --json with args and fails the test if it
// is still running at the end (it is killed then).
func startWatch(t *testing.T, e *env, args ...string) *watchProc {
	t.Helper()
	w := &watchProc{t: t, e: e, done: make(chan struct{})}
	w.cmd = e.cmd(append([]string{"watch", "--json"}, args...)...)
	out, err := w.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	w.cmd.Stderr = &w.stderr
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go w.read(out)
	t.Cleanup(func() {
		select {
		case <-w.done:
		default:
			w.cmd.Process.Signal(syscall.SIGKILL)
			<-w.done
			w.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("rewind watch stderr:\n%s", w.stderr.String())
		}
	})
	return w
}

func (w *watchProc) read(out io.Reader) {
	defer close(w.done)
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := append([]byte(nil), sc.Bytes()...)
		var s jsonWatchSnapshot
		d := json.NewDecoder(bytes.NewReader(line))
		d.DisallowUnknownFields()
		err := d.Decode(&s)
		w.mu.Lock()
		if err != nil || s.MessageType != "snapshot" {
			w.bad = append(w.bad, string(line))
		} else {
			w.snaps = append(w.snaps, s)
		}
		w.mu.Unlock()
	}
}

func (w *watchProc) snapshots() []jsonWatchSnapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.snaps)
}

// waitSnapshots waits until at least n snapshots were reported.
func (w *watchProc) waitSnapshots(n int) []jsonWatchSnapshot {
	w.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if s := w.snapshots(); len(s) >= n {
			return s
		}
		select {
		case <-w.done:
			w.t.Fatalf("rewind watch ended before its snapshot %d:\n%s", n, w.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("no snapshot %d from rewind watch:\n%s", n, w.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitMatch polls the snapshots rewind watch reports until one, restored,
// holds exactly the regular files of src. The bound is generous: it
// catches a change never captured, not a slow capture.
func (w *watchProc) waitMatch(src string) jsonWatchSnapshot {
	w.t.Helper()
	want := readFiles(w.t, src)
	deadline := time.Now().Add(30 * time.Second)
	tried := map[string]string{}
	for {
		sns := w.snapshots()
		if len(sns) > 0 {
			last := sns[len(sns)-1]
			if _, done := tried[last.SnapshotID]; !done {
				target := w.e.path("check-" + last.SnapshotID[:12])
				w.e.mustRun("restore", last.SnapshotID, "--target", target)
				got := map[string][]byte{}
				if _, err := os.Stat(target + src); err == nil {
					got = readFiles(w.t, target+src)
				}
				diff := filesDiff(want, got)
				if diff == "" {
					return last
				}
				tried[last.SnapshotID] = diff
			}
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("no snapshot holds the changes; the last ones differ:\n%v\nstderr:\n%s", tried, w.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// filesDiff says how got differs from want, "" when it does not.
func filesDiff(want, got map[string][]byte) string {
	var d []string
	for _, name := range slices.Sorted(maps.Keys(want)) {
		g, ok := got[name]
		switch {
		case !ok:
			d = append(d, "missing "+name)
		case !bytes.Equal(g, want[name]):
			d = append(d, "differs "+name)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			d = append(d, "extra "+name)
		}
	}
	sort.Strings(d)
	return strings.Join(d, ", ")
}

// stop sends sig and waits for rewind watch to exit.
func (w *watchProc) stop(sig syscall.Signal) int {
	w.t.Helper()
	if err := w.cmd.Process.Signal(sig); err != nil {
		w.t.Fatal(err)
	}
	select {
	case <-w.done:
	case <-time.After(time.Minute):
		w.t.Fatalf("rewind watch did not exit after %v:\n%s", sig, w.stderr.String())
	}
	err := w.cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		w.t.Fatal(err)
	}
	return 0
}

// checkLines checks every stdout line against docs/JSON.md.
func (w *watchProc) checkLines() {
	w.t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, b := range w.bad {
		w.t.Errorf("rewind watch --json printed an undocumented line: %s", b)
	}
	for _, s := range w.snaps {
		raw, _ := json.Marshal(s)
		var generic map[string]any
		json.Unmarshal(raw, &generic)
		if s.Parent == "" {
			delete(generic, "parent")
		}
		if len(s.InFlux) == 0 {
			delete(generic, "in_flux")
		}
		for _, err := range validate(schema(w.t, "watch.snapshot"), generic, "") {
			w.t.Errorf("watch.snapshot: %v", err)
		}
	}
}

// watchTree writes the tree the watch tests start from.
func watchTree(t *testing.T, src string) {
	files := map[string][]byte{}
	for i := range 40 {
		files[fmt.Sprintf("d%d/f%02d.txt", i%4, i)] = []byte(fmt.Sprintf("file %d\n", i))
	}
	files["big.bin"] = randomBytes(11, 300<<10)
	writeFiles(t, src, files)
}

// TestWatchCapturesEveryChange runs rewind watch with fanotify (the
// default, as root) and with --backend inotify, changes the tree in every
// way — a write, a new file, a rename, a removal, a new nested directory
// whose files are written at once, a rewrite in place of part of a large
// file — and waits for a snapshot that restores to exactly the new tree.
// Snapshots after the first are partial, tagged "watch", and their lines
// follow docs/JSON.md.
func TestWatchCapturesEveryChange(t *testing.T) {
	t.Parallel()
	backends := []string{"inotify"}
	if testutil.IsRoot() {
		backends = append(backends, "fanotify")
	}
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			t.Parallel()
			e := newRepo(t, 0)
			src := e.path("src")
			watchTree(t, src)
			w := startWatch(t, e, "--backend", b, "--interval", "200ms", "--settle", "200ms", src)
			first := w.waitSnapshots(1)[0]
			if !first.Full || first.Reason != "start" {
				t.Errorf("first snapshot: full %v, reason %q", first.Full, first.Reason)
			}
			p := func(rel string) string { return filepath.Join(src, rel) }
			writeFiles(t, src, map[string][]byte{"d1/f01.txt": []byte("rewritten\n"), "d2/new.txt": []byte("new\n")})
			if err := os.Rename(p("d3/f03.txt"), p("d0/moved.txt")); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(p("d0/f04.txt")); err != nil {
				t.Fatal(err)
			}
			for i := range 10 {
				writeFiles(t, src, map[string][]byte{fmt.Sprintf("nest/a/b/c/f%d", i): []byte(fmt.Sprintf("nested %d\n", i))})
			}
			f, err := os.OpenFile(p("big.bin"), os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte("patched in place"), 100<<10); err != nil {
				t.Fatal(err)
			}
			f.Close()
			last := w.waitMatch(src)
			if last.Full {
				t.Errorf("snapshot %s of the changes walked everything", last.SnapshotID[:8])
			}
			if code := w.stop(syscall.SIGTERM); code != 0 {
				t.Errorf("exit status %d after SIGTERM", code)
			}
			w.checkLines()
			var sns []jsonSnapshot
			decodeStrict(t, e.mustRun("snapshots", "--json").stdout, &sns)
			for _, sn := range sns {
				if !slices.Contains(sn.Tags, "watch") {
					t.Errorf("snapshot %s has tags %q", sn.ShortID, sn.Tags)
				}
			}
		})
	}
}

// TestWatchOverflowLosesNothing gives rewind watch a tiny event queue
// (the sysctl is read when the queue is made, and restored as soon as the
// watcher has started), stops it with SIGSTOP, makes far more changes
// than the queue holds, and lets it go on: the queue overflows, and yet
// the next snapshots hold every change. --status counts the overflow.
func TestWatchOverflowLosesNothing(t *testing.T) {
	testutil.RequireRoot(t)
	for _, b := range []string{"inotify", "fanotify"} {
		t.Run(b, func(t *testing.T) {
			e := newRepo(t, 0)
			src := e.path("src")
			watchTree(t, src)
			sysctl := fmt.Sprintf("/proc/sys/fs/%s/max_queued_events", b)
			old, err := os.ReadFile(sysctl)
			if err != nil {
				t.Skipf("no %s: %v", sysctl, err)
			}
			restore := sync.OnceFunc(func() {
				if err := os.WriteFile(sysctl, old, 0); err != nil {
					t.Errorf("restore %s: %v", sysctl, err)
				}
			})
			t.Cleanup(restore)
			if err := os.WriteFile(sysctl, []byte("16"), 0); err != nil {
				t.Fatal(err)
			}
			w := startWatch(t, e, "--backend", b, "--interval", "200ms", "--settle", "100ms", src)
			w.waitSnapshots(1)
			restore()

			if err := w.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			// In watched directories: a new directory would be one event.
			for i := range 150 {
				writeFiles(t, src, map[string][]byte{fmt.Sprintf("d%d/flood%03d", i%4, i): []byte(fmt.Sprintf("flood %d\n", i))})
			}
			writeFiles(t, src, map[string][]byte{"d1/f05.txt": []byte("changed during the flood\n")})
			if err := os.Remove(filepath.Join(src, "d2/f06.txt")); err != nil {
				t.Fatal(err)
			}
			if err := w.cmd.Process.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			w.waitMatch(src)
			var st []jsonWatchStatus
			checkDoc(t, "watch.status", e.mustRun("watch", "--status", "--json").stdout, &st)
			if len(st) != 1 || st[0].Overflows == 0 || !st[0].Running || st[0].Backend != b {
				t.Errorf("status after the flood: %+v; want one running %s watcher that counted an overflow", st, b)
			}
			if code := w.stop(syscall.SIGTERM); code != 0 {
				t.Errorf("exit status %d after SIGTERM", code)
			}
			if !strings.Contains(w.stderr.String(), "overflowed") {
				t.Errorf("no overflow warning logged:\n%s", w.stderr.String())
			}
		})
	}
}

// TestWatchFullScanCatchesHiddenChange: a change written through a shared
// memory mapping raises no event (and closing the descriptor raises none
// while the mapping holds the file). Only --full-scan-every can catch it,
// and does.
func TestWatchFullScanCatchesHiddenChange(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 0)
	src := e.path("src")
	watchTree(t, src)
	mapped := filepath.Join(src, "mapped")
	writeFiles(t, src, map[string][]byte{"mapped": []byte("0123456789")})
	w := startWatch(t, e, "--interval", "200ms", "--full-scan-every", "1s", src)
	w.waitSnapshots(1)
	fd, err := unix.Open(mapped, unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(fd, 0, 10, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	unix.Close(fd)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m) // unmapping closes the file: an event
	copy(m, "ABCDEFGHIJ")
	if err := unix.Msync(m, unix.MS_SYNC); err != nil {
		t.Fatal(err)
	}
	got := w.waitMatch(src)
	if !got.Full || got.Reason != "full scan" {
		t.Errorf("the hidden change was captured by a %q snapshot (full %v), not the full scan", got.Reason, got.Full)
	}
	if code := w.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit status %d after SIGTERM", code)
	}
}

// TestWatchSIGTERMSavesPending: with a change pending and the next
// capture far away, SIGTERM saves it and exits 0; --status then shows the
// watcher stopped with nothing pending.
func TestWatchSIGTERMSavesPending(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 0)
	src := e.path("src")
	watchTree(t, src)
	w := startWatch(t, e, "--interval", "1h", src)
	w.waitSnapshots(1)
	writeFiles(t, src, map[string][]byte{"late.txt": []byte("written just before SIGTERM\n")})
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st []jsonWatchStatus
		checkDoc(t, "watch.status", e.mustRun("watch", "--status", "--json", src).stdout, &st)
		// The first snapshot is printed before the watcher's status counts
		// it; until then the pending count is the first snapshot's own.
		if len(st) == 1 && st[0].PendingChanges > 0 && st[0].Snapshots >= 1 {
			if st[0].OldestPending.IsZero() || st[0].LagSeconds < 0 {
				t.Errorf("pending change without its time: %+v", st[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the change never showed as pending: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code := w.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit status %d after SIGTERM:\n%s", code, w.stderr.String())
	}
	sns := w.snapshots()
	if len(sns) != 2 {
		t.Fatalf("%d snapshots, want the first and the one saved on SIGTERM", len(sns))
	}
	target := e.path("restore")
	e.mustRun("restore", sns[1].SnapshotID, "--target", target)
	sameFiles(t, src, target+src)
	var st []jsonWatchStatus
	checkDoc(t, "watch.status", e.mustRun("watch", "--status", "--json").stdout, &st)
	if len(st) != 1 || st[0].Running || st[0].State != "stopped" || st[0].PendingChanges != 0 || st[0].LastSnapshot != sns[1].SnapshotID {
		t.Errorf("status after SIGTERM: %+v", st)
	}
	human := e.mustRun("watch", "--status")
	if !strings.Contains(string(human.stdout), src) || !strings.Contains(string(human.stdout), "stopped") {
		t.Errorf("watch --status:\n%s", human.stdout)
	}
}

// TestWatchInFlux: a file written without pause is captured after
// --settle as it is, and the snapshot line names it in in_flux.
func TestWatchInFlux(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 0)
	src := e.path("src")
	watchTree(t, src)
	w := startWatch(t, e, "--interval", "200ms", "--settle", "300ms", src)
	w.waitSnapshots(1)
	busy := filepath.Join(src, "busy.log")
	f, err := os.Create(busy)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := f.WriteString("another line\n"); err != nil {
			t.Fatal(err)
		}
		for _, s := range w.snapshots() {
			if slices.Contains(s.InFlux, busy) {
				w.stop(syscall.SIGTERM)
				w.checkLines()
				// The snapshot itself records it: ls shows the flag.
				lines := jsonLines(t, e.mustRun("ls", "--json", s.SnapshotID+":"+busy))
				var n jsonNode
				decodeStrict(t, lines[len(lines)-1].raw, &n)
				if !slices.Contains(n.Flags, "in-flux") {
					t.Errorf("ls --json of %s in snapshot %s: flags %v, want in-flux", busy, s.SnapshotID[:8], n.Flags)
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the busy file was never captured in flux: %+v", w.snapshots())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
