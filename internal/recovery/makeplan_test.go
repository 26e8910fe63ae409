package recovery

import (
	"errors"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/inventory"
)

const (
	espType   = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	linuxType = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
	swapType  = "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"
)

// gptDoc is a recorded 1 GiB GPT disk: ESP 64 MiB, root ext4 640 MiB
// holding usedRoot bytes, swap to the end.
func gptDoc(usedRoot int64) *inventory.Document {
	s := int64(512)
	return &inventory.Document{
		Version: 1, Host: "web1", Boot: inventory.Boot{Mode: "uefi"},
		Disks: []inventory.Disk{{Name: "sda", Path: "/dev/sda", SizeBytes: 1 << 30, LogicalSectorSize: 512, Table: &inventory.PartitionTable{
			Type: "gpt", ID: "11111111-2222-3333-4444-555555555555", SectorSize: 512, FirstLBA: 2048, LastLBA: (1<<30)/s - 34,
			Partitions: []inventory.Partition{
				{Number: 1, Path: "/dev/sda1", Start: 2048, Size: 64 * MiB / s, Type: espType, UUID: "AAAA0001-0000-0000-0000-000000000001", Name: "EFI"},
				{Number: 2, Path: "/dev/sda2", Start: 2048 + 64*MiB/s, Size: 640 * MiB / s, Type: linuxType, UUID: "AAAA0002-0000-0000-0000-000000000002", Name: "root", Attrs: "LegacyBIOSBootable"},
				{Number: 3, Path: "/dev/sda3", Start: 2048 + 704*MiB/s, Size: (1<<30)/s - 34 - (2048 + 704*MiB/s) + 1, Type: swapType, UUID: "AAAA0003-0000-0000-0000-000000000003"},
			}}}},
		Filesystems: []inventory.Filesystem{
			{Device: "/dev/sda1", Type: "vfat", UUID: "ABCD-1234", Label: "ESP", SizeBytes: 64 * MiB},
			{Device: "/dev/sda2", Type: "ext4", UUID: "0e0e0e0e-1111-2222-3333-444444444444", Label: "root", SizeBytes: 640 * MiB, UsedBytes: usedRoot,
				Mounts: []inventory.Mount{{Target: "/", Root: "/"}}},
			{Device: "/dev/sda3", Type: "swap", UUID: "5a5a5a5a-1111-2222-3333-444444444444", SizeBytes: 300 * MiB},
		},
		Fstab: &inventory.TextFile{Path: "/etc/fstab", Content: "# static\nUUID=0e0e0e0e-1111-2222-3333-444444444444 / ext4 errors=remount-ro 0 1\n" +
			"PARTUUID=aaaa0001-0000-0000-0000-000000000001 /boot/efi vfat umask=0077 0 1\n/dev/sda3 none swap sw 0 0\ntmpfs /tmp tmpfs defaults 0 0\n"},
	}
}

func TestMakePlanGrow(t *testing.T) {
	doc := gptDoc(100 * MiB)
	p, err := MakePlan(doc, []Target{{Path: "/dev/vdb", SizeBytes: 2 << 30, SectorSize: 512}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Host != "web1" || p.BootMode != "uefi" || len(p.Disks) != 1 {
		t.Fatalf("plan %+v", p)
	}
	d := p.Disks[0]
	if d.Source != "/dev/sda" || d.Target != "/dev/vdb" || d.Table.ID != doc.Disks[0].Table.ID || d.Table.Type != "gpt" {
		t.Errorf("disk %+v", d)
	}
	src := doc.Disks[0].Table.Partitions
	for i, np := range d.Table.Partitions {
		if np.Type != src[i].Type || np.UUID != src[i].UUID || np.Name != src[i].Name || np.Attrs != src[i].Attrs || np.Start != src[i].Start {
			t.Errorf("partition %d: %+v, recorded %+v", i+1, np, src[i])
		}
		if want := "/dev/vdb" + string(rune('1'+i)); np.Path != want {
			t.Errorf("partition %d path %s, want %s", i+1, np.Path, want)
		}
	}
	if d.Table.Partitions[0].Size != src[0].Size || d.Table.Partitions[1].Size != src[1].Size {
		t.Errorf("first partitions changed size: %+v", d.Table.Partitions)
	}
	last := d.Table.Partitions[2]
	endBytes := (last.Start + last.Size) * 512
	if endBytes > 2<<30-gptTail(512) || endBytes < 2<<30-gptTail(512)-MiB || last.Size*512%MiB != 0 {
		t.Errorf("last partition ends at %d of %d bytes (size %d)", endBytes, 2<<30, last.Size*512)
	}
	if d.Resized != "/dev/sda3" || d.NewPartLen != last.Size*512 || d.OldPartLen != src[2].Size*512 {
		t.Errorf("resized %q %d -> %d", d.Resized, d.OldPartLen, d.NewPartLen)
	}
	if len(p.Filesystems) != 3 || p.Filesystems[1].Device != "/dev/vdb2" || p.Filesystems[1].UUID != doc.Filesystems[1].UUID || p.Filesystems[2].SizeBytes != last.Size*512 {
		t.Errorf("filesystems %+v", p.Filesystems)
	}
	want := []MountPlan{{Target: "/", Device: "/dev/vdb2", Type: "ext4"}, {Target: "/boot/efi", Device: "/dev/vdb1", Type: "vfat"}}
	if len(p.Mounts) != 2 || p.Mounts[0] != want[0] || p.Mounts[1] != want[1] {
		t.Errorf("mounts %+v, want %+v", p.Mounts, want)
	}
	if len(p.Warnings) != 0 {
		t.Errorf("warnings %q", p.Warnings)
	}
}

// TestMakePlanShrink puts the 1 GiB disk on 800 MiB, then on a disk too
// small for the root's data, with a map making root the last partition
// to grow.
func TestMakePlanShrink(t *testing.T) {
	doc := gptDoc(100 * MiB)
	p, err := MakePlan(doc, []Target{{Path: "/dev/loop7", SizeBytes: 800 * MiB, SectorSize: 512}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	last := p.Disks[0].Table.Partitions[2]
	if last.Path != "/dev/loop7p3" || last.Size*512 != 94*MiB {
		t.Errorf("swap %+v: %d bytes, want 94 MiB", last, last.Size*512)
	}
	// Swap shrinks to nothing: 704 MiB before it plus 1 MiB at least.
	_, err = MakePlan(doc, []Target{{Path: "/dev/loop7", SizeBytes: 700 * MiB, SectorSize: 512}}, nil)
	if !errors.Is(err, ErrTooSmall) || !strings.Contains(err.Error(), "bytes missing") {
		t.Errorf("700 MiB target: %v", err)
	}
	// Root sized to 50 MiB by the map while it holds 100 MiB.
	m := &Mapping{Sizes: map[string]int64{"sda2": 50 * MiB}}
	_, err = MakePlan(doc, []Target{{Path: "/dev/loop7", SizeBytes: 2 << 30, SectorSize: 512}}, m)
	if !errors.Is(err, ErrTooSmall) || !strings.Contains(err.Error(), "60817408 bytes missing") {
		t.Errorf("root shrunk below its data: %v", err)
	}
	// Root at 200 MiB by the map: swap moves down and takes the rest.
	m = &Mapping{Sizes: map[string]int64{"sda2": 200 * MiB}}
	p, err = MakePlan(doc, []Target{{Path: "/dev/loop7", SizeBytes: 600 * MiB, SectorSize: 512}}, m)
	if err != nil {
		t.Fatal(err)
	}
	pts := p.Disks[0].Table.Partitions
	if pts[1].Size*512 != 200*MiB || pts[2].Start != pts[1].Start+pts[1].Size || pts[2].Size*512 < 300*MiB {
		t.Errorf("partitions %+v", pts)
	}
}

// TestMakePlanLastHoldsData: the last partition holds data and would
// shrink below it.
func TestMakePlanLastHoldsData(t *testing.T) {
	doc := gptDoc(0)
	doc.Filesystems[2] = inventory.Filesystem{Device: "/dev/sda3", Type: "xfs", UUID: "x", SizeBytes: 300 * MiB, UsedBytes: 200 * MiB}
	_, err := MakePlan(doc, []Target{{Path: "/dev/vdc", SizeBytes: 800 * MiB, SectorSize: 512}}, nil)
	if !errors.Is(err, ErrTooSmall) || !strings.Contains(err.Error(), "/dev/sda3") || !strings.Contains(err.Error(), "183500800 bytes missing") {
		t.Errorf("err %v", err)
	}
}

func TestMakePlanDOS4K(t *testing.T) {
	doc := &inventory.Document{Version: 1, Host: "old", Disks: []inventory.Disk{{Name: "sda", Path: "/dev/sda", SizeBytes: 512 * MiB, Table: &inventory.PartitionTable{
		Type: "dos", ID: "0x1234abcd", SectorSize: 512, Partitions: []inventory.Partition{
			{Number: 1, Path: "/dev/sda1", Start: 2048, Size: 200 * MiB / 512, Type: "83", Bootable: true},
			{Number: 2, Path: "/dev/sda2", Start: 2048 + 200*MiB/512, Size: 300 * MiB / 512, Type: "5"},
			{Number: 5, Path: "/dev/sda5", Start: 2048 + 201*MiB/512, Size: 299 * MiB / 512, Type: "83"},
		}}}},
		Filesystems: []inventory.Filesystem{{Device: "/dev/sda1", Type: "ext4", UUID: "u1", Mounts: []inventory.Mount{{Target: "/", Root: "/"}}}, {Device: "/dev/sda5", Type: "ext4", UUID: "u5"}},
	}
	p, err := MakePlan(doc, []Target{{Path: "/dev/nvme0n1", SizeBytes: 1 << 30, SectorSize: 4096}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.BootMode != "bios" {
		t.Errorf("boot mode %q", p.BootMode)
	}
	tb := p.Disks[0].Table
	if tb.SectorSize != 4096 || tb.ID != "0x1234abcd" || len(tb.Partitions) != 3 {
		t.Fatalf("table %+v", tb)
	}
	p1, ext, l5 := tb.Partitions[0], tb.Partitions[1], tb.Partitions[2]
	if p1.Start != 2048*512/4096 || p1.Size != 200*MiB/4096 || !p1.Bootable || p1.Path != "/dev/nvme0n1p1" {
		t.Errorf("p1 %+v", p1)
	}
	if l5.Number != 5 || l5.Path != "/dev/nvme0n1p5" || (l5.Start+l5.Size)*4096 != 1<<30-MiB+0 && (l5.Start+l5.Size)*4096 != 1<<30 {
		t.Errorf("logical %+v ends at %d", l5, (l5.Start+l5.Size)*4096)
	}
	if ext.Start+ext.Size != l5.Start+l5.Size {
		t.Errorf("extended %+v does not end with its logical %+v", ext, l5)
	}
	if p.Disks[0].Resized != "/dev/sda5" {
		t.Errorf("resized %q", p.Disks[0].Resized)
	}
}

func TestMakePlanMapping(t *testing.T) {
	doc := gptDoc(0)
	second := doc.Disks[0]
	second.Name, second.Path = "sdb", "/dev/sdb"
	tb := *second.Table
	tb.Partitions = []inventory.Partition{{Number: 1, Path: "/dev/sdb1", Start: 2048, Size: 1000, Type: linuxType}}
	second.Table = &tb
	doc.Disks = append(doc.Disks, second)
	targets := []Target{{Path: "/dev/vdb", SizeBytes: 2 << 30}, {Path: "/dev/vdc", SizeBytes: 2 << 30}}
	m, err := ParseMapping(strings.NewReader("# swap them\nsda -> /dev/vdc\n/dev/sdb -> /dev/vdb  # the data disk\n"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := MakePlan(doc, targets, m)
	if err != nil {
		t.Fatal(err)
	}
	if p.Disks[0].Target != "/dev/vdc" || p.Disks[1].Target != "/dev/vdb" || p.Disks[1].Table.Partitions[0].Path != "/dev/vdb1" {
		t.Errorf("disks %+v", p.Disks)
	}
	// In order without a map.
	p, err = MakePlan(doc, targets, nil)
	if err != nil || p.Disks[0].Target != "/dev/vdb" {
		t.Errorf("%v %+v", err, p)
	}
	for _, c := range []struct{ m, want string }{
		{"sdz -> /dev/vdb\n", "does not record"},
		{"sda -> /dev/vdz\n", "not a target disk"},
	} {
		m, err := ParseMapping(strings.NewReader(c.m))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := MakePlan(doc, targets, m); !errors.Is(err, ErrPlan) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("map %q: %v", c.m, err)
		}
	}
	if _, err := MakePlan(doc, targets[:1], nil); !errors.Is(err, ErrPlan) || !strings.Contains(err.Error(), "2 recorded disks") {
		t.Errorf("one target for two disks: %v", err)
	}
}

func TestParseMapping(t *testing.T) {
	m, err := ParseMapping(strings.NewReader("sda -> /dev/vdb\nsda2 size=20GiB\n/dev/sda3 size=512M\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Disks["sda"] != "/dev/vdb" || m.Sizes["sda2"] != 20<<30 || m.Sizes["sda3"] != 512<<20 {
		t.Errorf("%+v", m)
	}
	for _, bad := range []string{"sda /dev/vdb\n", "sda -> vdb\n", "sda -> /dev/a\nsda -> /dev/b\n", "sda -> /dev/a\nsdb -> /dev/a\n", "sda2 size=-1\n", "sda2 size=lots\n", "sda2 size=1G extra\n"} {
		if _, err := ParseMapping(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "map line") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func FuzzParseMapping(f *testing.F) {
	f.Add("sda -> /dev/vdb\nsda2 size=20GiB\n")
	f.Add("# c\n/dev/nvme0n1->/dev/sdc\n")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMapping(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, v := range m.Sizes {
			if v <= 0 {
				t.Errorf("size %d from %q", v, s)
			}
		}
	})
}

func TestParseFstabResolve(t *testing.T) {
	doc := gptDoc(0)
	doc.Disks[0].Table.Partitions[1].Name = "my root"
	r := newResolver(doc)
	for spec, want := range map[string]string{
		"UUID=0E0E0E0E-1111-2222-3333-444444444444": "/dev/sda2",
		"LABEL=ESP":               "/dev/sda1",
		`PARTLABEL=my\040root`:    "/dev/sda2",
		"/dev/disk/by-label/root": "/dev/sda2",
		"/dev/sda3":               "/dev/sda3",
		"/dev/sdq1":               "",
		"tmpfs":                   "",
		"PARTUUID=AAAA0001-0000-0000-0000-000000000001": "/dev/sda1",
	} {
		if got := r.device(unescape(spec)); got != want {
			t.Errorf("%s -> %q, want %q", spec, got, want)
		}
	}
	es := ParseFstab("a /x\\040y ext4 defaults 0 0\n# c\nshort line\n")
	if len(es) != 1 || es[0].File != "/x y" || es[0].Line != 1 {
		t.Errorf("%+v", es)
	}
}
