package loopdev

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/testutil"
)

func TestPartitionPath(t *testing.T) {
	for _, c := range []struct {
		disk string
		n    int
		want string
	}{
		{"/dev/sda", 1, "/dev/sda1"},
		{"/dev/vdb", 12, "/dev/vdb12"},
		{"/dev/nvme0n1", 1, "/dev/nvme0n1p1"},
		{"/dev/loop3", 2, "/dev/loop3p2"},
		{"/dev/mmcblk0", 1, "/dev/mmcblk0p1"},
	} {
		if got := PartitionPath(c.disk, c.n); got != c.want {
			t.Errorf("PartitionPath(%q, %d) = %q, want %q", c.disk, c.n, got, c.want)
		}
	}
}

// TestAttachRescan attaches a blank image, writes a table of two
// partitions, and checks that Rescan makes both nodes appear, then that a
// third added later appears too and Detach removes the device.
func TestAttachRescan(t *testing.T) {
	if !testutil.IsRoot() {
		t.Skip("loop devices need root")
	}
	sfdisk := testutil.RequireTool(t, "sfdisk")
	testutil.RequireTool(t, "losetup")
	testutil.RequireTool(t, "partx")
	ctx := context.Background()
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 64<<20); err != nil {
		t.Fatal(err)
	}
	dev, err := Attach(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	detached := false
	t.Cleanup(func() {
		if !detached {
			_ = Detach(ctx, dev)
		}
	})
	if len(Partitions(dev)) != 0 {
		t.Fatalf("a blank disk has partitions %v", Partitions(dev))
	}
	write := func(script string) {
		cmd := exec.Command(sfdisk, "--quiet", "--no-reread", "--no-tell-kernel", dev)
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sfdisk: %v: %s", err, out)
		}
	}
	write("label: gpt\nsize=8MiB\nsize=8MiB\n")
	if err := Rescan(ctx, dev); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 2} {
		if _, err := os.Stat(PartitionPath(dev, n)); err != nil {
			t.Errorf("partition %d: %v", n, err)
		}
	}
	write("label: gpt\nsize=8MiB\nsize=8MiB\nsize=8MiB\n")
	if err := Rescan(ctx, dev); err != nil {
		t.Fatal(err)
	}
	if got := len(Partitions(dev)); got != 3 {
		t.Errorf("after adding one: %d partitions", got)
	}
	if err := Detach(ctx, dev); err != nil {
		t.Fatal(err)
	}
	detached = true
	if _, err := os.Stat(PartitionPath(dev, 1)); err == nil {
		if out, _ := exec.Command("losetup", dev).CombinedOutput(); strings.Contains(string(out), img) {
			t.Errorf("%s still attached to %s", dev, img)
		}
	}
}
