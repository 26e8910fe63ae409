package qemupull

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/qemu"
	"github.com/rewind-backup/rewind/internal/qemu/qemutest"
)

// startVM starts a QEMU with no guest and one 16 MiB qcow2 drive (see
// qemutest.StartDrive).
func startVM(t *testing.T) (*qemutest.Drive, *qemu.Client) {
	d := qemutest.StartDrive(t, t.TempDir(), 16<<20)
	return d, d.Mon
}

// write writes through QEMU's block layer, which marks the dirty bitmaps.
func write(t *testing.T, c *qemu.Client, pattern byte, off, n int64) {
	t.Helper()
	out, err := c.HumanMonitor(context.Background(), "qemu-io drive0 \"write -P "+itoa(int64(pattern))+" "+itoa(off)+" "+itoa(n)+"\"")
	if err != nil || strings.Contains(out, "error") || strings.Contains(out, "failed") {
		t.Fatalf("qemu-io write: %v %s", err, out)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestSessionBitmapLifecycle(t *testing.T) {
	q, c := startVM(t)
	ctx := context.Background()
	write(t, c, 0x11, 0, 128<<10)

	if _, err := Start(ctx, Options{Socket: q.QMPSocket, Drive: "nosuch"}); err == nil || !strings.Contains(err.Error(), "disk0") {
		t.Fatalf("wrong drive: %v", err)
	}
	s, err := Start(ctx, Options{Socket: q.QMPSocket, Drive: "disk0"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Since != "" || s.Fallback == "" || s.Size != 16<<20 {
		t.Fatalf("first: since %q fallback %q size %d", s.Since, s.Fallback, s.Size)
	}
	alloc, err := s.Dirty()
	if err != nil {
		t.Fatal(err)
	}
	if len(alloc) != 1 || alloc[0].Off != 0 || alloc[0].Len < 128<<10 || alloc[0].Len > 1<<20 {
		t.Fatalf("allocation %v", alloc)
	}
	b1 := s.Bitmap
	if err := s.Finish(ctx, true); err != nil {
		t.Fatal(err)
	}

	write(t, c, 0x22, 4<<20, 4096)
	s, err = Start(ctx, Options{Socket: q.QMPSocket, Drive: "drive0", SinceBitmap: b1})
	if err != nil {
		t.Fatal(err)
	}
	if s.Since != b1 {
		t.Fatalf("second: since %q fallback %q", s.Since, s.Fallback)
	}
	// A write during the backup does not show in the frozen view.
	write(t, c, 0x33, 4<<20, 4096)
	buf := make([]byte, 4096)
	if _, err := s.NBD.ReadAt(buf, 4<<20); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, bytes.Repeat([]byte{0x22}, 4096)) {
		t.Fatalf("the frozen view shows %#x, not the 0x22 of its moment", buf[0])
	}
	d, err := s.Dirty()
	if err != nil {
		t.Fatal(err)
	}
	if len(d) != 1 || d[0] != (Range{Off: 4 << 20, Len: 64 << 10}) {
		t.Fatalf("dirty %v", d)
	}
	write(t, c, 0x44, 8<<20, 4096)
	// A failed backup gives the writes back to b1.
	if err := s.Finish(ctx, false); err != nil {
		t.Fatal(err)
	}
	bms, err := bitmaps(ctx, c, "disk0")
	if err != nil {
		t.Fatal(err)
	}
	if len(bms) != 1 || bms[0].Name != b1 || !bms[0].Recording || bms[0].Count != 2*64<<10 {
		t.Fatalf("after a failure: %+v", bms)
	}
}

// A backup killed while it reads (its QMP and NBD connections just
// drop) leaves the fleecing job, the export and a disabled bitmap; the
// next backup removes them and still reads every write since the
// parent: those before the killed backup and those during it.
func TestSessionKilledBackup(t *testing.T) {
	q, c := startVM(t)
	ctx := context.Background()
	s, err := Start(ctx, Options{Socket: q.QMPSocket, Drive: "drive0"})
	if err != nil {
		t.Fatal(err)
	}
	b1 := s.Bitmap
	if err := s.Finish(ctx, true); err != nil {
		t.Fatal(err)
	}
	write(t, c, 0x22, 1<<20, 4096)
	s, err = Start(ctx, Options{Socket: q.QMPSocket, Drive: "drive0", SinceBitmap: b1})
	if err != nil {
		t.Fatal(err)
	}
	write(t, c, 0x33, 3<<20, 4096)
	killedDir := s.dir
	s.NBD.Close()
	s.qmp.Close() // killed: nothing undone

	s, err = Start(ctx, Options{Socket: q.QMPSocket, Drive: "drive0", SinceBitmap: b1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Finish(ctx, false)
	if s.Since != b1 || len(s.Recovered) < 4 {
		t.Fatalf("after a killed backup: since %q, recovered %q", s.Since, s.Recovered)
	}
	if _, err := os.Stat(killedDir); err == nil {
		t.Errorf("the killed backup's fleecing directory %s is still there", killedDir)
	}
	d, err := s.Dirty()
	if err != nil {
		t.Fatal(err)
	}
	if want := []Range{{Off: 1 << 20, Len: 64 << 10}, {Off: 3 << 20, Len: 64 << 10}}; len(d) != 2 || d[0] != want[0] || d[1] != want[1] {
		t.Fatalf("dirty %v, want %v", d, want)
	}
}
