package cli

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/qemu/qemutest"
)

// TestQEMUDirtyBitmapBackup backs up a drive of a running QEMU twice,
// with writes through QEMU in between: the first reads what holds
// data, the second exactly the blocks written, and each restores to
// the drive's content at its moment, bit for bit. A dry run does not
// lose the writes; a lost bitmap, a wrong drive and a dead QEMU are
// said plainly.
func TestQEMUDirtyBitmapBackup(t *testing.T) {
	e := newRepo(t, 0)
	const size = 32 << 20
	vm := qemutest.StartDrive(t, e.path(), size)
	vm.Write(t, 0x11, 0, 1<<20)
	vm.Write(t, 0x5a, 10<<20, 2<<20)

	var b1 imageBackup
	imageSummaryLine(t, e.mustRun("backup", "--json", "--qemu-qmp", vm.QMPSocket, "drive0").stdout, &b1)
	if b1.Image.Method != "qemu-allocation" || b1.Image.Kind != "qemu" || b1.Image.Fallback == "" || b1.Image.DirtyBitmap == "" {
		t.Errorf("first backup: %+v", b1.Image)
	}
	if b1.Image.BytesRead < 3<<20 || b1.Image.BytesRead > 4<<20 {
		t.Errorf("first backup read %d bytes; 3 MiB hold data", b1.Image.BytesRead)
	}
	vm.Raw(t, e.path("at1.raw"))

	vm.Write(t, 0x22, 20<<20, 4096)
	vm.Write(t, 0x33, 5<<20, 64<<10+4096) // two blocks
	vm.Write(t, 0x44, 10<<20, 512)        // over data of the first backup
	e.mustRun("backup", "--dry-run", "--qemu-qmp", vm.QMPSocket, "drive0")
	var b2 imageBackup
	imageSummaryLine(t, e.mustRun("backup", "--json", "--qemu-qmp", vm.QMPSocket, "drive0").stdout, &b2)
	if b2.Image.Method != "qemu-dirty-bitmap" || b2.Image.Fallback != "" {
		t.Errorf("second backup: %+v", b2.Image)
	}
	if want := int64(4 * 64 << 10); b2.Image.BytesRead != want || b2.Image.BytesClean != size-want || b2.Image.BlocksChanged != 4 {
		t.Errorf("second backup read %d bytes, %d clean, %d blocks changed; want the 4 dirty blocks, %d bytes", b2.Image.BytesRead, b2.Image.BytesClean, b2.Image.BlocksChanged, want)
	}
	vm.Raw(t, e.path("at2.raw"))
	for i, id := range []string{b1.SnapshotID, b2.SnapshotID} {
		out := e.path("restored" + strconv.Itoa(i+1) + ".img")
		e.mustRun("restore", id, "--image", out, "--verify")
		sh(t, "cmp", e.path("at"+strconv.Itoa(i+1)+".raw"), out)
	}

	// The bitmap is gone (QEMU restarted without it): a full read, and why.
	if err := vm.Mon.Execute(context.Background(), "block-dirty-bitmap-remove", map[string]string{"node": "disk0", "name": b2.Image.DirtyBitmap}, nil); err != nil {
		t.Fatal(err)
	}
	var b3 imageBackup
	imageSummaryLine(t, e.mustRun("backup", "--json", "--qemu-qmp", vm.QMPSocket, "drive0").stdout, &b3)
	if b3.Image.Method != "qemu-allocation" || !strings.Contains(b3.Image.Fallback, "not on drive") {
		t.Errorf("backup after the bitmap was removed: %+v", b3.Image)
	}

	r := e.expectCode(1, "backup", "--qemu-qmp", vm.QMPSocket, "nosuch")
	if s := string(r.stderr); !strings.Contains(s, `drive "nosuch" not found`) || !strings.Contains(s, "drive0") {
		t.Errorf("wrong drive: %s", s)
	}
	vm.Kill()
	r = e.expectCode(1, "backup", "--qemu-qmp", vm.QMPSocket, "drive0")
	if !strings.Contains(string(r.stderr), "QEMU") {
		t.Errorf("QEMU gone: %s", r.stderr)
	}
}
