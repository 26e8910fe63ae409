package archiver

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/qemu/qemutest"
)

// TestQEMUPointInTime writes to a running QEMU's drive while its backup
// reads: the snapshot holds the drive as it was when the backup froze
// it, and the next backup reads the blocks written meanwhile. Then QEMU
// dies during a backup: it fails, saying so, and saves nothing.
func TestQEMUPointInTime(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d := qemutest.StartDrive(t, dir, 8<<20)
	q := d.QEMU
	write := func(p byte, off int64) { d.Write(t, p, off, 4096) }
	raw := func() []byte {
		b, err := os.ReadFile(d.Raw(t, filepath.Join(dir, "now.raw")))
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
