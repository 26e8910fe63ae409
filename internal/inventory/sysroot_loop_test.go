package inventory

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/testutil"
	"golang.org/x/sys/unix"
)

// TestCollectSystemRoot records a system that is not running: a GPT loop
// disk with an ESP, an ext4 /boot and an ext4 root, the root mounted at
// a temporary directory and /boot at its boot. The ESP is not mounted
// (no vfat in this machine's kernel): its loader is found with mtools.
func TestCollectSystemRoot(t *testing.T) {
	for _, uefi := range []bool{true, false} {
		name := map[bool]string{true: "uefi", false: "bios"}[uefi]
		t.Run(name, func(t *testing.T) {
			d := testutil.NewSystemDisk(t, testutil.SystemDiskOptions{Hostname: "cold-srv", EFILoader: uefi})
			if err := os.WriteFile(filepath.Join(d.Root, "data"), make([]byte, 3<<20), 0o644); err != nil {
				t.Fatal(err)
			}
			unix.Sync()
			doc, err := Collect(context.Background(), Sources{Root: d.Root, Disks: []string{d.Dev}}, "cold-srv")
			if err != nil {
				t.Fatal(err)
			}
			checkSystemRoot(t, doc, d, name)
		})
	}
}

func checkSystemRoot(t *testing.T, doc *Document, d *testutil.SystemDisk, mode string) {
	t.Helper()
	if len(doc.Disks) != 1 || doc.Disks[0].Path != d.Dev || doc.Disks[0].Table == nil || len(doc.Disks[0].Table.Partitions) != 3 {
		t.Fatalf("disks: %+v", doc.Disks)
	}
	fss := map[string]Filesystem{}
	for _, f := range doc.Filesystems {
		fss[f.Device] = f
	}
	root, boot, esp := fss[d.RootPart], fss[d.BootPart], fss[d.ESP]
	if root.Type != "ext4" || root.UUID != d.RootUUID || boot.UUID != d.BootUUID || esp.Type != "vfat" || esp.UUID != d.ESPUUID {
		t.Fatalf("filesystems: %+v", doc.Filesystems)
	}
	// Mounts as the system names them; nothing of this host's paths.
	if len(root.Mounts) != 1 || root.Mounts[0].Target != "/" || len(boot.Mounts) != 1 || boot.Mounts[0].Target != "/boot" || len(esp.Mounts) != 0 {
		t.Errorf("mounts: root %+v, boot %+v, esp %+v", root.Mounts, boot.Mounts, esp.Mounts)
	}
	// statfs counts what df counts: the 3 MiB file and a few blocks,
	// less than the device. Unmounted, the ESP has no figure.
	if root.UsedBytes < 3<<20 || root.UsedBytes > 4<<20 || boot.UsedBytes <= 0 || boot.UsedBytes >= boot.SizeBytes || esp.UsedBytes != 0 {
		t.Errorf("used bytes: root %d of %d, boot %d of %d, esp %d", root.UsedBytes, root.SizeBytes, boot.UsedBytes, boot.SizeBytes, esp.UsedBytes)
	}
	if doc.Boot.Mode != mode || !slices.Equal(doc.Boot.Loaders, []string{"grub"}) || doc.Boot.EFI != nil {
		t.Errorf("boot: %+v, want mode %s", doc.Boot, mode)
	}
	if doc.Hostname.Etc != "cold-srv" || doc.Hostname.Kernel != "" {
		t.Errorf("host names: %+v", doc.Hostname)
	}
	if doc.Fstab == nil || !strings.Contains(doc.Fstab.Content, "UUID="+d.RootUUID+" / ext4") {
		t.Errorf("fstab: %+v", doc.Fstab)
	}
	if doc.Kernel.Release != "" || !slices.Equal(doc.Kernel.Installed, []string{"6.1.0-test-amd64"}) {
		t.Errorf("kernel: %+v", doc.Kernel)
	}
	if len(doc.Users) != 1 || doc.Users[0].Name != "root" {
		t.Errorf("users: %+v", doc.Users)
	}
	for _, w := range doc.Warnings {
		if strings.Contains(w, d.Dev) {
			t.Errorf("warning about the test disk: %s", w)
		}
	}
}

// A mounted ESP is read through its mount: EFI/<dir>/<loader>.efi in any
// letter case.
func TestEFILoaderIn(t *testing.T) {
	dir := t.TempDir()
	if efiLoaderIn(dir) {
		t.Error("loader in an empty directory")
	}
	write(t, dir, "efi/debian/README", "")
	if efiLoaderIn(dir) {
		t.Error("loader without an .efi file")
	}
	write(t, dir, "efi/debian/grubx64.EFI", "")
	if !efiLoaderIn(dir) {
		t.Error("grubx64.EFI not found")
	}
}

// TestSystemDevices names the filesystems of the system's disks mounted
// under its root, and not a tmpfs mounted there, nor filesystems of
// other disks.
func TestSystemDevices(t *testing.T) {
	d := testutil.NewSystemDisk(t, testutil.SystemDiskOptions{})
	testutil.MountTmpfs(t, filepath.Join(d.Root, "run"))
	dev := func(p string) uint64 {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		return st.Dev
	}
	want := []uint64{dev(d.Root), dev(filepath.Join(d.Root, "boot"))}
	slices.Sort(want)
	for _, disks := range [][]string{{d.Dev}, nil} {
		got, err := SystemDevices(Sources{Root: d.Root, Disks: disks})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("disks %v: devices %v, want %v (root, /boot)", disks, got, want)
		}
	}
	// Another disk: nothing of this system.
	other := testutil.LoopDisk(t, 1<<20)
	if got, err := SystemDevices(Sources{Root: d.Root, Disks: []string{other}}); err != nil || len(got) != 0 {
		t.Errorf("devices of another disk: %v %v", got, err)
	}
}
