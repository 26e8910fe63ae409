package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/inventory"
	"github.com/rewind-backup/rewind/internal/testutil"
	"golang.org/x/sys/unix"
)

// TestBackupSystemRoot backs up a system that is not running: a loop
// disk (GPT: ESP with an EFI loader, ext4 /boot, ext4 root) whose root is
// mounted at a temporary folder, its /boot inside it, and a tmpfs on its
// /run. The snapshot is that system's: its hostname, its paths, its
// disks' inventory; a restore gives its files at their paths with their
// metadata.
func TestBackupSystemRoot(t *testing.T) {
	d := testutil.NewSystemDisk(t, testutil.SystemDiskOptions{Hostname: "cold-srv", EFILoader: true})
	conf := filepath.Join(d.Root, "etc", "app.conf")
	writeFiles(t, d.Root, map[string][]byte{"etc/app.conf": []byte("port=80\n"), "srv/www/index.html": []byte("hello\n")})
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	if err := os.Chown(conf, 1234, 2345); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(conf, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(conf, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/app.conf", filepath.Join(d.Root, "etc", "app.link")); err != nil {
		t.Fatal(err)
	}
	testutil.MountTmpfs(t, filepath.Join(d.Root, "run"))
	writeFiles(t, filepath.Join(d.Root, "run"), map[string][]byte{"lock": []byte("this host's\n")})

	e := newRepo(t, 0)
	sum := checkBackupJSON(t, e.mustRun("backup", "--json", "--system-root", d.Root, "--disks", d.Dev))
	if !slices.Equal(sum.NotCrossed, []jsonBoundary{{"/run", "mount-point"}}) {
		t.Errorf("not crossed: %+v (only the tmpfs on /run)", sum.NotCrossed)
	}
	sn := snapshotOf(t, e, sum.SnapshotID)
	if sn.Hostname != "cold-srv" || !slices.Equal(sn.Paths, []string{"/"}) || sn.Inventory == "" {
		t.Fatalf("snapshot: hostname %q, paths %q, inventory %q", sn.Hostname, sn.Paths, sn.Inventory)
	}
	ls := string(e.mustRun("ls", "-R", sum.SnapshotID).stdout)
	for _, p := range []string{"/etc/hostname", "/etc/app.conf", "/boot/grub/grub.cfg", "/srv/www/index.html", "/run"} {
		if !strings.Contains(ls, p+"\n") {
			t.Errorf("ls does not show %s:\n%s", p, ls)
		}
	}
	if strings.Contains(ls, d.Root) || strings.Contains(ls, "/run/lock") {
		t.Errorf("ls shows this host's paths or the tmpfs:\n%s", ls)
	}

	// The inventory is that system's.
	var doc inventory.Document
	decodeStrict(t, e.mustRun("inventory", "show", "--json", sum.SnapshotID).stdout, &doc)
	if doc.Host != "cold-srv" || doc.Hostname.Etc != "cold-srv" || doc.Boot.Mode != "uefi" || !slices.Equal(doc.Boot.Loaders, []string{"grub"}) {
		t.Errorf("inventory: host %q, host names %+v, boot %+v", doc.Host, doc.Hostname, doc.Boot)
	}
	if len(doc.Disks) != 1 || doc.Disks[0].Path != d.Dev || doc.Disks[0].Table == nil || doc.Disks[0].Table.Type != "gpt" || len(doc.Disks[0].Table.Partitions) != 3 {
		t.Fatalf("disks: %+v", doc.Disks)
	}
	if p := doc.Disks[0].Table.Partitions[0]; !strings.EqualFold(p.Type, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B") || p.Path != d.ESP {
		t.Errorf("partition 1: %+v", p)
	}
	mounts := map[string]inventory.Filesystem{}
	for _, f := range doc.Filesystems {
		for _, m := range f.Mounts {
			mounts[m.Target] = f
		}
	}
	if len(mounts) != 2 || mounts["/"].UUID != d.RootUUID || mounts["/boot"].UUID != d.BootUUID {
		t.Errorf("mounts: %+v", mounts)
	}
	if u := mounts["/"].UsedBytes; u <= 0 || u >= mounts["/"].SizeBytes {
		t.Errorf("root filesystem: %d bytes used of %d", u, mounts["/"].SizeBytes)
	}
	if doc.Fstab == nil || !strings.Contains(doc.Fstab.Content, "UUID="+d.BootUUID+" /boot ext4") {
		t.Errorf("fstab: %+v", doc.Fstab)
	}

	// Restored, the files are at the system's paths with their metadata.
	target := e.path("restored")
	e.mustRun("restore", sum.SnapshotID, "--target", target)
	for p, want := range map[string]string{"etc/hostname": "cold-srv\n", "etc/app.conf": "port=80\n", "boot/grub/grub.cfg": "set default=0\n", "srv/www/index.html": "hello\n"} {
		if got, err := os.ReadFile(filepath.Join(target, p)); err != nil || string(got) != want {
			t.Errorf("restored %s: %q %v, want %q", p, got, err, want)
		}
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(target, "etc", "app.conf"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != 1234 || st.Gid != 2345 || st.Mode&0o7777 != 0o640 || st.Mtim.Sec != mtime.Unix() {
		t.Errorf("restored etc/app.conf: uid %d gid %d mode %o mtime %d", st.Uid, st.Gid, st.Mode&0o7777, st.Mtim.Sec)
	}
	if l, err := os.Readlink(filepath.Join(target, "etc", "app.link")); err != nil || l != "/etc/app.conf" {
		t.Errorf("restored link: %q %v", l, err)
	}
	if ents, err := os.ReadDir(filepath.Join(target, "run")); err != nil || len(ents) != 0 {
		t.Errorf("restored /run: %v %v, want an empty folder", ents, err)
	}

	// Paths name the system's folders; the second backup of the same
	// paths finds its parent.
	sum2 := checkBackupJSON(t, e.mustRun("backup", "--json", "--system-root", d.Root, "--disks", d.Dev, "/etc", "/boot"))
	sn2 := snapshotOf(t, e, sum2.SnapshotID)
	if !slices.Equal(sn2.Paths, []string{"/boot", "/etc"}) || sn2.Hostname != "cold-srv" || sn2.Inventory != sn.Inventory {
		t.Errorf("second snapshot: paths %q host %q inventory %s (first %s)", sn2.Paths, sn2.Hostname, sn2.Inventory, sn.Inventory)
	}
}

// TestBackupSystemRootBadInput: each mistake is named, with what to do,
// and nothing is stored.
func TestBackupSystemRootBadInput(t *testing.T) {
	e := newRepo(t, 0)
	part := ""
	if testutil.IsRoot() {
		part = testutil.NewSystemDisk(t, testutil.SystemDiskOptions{}).ESP
	}
	noEtc := e.path("not-a-root")
	writeFiles(t, noEtc, map[string][]byte{"file": []byte("x")})
	noName := e.path("nameless")
	writeFiles(t, noName, map[string][]byte{"etc/fstab": []byte("")})
	root := e.path("root")
	writeFiles(t, root, map[string][]byte{"etc/hostname": []byte("cold\n")})
	plain := filepath.Join(root, "etc", "hostname")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--system-root", noEtc}, "does not look like a system's root"},
		{[]string{"--system-root", e.path("missing")}, "no such file"},
		{[]string{"--system-root", plain}, "not a folder"},
		{[]string{"--system-root", noName}, "give the system's name with --host"},
		{[]string{"--system-root", root, "etc"}, "absolute paths"},
		{[]string{"--system-root", root, "/nowhere"}, `"/nowhere"`},
		{[]string{"--system-root", root, "--disks", "/dev/null"}, "/dev/null: not a block device"},
		{[]string{"--system-root", root, "--disks", plain}, "not a block device"},
		{[]string{"--disks", e.path("missing-disk"), root}, "give whole disks"},
		{[]string{"--system-root", root, "--disks", part}, "a partition, not a whole disk"},
		{[]string{"--system-root", root, "--read-from", "/a=/b"}, "--read-from"},
		{[]string{"--system-root", root, "--stdin"}, "--stdin"},
	} {
		if slices.Contains(c.args, "") {
			continue // no loop disk without root
		}
		r := e.expectCode(1, append([]string{"backup"}, c.args...)...)
		if !strings.Contains(string(r.stderr), c.want) {
			t.Errorf("backup %q: stderr %q, want %q", c.args, r.stderr, c.want)
		}
	}
	if sns := listSnapshotsJSON(t, e); len(sns) != 0 {
		t.Errorf("bad input stored %d snapshots", len(sns))
	}
	// The root given is fine with --host when it has no hostname.
	sum := checkBackupJSON(t, e.mustRun("backup", "--json", "--no-inventory", "--system-root", noName, "--host", "named"))
	if sn := snapshotOf(t, e, sum.SnapshotID); sn.Hostname != "named" || !slices.Equal(sn.Paths, []string{"/"}) {
		t.Errorf("snapshot %q %q", sn.Hostname, sn.Paths)
	}
}
