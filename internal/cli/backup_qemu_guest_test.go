package cli

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/qemu"
	"github.com/rewind-backup/rewind/internal/testutil"
)

// Guest writes of TestQEMUDirtyBitmapGuestWrites: guestFiles files of
// guestLine bytes each, one serial command per file (the guest's
// terminal takes lines of at most 4095 bytes).
const (
	guestFiles = 80
	guestLine  = 3200
)

// TestQEMUDirtyBitmapGuestWrites backs up the drive of a running guest
// OS twice, with files the guest writes to its FAT filesystem in
// between (as issue 14's test list asks, where TestQEMUDirtyBitmapBackup
// writes through qemu-io): the second backup reads only the blocks the
// guest dirtied, and with the guest paused its restore is bit-identical
// to the drive at that moment.
func TestQEMUDirtyBitmapGuestWrites(t *testing.T) {
	testutil.RequireQEMU(t)
	ctx := context.Background()
	e := newRepo(t, 0)
	img := e.path("guest.qcow2")
	if err := qemu.Convert(ctx, testutil.GuestDisk(t), qemu.FormatRaw, img, qemu.FormatQcow2); err != nil {
		t.Fatal(err)
	}
	// Paused at start (-S) until the test reads the serial socket, so no
	// console line is lost; the second QMP socket is the test's, the
	// first rewind's.
	ser, mon := e.path("serial.sock"), e.path("mon.sock")
	q := testutil.StartQEMU(t, testutil.QEMUOptions{Args: []string{"-S", "-m", "256", "-no-reboot",
		"-qmp", "unix:" + mon + ",server=on,wait=off",
		"-chardev", "socket,id=ser0,path=" + ser + ",server=on,wait=off", "-serial", "chardev:ser0",
		"-drive", "if=virtio,id=drive0,format=qcow2,file=" + img}})
	testutil.WaitSocket(t, mon)
	testutil.WaitSocket(t, ser)
	conn, err := net.Dial("unix", ser)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := testutil.NewConsole(conn, conn)
	m, err := qemu.Dial(ctx, mon)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	qmp := func(cmd string) {
		t.Helper()
		if err := m.Execute(ctx, cmd, nil, nil); err != nil {
			t.Fatalf("QMP %s: %v", cmd, err)
		}
	}
	qmp("cont")
	if got := c.Expect(t, "REWIND-CHECK ", guestTimeout); got != "REWIND-CHECK "+testutil.GuestCheckSum {
		t.Fatalf("the guest read its check file wrong: %s", got)
	}
	c.Expect(t, testutil.GuestReady, guestTimeout)

	var b1 imageBackup
	imageSummaryLine(t, e.mustRun("backup", "--json", "--qemu-qmp", q.QMPSocket, "drive0").stdout, &b1)
	if b1.Image.Method != "qemu-allocation" || b1.Image.DirtyBitmap == "" {
		t.Fatalf("first backup: %+v", b1.Image)
	}

	// The guest writes its files (each write syncs), then is paused: the
	// drive holds one moment for the backup and the copy to compare.
	var written int64
	for i := 0; i < guestFiles; i++ {
		name := fmt.Sprintf("w%02d.txt", i)
		text := strings.Repeat(fmt.Sprintf("%02d-guest-write.", i), guestLine/16)
		c.Send(t, "write "+name+" "+text)
		c.Expect(t, "REWIND-OK write "+name, guestTimeout)
		written += int64(len(text)) + 1
	}
	qmp("stop")
	var b2 imageBackup
	imageSummaryLine(t, e.mustRun("backup", "--json", "--qemu-qmp", q.QMPSocket, "drive0").stdout, &b2)
	if b2.Image.Method != "qemu-dirty-bitmap" || b2.Image.Fallback != "" {
		t.Fatalf("second backup: %+v", b2.Image)
	}
	// All the guest wrote is dirty, plus its FAT and directory; far
	// less than the data the first backup read, and 1% of the drive.
	if b2.Image.BytesRead < written || b2.Image.BytesRead > testutil.GuestDiskSize/100 || b2.Image.BytesRead >= b1.Image.BytesRead ||
		b2.Image.BlocksChanged == 0 || b2.Image.BytesRead+b2.Image.BytesClean != testutil.GuestDiskSize {
		t.Errorf("second backup read %d bytes (%d blocks changed, %d clean) after the guest wrote %d; the first read %d",
			b2.Image.BytesRead, b2.Image.BlocksChanged, b2.Image.BytesClean, written, b1.Image.BytesRead)
	}
	t.Logf("the guest wrote %d bytes; the incremental read %d bytes in %d blocks (the first %d)", written, b2.Image.BytesRead, b2.Image.BlocksChanged, b1.Image.BytesRead)
	at := e.path("at2.raw")
	if out, err := exec.Command("qemu-img", "convert", "-U", "-f", "qcow2", "-O", "raw", img, at).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v %s", err, out)
	}
	restored := filepath.Join(e.path(), "restored.img")
	e.mustRun("restore", b2.SnapshotID, "--image", restored)
	sh(t, "cmp", at, restored)

	qmp("cont")
	c.Send(t, "sum w00.txt")
	c.Expect(t, "REWIND-SUM w00.txt ", guestTimeout)
	c.Send(t, "poweroff")
	c.Expect(t, testutil.GuestPoweroff, guestTimeout)
	select {
	case <-q.Exited():
	case <-time.After(guestTimeout):
		t.Fatalf("QEMU still runs after the guest powered off:\n%s", c.Text())
	}
}
