package archiver

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/qemu"
	"github.com/rewind-backup/rewind/internal/testutil"
)

// TestQEMUPointInTime writes to a running QEMU's drive while its backup
// reads: the snapshot holds the drive as it was when the backup froze
// it, and the next backup reads the blocks written meanwhile. Then QEMU
// dies during a backup: it fails, saying so, and saves nothing.
func TestQEMUPointInTime(t *testing.T) {
	testutil.RequireQEMU(t)
	ctx := context.Background()
	dir := t.TempDir()
	img := filepath.Join(dir, "d.qcow2")
	if err := qemu.Create(ctx, img, qemu.FormatQcow2, 8<<20); err != nil {
		t.Fatal(err)
	}
	mon := filepath.Join(dir, "mon.sock")
	q := testutil.StartQEMU(t, testutil.QEMUOptions{Args: []string{"-machine", "none",
		"-qmp", "unix:" + mon + ",server=on,wait=off",
		"-drive", "if=none,id=drive0,format=qcow2,file=" + img}})
	testutil.WaitSocket(t, mon)
	c, err := qemu.Dial(ctx, mon)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	write := func(p byte, off int64) {
		cmd := "qemu-io drive0 \"write -P " + strconv.Itoa(int(p)) + " " + strconv.FormatInt(off, 10) + " 4096\""
		if out, err := c.HumanMonitor(ctx, cmd); err != nil || out != "" {
			t.Fatalf("%s: %v %s", cmd, err, out)
		}
	}
	raw := func() []byte {
		if _, err := c.HumanMonitor(ctx, "qemu-io drive0 flush"); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "now.raw")
		os.Remove(out)
		if b, err := exec.Command("qemu-img", "convert", "-U", "-f", "qcow2", "-O", "raw", img, out).CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, b)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	write(0x11, 1<<20)
	before := raw()
	r := newTestRepo(t, "")
	a, err := New(r, Options{Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	opt := QEMUOptions{Socket: q.QMPSocket, Drive: "drive0", Frozen: func() { write(0x22, 1<<20); write(0x33, 6<<20) }}
	first, err := a.SnapshotQEMU(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	name := QEMUImagePath(q.QMPSocket, "drive0")
	if got := content(t, r, lookup(t, r, first, name)); !bytes.Equal(got, before) {
		t.Fatal("the snapshot holds writes made after its moment")
	}
	after := raw()
	if a, err = New(r, Options{Hostname: "h", Parent: first}); err != nil {
		t.Fatal(err)
	}
	opt.Frozen = nil
	second, err := a.SnapshotQEMU(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	if second.Image.Method != "qemu-dirty-bitmap" || second.Image.BytesRead != 2*64<<10 {
		t.Errorf("second: %+v", second.Image)
	}
	if got := content(t, r, lookup(t, r, second, name)); !bytes.Equal(got, after) {
		t.Fatal("the incremental differs from the drive")
	}

	if a, err = New(r, Options{Hostname: "h", Parent: second}); err != nil {
		t.Fatal(err)
	}
	opt.Frozen = q.Kill
	if _, err := a.SnapshotQEMU(ctx, opt); err == nil || !strings.Contains(err.Error(), "QEMU exited during the backup") {
		t.Fatalf("QEMU killed mid-backup: %v", err)
	} else {
		t.Logf("QEMU killed mid-backup: %v", err)
	}
}
