package nbd

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/testutil"
)

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	}
}

// A real qemu-nbd serves a qcow2 with a persistent dirty bitmap: the
// client reads the data written, sees the allocation, and the bitmap
// marks exactly the clusters written after it was added.
func TestQemuNBD(t *testing.T) {
	testutil.RequireTool(t, "qemu-nbd")
	testutil.RequireTool(t, "qemu-io")
	dir := t.TempDir()
	img := filepath.Join(dir, "d.qcow2")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", img, "8M")
	run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 128k", img)
	run(t, "qemu-img", "bitmap", "--add", "--granularity", "64k", img, "b0")
	run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x22 1M 4k", "-c", "write -P 0x33 5M 64k", img)

	sock := filepath.Join(dir, "nbd.sock")
	cmd := exec.Command("qemu-nbd", "-r", "-f", "qcow2", "-k", sock, "-x", "exp", "-B", "b0", img)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	ctx := context.Background()
	if _, err := Dial(ctx, sock, "exp", "qemu:dirty-bitmap:nosuch"); err == nil {
		t.Fatal("a missing bitmap context was accepted")
	}
	if _, err := Dial(ctx, sock, "nosuch"); err == nil {
		t.Fatal("a missing export was accepted")
	}
	c, err := Dial(ctx, sock, "exp", "base:allocation", "qemu:dirty-bitmap:b0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Size != 8<<20 || c.Flags&TransmitReadOnly == 0 {
		t.Fatalf("size %d flags %#x", c.Size, c.Flags)
	}
	buf := make([]byte, 2<<20)
	if _, err := c.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 2<<20)
	copy(want, bytes.Repeat([]byte{0x11}, 128<<10))
	copy(want[1<<20:], bytes.Repeat([]byte{0x22}, 4096))
	if !bytes.Equal(buf, want) {
		t.Fatal("data read differs from what was written")
	}
	dirty, err := c.Scan("qemu:dirty-bitmap:b0", func(f uint32) bool { return f&StateDirty != 0 })
	if err != nil {
		t.Fatal(err)
	}
	if wantD := []Range{{1 << 20, 64 << 10}, {5 << 20, 64 << 10}}; !equalRanges(dirty, wantD) {
		t.Fatalf("dirty %v, want %v", dirty, wantD)
	}
	data, err := c.Scan("base:allocation", func(f uint32) bool { return f&StateZero == 0 })
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, r := range data {
		n += r.Len
	}
	if n < 128<<10+4096+64<<10 || n > 1<<20 {
		t.Fatalf("allocated %d bytes in %v", n, data)
	}
	if _, err := c.ReadAt(make([]byte, 10), 8<<20-5); err == nil {
		t.Fatal("a read past the end was accepted")
	}
}

func equalRanges(a, b []Range) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
