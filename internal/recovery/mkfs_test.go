package recovery

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/inventory"
	"github.com/rewind-backup/rewind/internal/testutil"
)

// TestMakeXFSBtrfs records an XFS and a btrfs with nested subvolumes, then
// plans them onto a second disk and runs the partition and mkfs phases:
// the new filesystems have the recorded UUIDs, labels and features, and
// btrfs its subvolumes at their paths.
func TestMakeXFSBtrfs(t *testing.T) {
	if !testutil.IsRoot() {
		t.Skip("needs root")
	}
	for _, n := range []string{"sfdisk", "partx", "mkfs.xfs", "xfs_info", "mkfs.btrfs", "btrfs", "blkid"} {
		testutil.RequireTool(t, n)
	}
	ctx := context.Background()
	src := testutil.LoopDisk(t, 512<<20)
	tool(t, "label: gpt\nsize=320MiB, name=x\nname=b\n", "sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", src)
	tool(t, "", "partx", "-u", src)
	tool(t, "", "mkfs.xfs", "-q", "-f", "-L", "xdata", "-m", "reflink=0", src+"p1")
	tool(t, "", "mkfs.btrfs", "-q", "-f", "-L", "bdata", "-n", "32768", src+"p2")
	mnt := filepath.Join(t.TempDir(), "b")
	un := mountT(t, src+"p2", mnt, "btrfs", "")
	for _, sv := range []string{"@", "@home"} {
		tool(t, "", "btrfs", "-q", "subvolume", "create", filepath.Join(mnt, sv))
	}
	tool(t, "", "mkdir", "-p", filepath.Join(mnt, "@/var/lib"))
	tool(t, "", "btrfs", "-q", "subvolume", "create", filepath.Join(mnt, "@/var/lib/machines"))
	tool(t, "", "btrfs", "filesystem", "sync", mnt)
	xm := filepath.Join(t.TempDir(), "x")
	unx := mountT(t, src+"p1", xm, "xfs", "")
	doc, err := inventory.Collect(ctx, inventory.Sources{Disks: []string{src}}, "fs-test")
	if err != nil {
		t.Fatal(err)
	}
	unx()
	un()
	fss := map[string]inventory.Filesystem{}
	for _, f := range doc.Filesystems {
		fss[f.Type] = f
	}
	if len(fss["btrfs"].Subvolumes) != 3 || fss["xfs"].Params == nil {
		t.Fatalf("recorded %+v", doc.Filesystems)
	}

	// The source's btrfs signature goes, or its UUID could not be made
	// again on this machine (checked at the end).
	tool(t, "", "wipefs", "-q", "-a", src+"p2")
	dst := testutil.LoopDisk(t, 600<<20)
	tg, err := ProbeTarget(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	p, err := MakePlan(doc, []Target{tg}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeTable(ctx, p.Disks[0]); err != nil {
		t.Fatal(err)
	}
	for _, f := range p.Filesystems {
		nu, w, err := makeFS(ctx, f, t.TempDir())
		if err != nil || w != "" || nu != "" {
			t.Fatalf("mkfs %s: %v %s", f.Type, err, w)
		}
		kv := map[string]string{}
		for _, l := range strings.Split(tool(t, "", "blkid", "-p", "-o", "export", f.Device), "\n") {
			if k, v, ok := strings.Cut(l, "="); ok {
				kv[k] = v
			}
		}
		if kv["UUID"] != f.UUID || kv["LABEL"] != f.Label || kv["TYPE"] != f.Type {
			t.Errorf("%s: %v, planned %+v", f.Device, kv, f)
		}
	}
	nm := filepath.Join(t.TempDir(), "nb")
	unb := mountT(t, dst+"p2", nm, "btrfs", "")
	var paths []string
	for _, s := range parseSubvolumesList(tool(t, "", "btrfs", "subvolume", "list", nm)) {
		paths = append(paths, s)
	}
	slices.Sort(paths)
	if strings.Join(paths, ",") != "@,@/var/lib/machines,@home" {
		t.Errorf("subvolumes %q", paths)
	}
	dump := tool(t, "", "btrfs", "inspect-internal", "dump-super", dst+"p2")
	if !strings.Contains(dump, "nodesize\t\t32768") && !strings.Contains(dump, "nodesize 32768") {
		t.Errorf("nodesize not kept:\n%s", dump)
	}
	unb()
	xn := filepath.Join(t.TempDir(), "nx")
	unx = mountT(t, dst+"p1", xn, "xfs", "")
	if info := tool(t, "", "xfs_info", xn); !strings.Contains(info, "reflink=0") {
		t.Errorf("xfs reflink=0 not kept:\n%s", info)
	}
	unx()

	// The same btrfs again elsewhere while dst holds its UUID: a new UUID.
	bt := p.Filesystems[slices.IndexFunc(p.Filesystems, func(f FilesystemPlan) bool { return f.Type == "btrfs" })]
	bt.Device = src + "p2"
	nu, w, err := makeFS(ctx, bt, t.TempDir())
	if err != nil || nu == "" || nu == bt.UUID || !strings.Contains(w, "new UUID") {
		t.Errorf("btrfs with a UUID in use: new %q, %q, %v", nu, w, err)
	}
	if got := strings.TrimSpace(tool(t, "", "blkid", "-p", "-o", "value", "-s", "UUID", src+"p2")); got != nu {
		t.Errorf("made with %s, reported %s", got, nu)
	}
	out, changes := ReplaceUUIDs("UUID="+strings.ToUpper(bt.UUID)+" / btrfs defaults 0 0\nsearch --fs-uuid "+bt.UUID+"\n", map[string]string{bt.UUID: nu})
	if strings.Count(out, nu) != 2 || len(changes) != 1 {
		t.Errorf("%q %q", out, changes)
	}
}

// parseSubvolumesList takes the paths of `btrfs subvolume list`.
func parseSubvolumesList(out string) []string {
	var paths []string
	for _, l := range strings.Split(out, "\n") {
		if _, p, ok := strings.Cut(l, " path "); ok {
			paths = append(paths, p)
		}
	}
	return paths
}

// TestWriteTableDOSExtended writes a planned MBR table with an extended
// partition and a logical one that grows, and reads it back with sfdisk.
func TestWriteTableDOSExtended(t *testing.T) {
	if !testutil.IsRoot() {
		t.Skip("needs root")
	}
	testutil.RequireTool(t, "sfdisk")
	testutil.RequireTool(t, "partx")
	ctx := context.Background()
	doc := &inventory.Document{Version: 1, Host: "old", Disks: []inventory.Disk{{Name: "sda", Path: "/dev/sda", SizeBytes: 512 * MiB, Table: &inventory.PartitionTable{
		Type: "dos", ID: "0x1234abcd", SectorSize: 512, Partitions: []inventory.Partition{
			{Number: 1, Path: "/dev/sda1", Start: 2048, Size: 100 * MiB / 512, Type: "83", Bootable: true},
			{Number: 2, Path: "/dev/sda2", Start: 2048 + 100*MiB/512, Size: 400 * MiB / 512, Type: "5"},
			{Number: 5, Path: "/dev/sda5", Start: 2048 + 101*MiB/512, Size: 399 * MiB / 512, Type: "83"},
		}}}},
		Filesystems: []inventory.Filesystem{{Device: "/dev/sda1", Type: "ext4", UUID: "u1", Mounts: []inventory.Mount{{Target: "/", Root: "/"}}}},
	}
	dev := testutil.LoopDisk(t, 700<<20)
	tg, err := ProbeTarget(ctx, dev)
	if err != nil {
		t.Fatal(err)
	}
	p, err := MakePlan(doc, []Target{tg}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeTable(ctx, p.Disks[0]); err != nil {
		t.Fatal(err)
	}
	var got struct {
		PT struct {
			ID         string `json:"id"`
			Partitions []struct {
				Node     string `json:"node"`
				Start    int64  `json:"start"`
				Size     int64  `json:"size"`
				Type     string `json:"type"`
				Bootable bool   `json:"bootable"`
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal([]byte(tool(t, "", "sfdisk", "-J", dev)), &got); err != nil {
		t.Fatal(err)
	}
	ps := got.PT.Partitions
	if got.PT.ID != "0x1234abcd" || len(ps) != 3 || !ps[0].Bootable || ps[1].Type != "5" || ps[2].Node != dev+"p5" {
		t.Fatalf("table %+v", got.PT)
	}
	end := (ps[2].Start + ps[2].Size) * 512
	if end > 700<<20 || end < 699<<20 || ps[1].Start+ps[1].Size < ps[2].Start+ps[2].Size {
		t.Errorf("logical ends at %d, extended %+v", end, ps[1])
	}
	if _, err := os.Stat(dev + "p5"); err != nil {
		t.Errorf("logical partition node: %v", err)
	}
}
