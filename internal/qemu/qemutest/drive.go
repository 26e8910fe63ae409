// Package qemutest starts real QEMU processes for tests of what talks to
// QEMU: a machine without a guest whose one qcow2 drive the test writes
// through QEMU's own block layer.
package qemutest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/rewind-backup/rewind/internal/qemu"
	"github.com/rewind-backup/rewind/internal/testutil"
)

// Drive is a QEMU with no guest (-machine none) and one qcow2 drive,
// "drive0" on the block node "disk0". Its QMPSocket is left for the code
// under test; Mon is the test's own client of a second QMP socket (QEMU
// serves one client per socket).
type Drive struct {
	*testutil.QEMU
	Image string
	Mon   *qemu.Client
}

// StartDrive creates a qcow2 image of size bytes in dir and starts QEMU
// on it; QEMU is killed when the test ends.
func StartDrive(t testing.TB, dir string, size int64) *Drive {
	t.Helper()
	testutil.RequireQEMU(t)
	img := filepath.Join(dir, "disk.qcow2")
	if err := qemu.Create(context.Background(), img, qemu.FormatQcow2, size); err != nil {
		t.Fatal(err)
	}
	mon := filepath.Join(dir, "mon.sock")
	q := testutil.StartQEMU(t, testutil.QEMUOptions{Args: []string{"-machine", "none",
		"-qmp", "unix:" + mon + ",server=on,wait=off",
		"-drive", "if=none,id=drive0,node-name=disk0,format=qcow2,file=" + img}})
	testutil.WaitSocket(t, mon)
	c, err := qemu.Dial(context.Background(), mon)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &Drive{QEMU: q, Image: img, Mon: c}
}

// Write writes n bytes of pattern at off through QEMU's block layer (HMP
// qemu-io on the drive, above a backup's copy-before-write filter, as a
// guest's device writes), which marks the dirty bitmaps.
func (d *Drive) Write(t testing.TB, pattern byte, off, n int64) {
	t.Helper()
	cmd := "qemu-io drive0 \"write -P " + strconv.Itoa(int(pattern)) + " " + strconv.FormatInt(off, 10) + " " + strconv.FormatInt(n, 10) + "\""
	if out, err := d.Mon.HumanMonitor(context.Background(), cmd); err != nil || out != "" {
		t.Fatalf("%s: %v %s", cmd, err, out)
	}
}

// Raw flushes the drive and copies what it holds now into the raw file
// out, which it returns.
func (d *Drive) Raw(t testing.TB, out string) string {
	t.Helper()
	if _, err := d.Mon.HumanMonitor(context.Background(), "qemu-io drive0 flush"); err != nil {
		t.Fatal(err)
	}
	os.Remove(out)
	if b, err := exec.Command("qemu-img", "convert", "-U", "-f", "qcow2", "-O", "raw", d.Image, out).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v %s", err, b)
	}
	return out
}
