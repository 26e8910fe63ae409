package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/testutil"
)

// jsonInstant is the strict copy of instant's JSON summary (docs/JSON.md).
type jsonInstant struct {
	MessageType        string  `json:"message_type"`
	SnapshotID         string  `json:"snapshot_id"`
	Accel              string  `json:"accel"`
	StateDir           string  `json:"state_dir"`
	SerialLog          string  `json:"serial_log"`
	FirstOutputSeconds float64 `json:"first_output_seconds"`
	RestoreSeconds     float64 `json:"restore_seconds,omitempty"`
	MigratedTo         string  `json:"migrated_to,omitempty"`
}

// jsonExport is the strict copy of export's JSON summary (docs/JSON.md).
type jsonExport struct {
	MessageType     string  `json:"message_type"`
	SnapshotID      string  `json:"snapshot_id"`
	Target          string  `json:"target"`
	Format          string  `json:"format"`
	Size            int64   `json:"size"`
	BytesWritten    int64   `json:"bytes_written"`
	DurationSeconds float64 `json:"duration_seconds"`
	BootMode        string  `json:"boot_mode"`
	Hostname        string  `json:"hostname"`
	Phases          []struct {
		Name       string `json:"name"`
		DurationNS int64  `json:"duration_ns"`
	} `json:"phases"`
	Disks []struct {
		Target       string `json:"target"`
		Size         int64  `json:"size"`
		BytesWritten int64  `json:"bytes_written"`
		RecordedDisk string `json:"recorded_disk"`
	} `json:"disks"`
}

// guestTimeout bounds each wait for the guest under TCG on a busy machine.
const guestTimeout = 150 * time.Second

// guestRepo backs up the test guest's disk into a new repository.
func guestRepo(t *testing.T) *env {
	t.Helper()
	testutil.RequireFUSE(t)
	testutil.RequireQEMU(t)
	disk := testutil.GuestDisk(t)
	e := newRepo(t, 0)
	e.mustRun("backup", "-q", "--image", disk)
	return e
}

// instantRun is a running rewind instant.
type instantRun struct {
	cmd    *exec.Cmd
	stdout strings.Builder
	con    *testutil.Console
	exited chan struct{}
	err    error
}

// startInstant runs rewind instant args...; its standard error and (with
// --json, where the console goes there) the guest's console are read by
// a Console, its standard output collected. The cleanup stops it.
func startInstant(t *testing.T, e *env, args ...string) *instantRun {
	t.Helper()
	ir := &instantRun{cmd: e.cmd(append([]string{"instant"}, args...)...), exited: make(chan struct{})}
	in, err := ir.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	errPipe, err := ir.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	ir.cmd.Stdout = &ir.stdout
	if err := ir.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ir.con = testutil.NewConsole(errPipe, in)
	go func() { ir.err = ir.cmd.Wait(); close(ir.exited) }()
	t.Cleanup(func() {
		ir.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-ir.exited:
		case <-time.After(30 * time.Second):
			ir.cmd.Process.Kill()
			<-ir.exited
		}
	})
	return ir
}

// A backed-up guest boots from the repository with instant: its marker
// and its disk check come through the repository; --migrate copies the
// disk to a file while the guest runs, then the repository is unmounted
// and the guest keeps working on the copy and shuts down cleanly. The
// copy then holds the guest's disk with its last write.
func TestInstantBootMigrate(t *testing.T) {
	e := guestRepo(t)
	state, dest := e.path("state"), e.path("dest.img")
	ir := startInstant(t, e, "latest", "--json", "--memory", "256", "--time-restore",
		"--state-dir", state, "--migrate", dest)
	c := ir.con
	c.Expect(t, testutil.GuestMarker, guestTimeout)
	if got := c.Expect(t, "REWIND-CHECK ", guestTimeout); got != "REWIND-CHECK "+testutil.GuestCheckSum {
		t.Fatalf("the guest read its check file wrong through the repository: %s, want %s", got, testutil.GuestCheckSum)
	}
	c.Expect(t, testutil.GuestReady, guestTimeout)
	c.Expect(t, "no longer depends on the repository", guestTimeout)
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mounts), state) {
		t.Fatalf("the repository is still mounted in %s after the migration:\n%s", state, mounts)
	}
	c.Send(t, "write after.txt written-after-migration")
	c.Expect(t, "REWIND-OK write after.txt", guestTimeout)
	c.Send(t, "sum "+testutil.GuestCheckFile)
	if got := c.Expect(t, "REWIND-SUM ", guestTimeout); got != "REWIND-SUM "+testutil.GuestCheckFile+" "+testutil.GuestCheckSum {
		t.Fatalf("after the migration: %s", got)
	}
	c.Send(t, "poweroff")
	c.Expect(t, testutil.GuestPoweroff, guestTimeout)
	select {
	case <-ir.exited:
	case <-time.After(guestTimeout):
		t.Fatalf("instant still runs after the guest powered off:\n%s", c.Text())
	}
	if ir.err != nil {
		t.Fatalf("instant: %v\n%s", ir.err, c.Text())
	}
	var sum jsonInstant
	decodeStrict(t, []byte(ir.stdout.String()), &sum)
	if sum.MigratedTo != dest || sum.FirstOutputSeconds <= 0 || sum.RestoreSeconds <= 0 || sum.Accel == "" {
		t.Errorf("summary %+v", sum)
	}
	// The copy is the guest's disk: the FAT partition (at 1 MiB) holds
	// the check file and what the guest wrote after the migration.
	for name, want := range map[string]string{"after.txt": "written-after-migration\n"} {
		out, err := exec.Command("mtype", "-i", dest+"@@1M", "::"+name).CombinedOutput()
		if err != nil || string(out) != want {
			t.Errorf("%s in the copy: %q, %v; want %q", name, out, err, want)
		}
	}
	out, err := exec.Command("mcopy", "-i", dest+"@@1M", "::"+testutil.GuestCheckFile, filepath.Join(t.TempDir(), "c")).CombinedOutput()
	if err != nil {
		t.Errorf("check file in the copy: %v: %s", err, out)
	}
}

// export --qcow2 writes a standalone disk that boots and reads its check
// file; an existing target is refused.
func TestExportQcow2Boots(t *testing.T) {
	e := guestRepo(t)
	out := e.path("guest.qcow2")
	r := e.mustRun("export", "--json", "--qcow2", out, "latest")
	var sum jsonExport
	decodeStrict(t, r.stdout, &sum)
	if sum.Target != out || sum.Size != testutil.GuestDiskSize || sum.Format != "qcow2" || sum.BytesWritten <= 0 || sum.BytesWritten > 64<<20 {
		t.Errorf("summary %+v", sum)
	}
	r = e.expectCode(1, "export", "--qcow2", out, "latest")
	if !strings.Contains(string(r.stderr), "exists") {
		t.Errorf("an existing target: %s", r.stderr)
	}
	c, wait := testutil.BootGuest(t, out, "qcow2")
	c.Expect(t, testutil.GuestMarker, guestTimeout)
	if got := c.Expect(t, "REWIND-CHECK ", guestTimeout); got != "REWIND-CHECK "+testutil.GuestCheckSum {
		t.Fatalf("the exported disk: %s, want %s", got, testutil.GuestCheckSum)
	}
	c.Expect(t, testutil.GuestReady, guestTimeout)
	c.Send(t, "poweroff")
	c.Expect(t, testutil.GuestPoweroff, guestTimeout)
	if err := wait(guestTimeout); err != nil {
		t.Fatal(err)
	}
}

// instant and export refuse a snapshot of paths, a wrong :IMAGE and an
// existing --migrate file, and say which package to install when QEMU or
// FUSE is missing.
func TestInstantBadInput(t *testing.T) {
	testutil.RequireFUSE(t)
	testutil.RequireQEMU(t)
	e := newRepo(t, 0)
	writeFiles(t, e.path("src"), map[string][]byte{"a": []byte("a")})
	e.mustRun("backup", "-q", e.path("src"))
	for _, args := range [][]string{
		{"instant", "latest"},
		{"export", "--qcow2", e.path("x.qcow2"), "latest"},
	} {
		r := e.expectCode(1, args...)
		if !strings.Contains(string(r.stderr), "is not a device or image backup") {
			t.Errorf("%v: %s", args, r.stderr)
		}
	}
	if _, err := os.Stat(e.path("x.qcow2")); err == nil {
		t.Error("export left a file for a snapshot of paths")
	}
	img := e.path("small.img")
	if err := os.WriteFile(img, []byte(strings.Repeat("x", 4096)), 0o644); err != nil {
		t.Fatal(err)
	}
	e.mustRun("backup", "-q", "--image", img)
	r := e.expectCode(1, "instant", "latest:other.img")
	if !strings.Contains(string(r.stderr), "holds the image "+img) {
		t.Errorf("a wrong :IMAGE: %s", r.stderr)
	}
	r = e.with("PATH", "/nonexistent").expectCode(1, "instant", "latest")
	if !strings.Contains(string(r.stderr), "qemu-system-x86") {
		t.Errorf("QEMU missing: %s", r.stderr)
	}
	// QEMU there, fusermount3 not.
	bin := e.path("qemu-only")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"qemu-system-x86_64", "qemu-img"} {
		full, err := exec.LookPath(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(full, filepath.Join(bin, p)); err != nil {
			t.Fatal(err)
		}
	}
	r = e.with("PATH", bin).expectCode(1, "instant", "latest")
	if !strings.Contains(string(r.stderr), "fuse3") {
		t.Errorf("FUSE missing: %s", r.stderr)
	}
	// An existing --migrate file is refused before anything starts.
	r = e.expectCode(1, "instant", "latest", "--migrate", img)
	if !strings.Contains(string(r.stderr), "exists") {
		t.Errorf("existing --migrate target: %s", r.stderr)
	}
}
