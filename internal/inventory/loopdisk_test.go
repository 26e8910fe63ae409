package inventory

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/testutil"
	"golang.org/x/sys/unix"
)

// sh runs a program with stdin and fails the test when it fails.
func sh(t *testing.T, stdin string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(testutil.RequireTool(t, name), args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, stderr.String())
	}
	return out.String()
}

// partitionedDisk makes a loop disk with a GPT of three partitions: ext4
// (label "rootfs"), btrfs (label "data", mounted, with a subvolume), and
// a third left empty with room after it to grow.
func partitionedDisk(t *testing.T) (dev, btrfsMnt string) {
	dev = testutil.LoopDisk(t, 600<<20)
	for _, tool := range []string{"sfdisk", "partx", "blkid", "mkfs.ext4", "mkfs.btrfs", "dumpe2fs", "btrfs"} {
		testutil.RequireTool(t, tool)
	}
	sh(t, "label: gpt\n"+
		"size=64MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=\"root part\"\n"+
		"size=256MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=data\n"+
		"size=32MiB, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F, name=swap\n",
		"sfdisk", "--quiet", "--no-reread", dev)
	sh(t, "", "partx", "-u", dev)
	waitFor(t, dev+"p3")
	sh(t, "", "mkfs.ext4", "-q", "-F", "-L", "rootfs", dev+"p1")
	sh(t, "", "mkfs.btrfs", "-q", "-f", "-L", "data", dev+"p2")
	btrfsMnt = filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(btrfsMnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(dev+"p2", btrfsMnt, "btrfs", 0, ""); err != nil {
		t.Fatalf("mount btrfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(btrfsMnt, 0); err != nil {
			t.Errorf("unmount %s: %v", btrfsMnt, err)
		}
	})
	sh(t, "", "btrfs", "-q", "subvolume", "create", filepath.Join(btrfsMnt, "home"))
	// The superblock on disk, which the inventory reads, is written at
	// the next commit.
	sh(t, "", "btrfs", "filesystem", "sync", btrfsMnt)
	return dev, btrfsMnt
}

// waitFor fails unless the device node path exists (devtmpfs makes it
// when partx adds the partition).
func waitFor(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("partition device: %v", err)
	}
}

func TestCollectLoopDisk(t *testing.T) {
	dev, btrfsMnt := partitionedDisk(t)
	ctx := context.Background()
	doc, err := Collect(ctx, Sources{Disks: []string{dev}}, "testhost")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range doc.Warnings {
		if strings.Contains(w, dev) {
			t.Errorf("warning about the test disk: %s", w)
		}
	}
	if len(doc.Disks) != 1 {
		t.Fatalf("disks: %+v", doc.Disks)
	}
	d := doc.Disks[0]
	if d.Path != dev || d.SizeBytes != 600<<20 || d.LogicalSectorSize != 512 {
		t.Errorf("disk %+v", d)
	}

	// The partition table is what sfdisk -J reports.
	var want sfdiskJSON
	if err := json.Unmarshal([]byte(sh(t, "", "sfdisk", "-J", dev)), &want); err != nil {
		t.Fatal(err)
	}
	tb := d.Table
	if tb == nil {
		t.Fatal("no partition table recorded")
	}
	if tb.Type != "gpt" || tb.ID != want.Table.ID || tb.FirstLBA != want.Table.FirstLBA || tb.LastLBA != want.Table.LastLBA || tb.SectorSize != 512 {
		t.Errorf("table %+v, sfdisk says %+v", tb, want.Table)
	}
	if len(tb.Partitions) != 3 || len(want.Table.Partitions) != 3 {
		t.Fatalf("partitions %+v, sfdisk %+v", tb.Partitions, want.Table.Partitions)
	}
	for i, p := range tb.Partitions {
		w := want.Table.Partitions[i]
		if p.Path != w.Node || p.Number != i+1 || p.Start != w.Start || p.Size != w.Size || p.Type != w.Type || p.UUID != w.UUID || p.Name != w.Name {
			t.Errorf("partition %d: %+v, sfdisk says %+v", i+1, p, w)
		}
	}
	if tb.Partitions[0].Name != "root part" || tb.Partitions[0].Size != 64<<20/512 {
		t.Errorf("partition 1: %+v", tb.Partitions[0])
	}

	// The filesystems are what blkid reports.
	fss := map[string]Filesystem{}
	for _, f := range doc.Filesystems {
		fss[f.Device] = f
	}
	for _, part := range []string{dev + "p1", dev + "p2"} {
		kv := parseExport(sh(t, "", "blkid", "-p", "-o", "export", part))
		f, ok := fss[part]
		if !ok {
			t.Errorf("no filesystem recorded on %s", part)
			continue
		}
		if f.Type != kv["TYPE"] || f.UUID != kv["UUID"] || f.Label != kv["LABEL"] || f.UUID == "" {
			t.Errorf("%s: recorded %+v, blkid says %v", part, f, kv)
		}
	}
	if _, ok := fss[dev+"p3"]; ok {
		t.Errorf("a filesystem recorded on the empty partition: %+v", fss[dev+"p3"])
	}
	ext := fss[dev+"p1"]
	if ext.Label != "rootfs" || ext.SizeBytes != 64<<20 || !contains(ext.Features, "has_journal") || !contains(ext.Features, "extent") || ext.Params["Block count"] == "" {
		t.Errorf("ext4: %+v", ext)
	}
	bt := fss[dev+"p2"]
	if bt.Label != "data" || len(bt.Mounts) != 1 || bt.Mounts[0].Target != btrfsMnt || bt.Params["nodesize"] == "" || len(bt.Features) == 0 {
		t.Errorf("btrfs: %+v", bt)
	}
	if len(bt.Subvolumes) != 1 || bt.Subvolumes[0].Path != "home" || bt.Subvolumes[0].TopLevel != 5 {
		t.Errorf("btrfs subvolumes: %+v", bt.Subvolumes)
	}

	// Collected again, nothing changed: the same content.
	again, err := Collect(ctx, Sources{Disks: []string{dev}}, "testhost")
	if err != nil {
		t.Fatal(err)
	}
	if !SameContent(doc, again) {
		t.Errorf("two collections of an unchanged machine differ: %+v", Diff(doc, again))
	}

	// Partition 3 grows by 64 MiB: diff reports its old and new size.
	oldSize := tb.Partitions[2].Size
	sh(t, ", +64MiB\n", "sfdisk", "--quiet", "--no-reread", "-N", "3", dev)
	sh(t, "", "partx", "-u", dev)
	grown, err := Collect(ctx, Sources{Disks: []string{dev}}, "testhost")
	if err != nil {
		t.Fatal(err)
	}
	newSize := grown.Disks[0].Table.Partitions[2].Size
	if newSize != oldSize+64<<20/512 {
		t.Fatalf("partition 3 is %d sectors after growing from %d", newSize, oldSize)
	}
	if s := sysSize(t, dev+"p3"); s != newSize {
		t.Errorf("the kernel sees %d sectors for %sp3 (partx -u), the table %d", s, dev, newSize)
	}
	var found bool
	for _, c := range Diff(doc, grown) {
		if c.Section == "partition" && c.Item == dev+"p3" {
			found = true
			if c.Kind != "grown" || c.Field != "size" || c.Old != strconv.FormatInt(oldSize, 10) || c.New != strconv.FormatInt(newSize, 10) {
				t.Errorf("change %+v, want grown size %d -> %d", c, oldSize, newSize)
			}
		} else if c.Section == "partition" || c.Section == "filesystem" || c.Section == "disk" {
			t.Errorf("unexpected change %+v", c)
		}
	}
	if !found {
		t.Errorf("diff does not report the grown partition: %+v", Diff(doc, grown))
	}
}

func sysSize(t *testing.T, dev string) int64 {
	b, err := os.ReadFile("/sys/class/block/" + filepath.Base(dev) + "/size")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
