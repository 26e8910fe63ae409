package inventory

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"version":1,"host":"h","disks":[{"name":"sda","partition_table":{"type":"gpt","partitions":[{"number":1,"start":2048,"size":4096}]}}]}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`{"version":0}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Decode(data)
		if err != nil {
			return
		}
		if d.Version < 1 || d.Version > Version {
			t.Fatalf("decoded version %d", d.Version)
		}
		// What decodes encodes, decodes again to the same content, and
		// compares equal to itself in a diff.
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		d2, err := Decode(b)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !SameContent(d, d2) {
			t.Fatal("round trip changed the content")
		}
		if c := Diff(d, d2); len(c) != 0 {
			t.Fatalf("diff of a document with itself: %+v", c)
		}
	})
}

func TestDecodeVersions(t *testing.T) {
	if _, err := Decode([]byte(`{"version":2}`)); !errors.Is(err, ErrNewerVersion) {
		t.Errorf("version 2: %v", err)
	}
	if _, err := Decode([]byte(`{"host":"x"}`)); err == nil {
		t.Error("no version accepted")
	}
	d, err := Decode([]byte(`{"version":1,"hostname":"x","future":{"a":1}}`))
	if err != nil || d.Host != "x" {
		t.Errorf("unknown field: %v %+v", err, d)
	}
}

// fakeRunner answers programs from canned outputs, keyed by the argument
// list; anything else is "not installed".
type fakeRunner map[string]string

func (f fakeRunner) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	key := strings.Join(append([]string{name}, args...), " ")
	if out, ok := f[key]; ok {
		return []byte(out), nil
	}
	return nil, &ExitError{Name: name, Code: 127, Stderr: "not faked"}
}

func write(t *testing.T, root, path, content string) {
	t.Helper()
	p := filepath.Join(root, path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fixtureSystem writes a system to fixture directories: the root's /etc,
// a fake sysfs and procfs whose mountinfo mounts sda1 at mountAt, and
// canned program outputs.
func fixtureSystem(t *testing.T, root, mountAt string) (sys, proc string, run fakeRunner) {
	sys, proc = t.TempDir(), t.TempDir()
	write(t, root, "etc/passwd", "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000:Alice,,,:/home/alice:/bin/zsh\n")
	write(t, root, "etc/group", "root:x:0:\nsudo:x:27:alice,bob\n")
	write(t, root, "etc/shadow", "root:$6$secret:19000:0:99999:7:::\n")
	write(t, root, "etc/fstab", "UUID=abc / ext4 errors=remount-ro 0 1\n")
	write(t, root, "etc/hostname", "web1\n")
	write(t, root, "etc/crontab", "17 * * * * root run-parts /etc/cron.hourly\n")
	write(t, root, "etc/cron.d/backup", "0 2 * * * root rewind backup /\n")
	write(t, root, "var/spool/cron/crontabs/alice", "@reboot echo hi\n")
	write(t, root, "boot/grub/grub.cfg", "menuentry\n")
	write(t, root, "boot/vmlinuz-6.1.0-9-amd64", "")
	write(t, root, "boot/vmlinuz-6.1.0-18-amd64", "")
	write(t, root, "usr/lib/os-release", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n")
	// An absolute link, as Debian's resolv.conf often is: read inside
	// the root, not from this host.
	write(t, root, "run/resolv/resolv.conf", "nameserver 192.0.2.53\n")
	if err := os.Symlink("/run/resolv/resolv.conf", filepath.Join(root, "etc/resolv.conf")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../usr/lib/os-release", filepath.Join(root, "etc/os-release")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "etc/systemd/system/multi-user.target.wants"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/lib/systemd/system/nginx.service", filepath.Join(root, "etc/systemd/system/multi-user.target.wants/nginx.service")); err != nil {
		t.Fatal(err)
	}
	write(t, sys, "block/sda/size", "2097152\n")
	write(t, sys, "block/sda/queue/logical_block_size", "512\n")
	write(t, sys, "block/sda/queue/physical_block_size", "4096\n")
	write(t, sys, "block/sda/device/model", "QEMU HARDDISK   \n")
	write(t, sys, "block/sda/sda1/partition", "1\n")
	write(t, sys, "class/block/sda1/size", "2095071\n")
	write(t, sys, "class/block/sda1/dev", "8:1\n")
	write(t, sys, "block/loop0/size", "100\n")
	write(t, sys, "firmware/efi/efivars/x", "")
	write(t, proc, "sys/kernel/osrelease", "6.1.0-18-amd64\n")
	write(t, proc, "sys/kernel/hostname", "web1\n")
	write(t, proc, "cmdline", "BOOT_IMAGE=/vmlinuz root=UUID=abc ro quiet\n")
	write(t, proc, "self/mountinfo", "26 1 8:1 / "+mountAt+" rw,relatime - ext4 /dev/sda1 rw,errors=remount-ro\n"+
		"27 26 0:5 / "+mountAt+"/proc rw - proc proc rw\n"+
		"28 1 8:1 /srv /srv rw,relatime - ext4 /dev/sda1 rw,errors=remount-ro\n")
	run = fakeRunner{
		"sfdisk -J /dev/sda": `{"partitiontable":{"label":"gpt","id":"D1A2","device":"/dev/sda","unit":"sectors","firstlba":34,"lastlba":2097118,"sectorsize":512,
			"partitions":[{"node":"/dev/sda1","start":2048,"size":2095071,"type":"0FC63DAF-8483-4772-8E79-3D69D8477DE4","uuid":"P1","name":"root"}]}}`,
		"blkid -p -o export /dev/sda1":   "DEVNAME=/dev/sda1\nUUID=abc\nTYPE=ext4\nLABEL=root\n",
		"dumpe2fs -h /dev/sda1":          "Filesystem features:      has_journal extent\nBlock count:              261883\nFree blocks:              1000\n",
		"efibootmgr -v":                  "BootCurrent: 0001\nBootOrder: 0001,0000\nBoot0000* UEFI Shell\tFvVol(x)\nBoot0001* debian\tHD(1,GPT,abc)/File(\\EFI\\debian\\shimx64.efi)\n",
		"ip -j addr show":                `[{"ifname":"eth0","link_type":"ether","address":"52:54:00:12:34:56","mtu":1500,"addr_info":[{"family":"inet","local":"192.0.2.7","prefixlen":24,"scope":"global","valid_life_time":3600}]}]`,
		"ip -j -4 route show table main": `[{"dst":"default","gateway":"192.0.2.1","dev":"eth0"}]`,
		"ip -j -6 route show table main": `[]`,
	}
	return sys, proc, run
}

// TestCollectFixture reads a system that is not running, rooted at a
// fixture directory (Sources.Root), with a fake sysfs and procfs and
// canned program outputs.
func TestCollectFixture(t *testing.T) {
	root := t.TempDir()
	sys, proc, run := fixtureSystem(t, root, root)
	doc, err := Collect(context.Background(), Sources{Root: root, Sys: sys, Proc: proc, Runner: run,
		Now: func() time.Time { return time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC) }}, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Disks) != 1 || doc.Disks[0].Model != "QEMU HARDDISK" || doc.Disks[0].SizeBytes != 1<<30 || doc.Disks[0].PhysicalSectorSize != 4096 {
		t.Errorf("disks (loop0 left out): %+v", doc.Disks)
	}
	if p := doc.Disks[0].Table.Partitions; len(p) != 1 || p[0].Number != 1 || p[0].UUID != "P1" {
		t.Errorf("partitions: %+v", p)
	}
	if len(doc.Filesystems) != 1 {
		t.Fatalf("filesystems: %+v", doc.Filesystems)
	}
	fs := doc.Filesystems[0]
	// Mounted at root: "/" for that system; its mount on /srv of this
	// host and the procfs under root are not the system's.
	if fs.UUID != "abc" || fs.Label != "root" || len(fs.Mounts) != 1 || fs.Mounts[0].Target != "/" || fs.Mounts[0].Super != "rw,errors=remount-ro" ||
		!slices.Equal(fs.Features, []string{"has_journal", "extent"}) || fs.Params["Block count"] != "261883" || fs.Params["Free blocks"] != "" {
		t.Errorf("filesystem: %+v", fs)
	}
	// statfs of root: a temporary directory's filesystem holds something.
	if fs.UsedBytes <= 0 {
		t.Errorf("used bytes %d", fs.UsedBytes)
	}
	// No ESP on the disk: bios, whatever this host's firmware is, and no
	// EFI variables of this host.
	if doc.Boot.Mode != "bios" || !slices.Equal(doc.Boot.Loaders, []string{"grub"}) || doc.Boot.EFI != nil {
		t.Errorf("boot: %+v %+v", doc.Boot, doc.Boot.EFI)
	}
	if doc.Kernel.Release != "" || doc.Kernel.Cmdline != "" || !slices.Equal(doc.Kernel.Installed, []string{"6.1.0-9-amd64", "6.1.0-18-amd64"}) {
		t.Errorf("kernel: %+v", doc.Kernel)
	}
	if doc.Hostname.Etc != "web1" || doc.Hostname.Kernel != "" || doc.OS["PRETTY_NAME"] != "Debian GNU/Linux 12 (bookworm)" {
		t.Errorf("host, os: %+v %v", doc.Hostname, doc.OS)
	}
	if len(doc.Users) != 2 || doc.Users[1] != (User{Name: "alice", UID: 1000, GID: 1000, Gecos: "Alice,,,", Home: "/home/alice", Shell: "/bin/zsh"}) {
		t.Errorf("users: %+v", doc.Users)
	}
	if len(doc.Groups) != 2 || !slices.Equal(doc.Groups[1].Members, []string{"alice", "bob"}) {
		t.Errorf("groups: %+v", doc.Groups)
	}
	if doc.Fstab == nil || doc.Fstab.Content != "UUID=abc / ext4 errors=remount-ro 0 1\n" {
		t.Errorf("fstab: %+v", doc.Fstab)
	}
	b, _ := json.Marshal(doc)
	if strings.Contains(string(b), "secret") || strings.Contains(string(b), "$6$") {
		t.Error("the document holds a password hash")
	}
	if len(doc.Units) != 1 || doc.Units[0] != (Unit{Name: "nginx.service", By: "multi-user.target", Kind: "wants"}) {
		t.Errorf("units: %+v", doc.Units)
	}
	var paths []string
	for _, c := range doc.Crontabs {
		paths = append(paths, c.Path)
	}
	if !slices.Equal(paths, []string{"/etc/crontab", "/etc/cron.d/backup", "/var/spool/cron/crontabs/alice"}) {
		t.Errorf("crontabs: %v", paths)
	}
	// This host's interfaces are not that system's; its resolv.conf is.
	if len(doc.Network.Interfaces) != 0 || len(doc.Network.Routes) != 0 || doc.Network.Resolv != "nameserver 192.0.2.53\n" {
		t.Errorf("network: %+v", doc.Network)
	}
	// No dpkg database in the fixture: a warning, not a failure.
	if !slices.ContainsFunc(doc.Warnings, func(w string) bool { return strings.Contains(w, "packages") }) {
		t.Errorf("warnings: %v", doc.Warnings)
	}
}

// TestCollectFixtureRunning reads the running system's kernel, firmware
// and network from a fake sysfs, procfs and program outputs (its files
// are this host's own).
func TestCollectFixtureRunning(t *testing.T) {
	sys, proc, run := fixtureSystem(t, t.TempDir(), "/")
	doc, err := Collect(context.Background(), Sources{Sys: sys, Proc: proc, Runner: run}, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Filesystems) != 1 {
		t.Fatalf("filesystems: %+v", doc.Filesystems)
	}
	var targets []string
	for _, m := range doc.Filesystems[0].Mounts {
		targets = append(targets, m.Target)
	}
	if !slices.Equal(targets, []string{"/", "/srv"}) || doc.Filesystems[0].UsedBytes <= 0 {
		t.Errorf("filesystem: %+v", doc.Filesystems[0])
	}
	if doc.Boot.Mode != "uefi" || doc.Boot.EFI == nil ||
		!slices.Equal(doc.Boot.EFI.Order, []string{"0001", "0000"}) || len(doc.Boot.EFI.Entries) != 2 ||
		doc.Boot.EFI.Entries[1].Label != "debian" || !strings.Contains(doc.Boot.EFI.Entries[1].Path, "shimx64") {
		t.Errorf("boot: %+v %+v", doc.Boot, doc.Boot.EFI)
	}
	if doc.Kernel.Release != "6.1.0-18-amd64" || doc.Kernel.Cmdline == "" || doc.Hostname.Kernel != "web1" {
		t.Errorf("kernel, host: %+v %+v", doc.Kernel, doc.Hostname)
	}
	if len(doc.Network.Interfaces) != 1 || doc.Network.Interfaces[0].Addresses[0].CIDR != "192.0.2.7/24" || len(doc.Network.Routes) != 1 {
		t.Errorf("network: %+v", doc.Network)
	}
}

func TestDiffPackagesUnitsUsers(t *testing.T) {
	a := &Document{Version: 1,
		Packages: Packages{List: []Package{{"nginx", "1.22.1-9", "amd64"}, {"old", "1", "all"}, {"libc6", "2.36-9+deb12u4", "amd64"}}},
		Units:    []Unit{{"ssh.service", "multi-user.target", "wants"}},
		Users:    []User{{Name: "root"}},
		Kernel:   Kernel{Release: "6.1.0-17-amd64"},
		Fstab:    &TextFile{Content: "UUID=a / ext4 defaults 0 1\n"},
	}
	b := &Document{Version: 1,
		Packages: Packages{List: []Package{{"nginx", "1.22.1-9+deb12u1", "amd64"}, {"new", "2", "all"}, {"libc6", "2.36-9~bpo", "amd64"}}},
		Units:    []Unit{{"nginx.service", "multi-user.target", "wants"}},
		Users:    []User{{Name: "root"}, {Name: "www", UID: 33}},
		Kernel:   Kernel{Release: "6.1.0-18-amd64"},
		Fstab:    &TextFile{Content: "UUID=a / ext4 defaults 0 1\nUUID=b /srv xfs defaults 0 2\n"},
	}
	got := map[string]Change{}
	for _, c := range Diff(a, b) {
		got[c.Section+" "+c.Item] = c
	}
	want := map[string]string{
		"package nginx:amd64":                          "upgraded",
		"package libc6:amd64":                          "downgraded",
		"package new:all":                              "added",
		"package old:all":                              "removed",
		"unit nginx.service (multi-user.target.wants)": "enabled",
		"unit ssh.service (multi-user.target.wants)":   "disabled",
		"user www":                           "added",
		"kernel ":                            "changed",
		"fstab UUID=b /srv xfs defaults 0 2": "added",
	}
	for k, kind := range want {
		if got[k].Kind != kind {
			t.Errorf("%s: %+v, want %s", k, got[k], kind)
		}
	}
	if len(got) != len(want) {
		t.Errorf("changes %+v", got)
	}
	if c := got["package nginx:amd64"]; c.Old != "1.22.1-9" || c.New != "1.22.1-9+deb12u1" {
		t.Errorf("versions: %+v", c)
	}
}

func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"1.0", "1.0", 0}, {"1.0", "1.1", -1}, {"1.10", "1.9", 1}, {"1:1.0", "2.0", 1},
		{"1.0~rc1", "1.0", -1}, {"1.0-1", "1.0-2", -1}, {"1.0a", "1.0", 1}, {"2.36-9+deb12u4", "2.36-9", 1},
		{"1.0+b1", "1.0", 1}, {"0.9", "0.10", -1},
	} {
		if got := CompareVersions(c.a, c.b); got != c.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
		if got := CompareVersions(c.b, c.a); got != -c.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", c.b, c.a, got, -c.want)
		}
	}
}

func TestParsers(t *testing.T) {
	subs := parseSubvolumes("ID 256 gen 9 top level 5 path <FS_TREE>/home\nID 257 gen 10 top level 256 path <FS_TREE>/home/my docs\n")
	if len(subs) != 2 || subs[1] != (Subvolume{ID: 257, TopLevel: 256, Path: "home/my docs"}) {
		t.Errorf("subvolumes %+v", subs)
	}
	flags := btrfsFlags("csum_type\t\t0 (crc32c)\nincompat_flags\t\t0x361\n\t\t\t( MIXED_BACKREF |\n\t\t\t  BIG_METADATA |\n\t\t\t  NO_HOLES )\ncache_generation\t18446744073709551615\n")
	if !slices.Equal(flags, []string{"big_metadata", "mixed_backref", "no_holes"}) {
		t.Errorf("btrfs flags %v", flags)
	}
	if got := unescapeMount(`/mnt/my\040disk`); got != "/mnt/my disk" {
		t.Errorf("unescape: %q", got)
	}
	if h := luksHeader("LUKS header information\nVersion: 2\nUUID: x\nKeyslots:\n  0: luks2\n    Salt: abc\n"); strings.Contains(h, "Salt") || !strings.Contains(h, "UUID: x") {
		t.Errorf("luks header %q", h)
	}
}
