package recovery

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/backend/mem"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/inventory"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/testutil"
	"golang.org/x/sys/unix"
)

// tool runs a program and fails the test when it fails.
func tool(t *testing.T, stdin, name string, args ...string) string {
	t.Helper()
	c := exec.Command(testutil.RequireTool(t, name), args...)
	c.Stdin = strings.NewReader(stdin)
	c.Env = append(os.Environ(), "LC_ALL=C")
	var out, stderr bytes.Buffer
	c.Stdout, c.Stderr = &out, &stderr
	if err := c.Run(); err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, stderr.String())
	}
	return out.String()
}

func mountT(t *testing.T, dev, dir, typ, opts string) func() {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(dev, dir, typ, 0, opts); err != nil {
		t.Fatalf("mount %s on %s: %v", dev, dir, err)
	}
	done := false
	un := func() {
		if !done {
			done = true
			if err := unix.Unmount(dir, 0); err != nil {
				t.Errorf("unmount %s: %v", dir, err)
			}
		}
	}
	t.Cleanup(un)
	return un
}

// entry is what a tree walk records of one entry: its content hash and
// the metadata restore keeps.
type entry struct {
	Mode   fs.FileMode
	UID    uint32
	GID    uint32
	Mtime  int64
	Size   int64
	Hash   string
	Link   string
	Xattrs string
	Nlink  uint64
}

// manifest walks root; mtimes of directories are left out (the restore
// writes into a directory after setting them only for the ESP's root,
// which FAT cannot date).
func manifest(t *testing.T, root string) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		fi, _ := d.Info()
		e := entry{Mode: fi.Mode(), UID: st.Uid, GID: st.Gid}
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h := sha256.Sum256(b)
			e.Hash, e.Size, e.Mtime, e.Nlink = hex.EncodeToString(h[:]), fi.Size(), st.Mtim.Nano(), st.Nlink
		case fi.Mode()&fs.ModeSymlink != 0:
			e.Link, _ = os.Readlink(p)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			buf := make([]byte, 4096)
			if n, err := unix.Llistxattr(p, buf); err == nil && n > 0 {
				names := strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
				slices.Sort(names)
				for _, nm := range names {
					v := make([]byte, 4096)
					vn, _ := unix.Lgetxattr(p, nm, v)
					e.Xattrs += nm + "=" + string(v[:max(vn, 0)]) + ";"
				}
			}
		}
		out[rel] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mtools(t *testing.T, name string, args ...string) string {
	t.Helper()
	c := exec.Command(testutil.RequireTool(t, name), args...)
	c.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	out, err := c.Output()
	if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return string(out)
}

type sourceSystem struct {
	repo     *repository.Repository
	sn       *snapshot.Snapshot
	doc      *inventory.Document
	root     string // the snapshot path of the system's root
	files    map[string]entry
	swapPath string
}

const (
	espGUID  = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	rootGUID = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
)

// makeSource builds a small UEFI system on a 200 MiB loop disk: GPT with
// an ESP (vfat), an ext4 root holding files with every kind of metadata,
// and swap; records its inventory and backs it up into a new
// repository. The disk is unmounted when it returns.
func makeSource(t *testing.T) *sourceSystem {
	for _, n := range []string{"sfdisk", "partx", "mkfs.ext4", "mkfs.vfat", "mkswap", "blkid", "dumpe2fs"} {
		testutil.RequireTool(t, n)
	}
	ctx := context.Background()
	dev := testutil.LoopDisk(t, 200<<20)
	tool(t, "label: gpt\n"+
		"size=34MiB, type="+espGUID+", name=\"EFI system\"\n"+
		"size=100MiB, type="+rootGUID+", name=root\n"+
		"type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F, name=swap\n",
		"sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", dev)
	tool(t, "", "partx", "-u", dev)
	p1, p2, p3 := dev+"p1", dev+"p2", dev+"p3"
	tool(t, "", "mkfs.vfat", "-n", "ESP", p1)
	tool(t, "", "mkfs.ext4", "-q", "-F", "-L", "srv-root", p2)
	tool(t, "", "mkswap", "-L", "swp", p3)
	src := filepath.Join(t.TempDir(), "src")
	unRoot := mountT(t, p2, src, "ext4", "")
	// This kernel may have no vfat: the ESP's files are then written in
	// its mount point on the root, as a backup of the mounted system
	// would have stored them.
	unESP := func() {}
	if kernelHas("vfat") {
		unESP = mountT(t, p1, filepath.Join(src, "boot/efi"), "vfat", "")
	}

	kv := func(dev string) map[string]string {
		m := map[string]string{}
		for _, l := range strings.Split(tool(t, "", "blkid", "-p", "-o", "export", dev), "\n") {
			if k, v, ok := strings.Cut(l, "="); ok {
				m[k] = v
			}
		}
		return m
	}
	write := func(rel, content string, mode os.FileMode) string {
		p := filepath.Join(src, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rootUUID := kv(p2)["UUID"]
	fstab := "# test system\nUUID=" + rootUUID + " / ext4 errors=remount-ro 0 1\n" +
		"PARTLABEL=EFI\\040system /boot/efi vfat umask=0077 0 1\n" +
		p3 + " none swap sw 0 0\n"
	write("etc/fstab", fstab, 0o644)
	write("etc/hostname", "rec-test\n", 0o644)
	write("boot/grub/grub.cfg", "linux /vmlinuz root="+p2+" ro\n", 0o644)
	secret := write("srv/secret", "owned by 1234\n", 0o640)
	if err := os.Chown(secret, 1234, 5678); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(secret, "user.tag", []byte("blue"), 0); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(i*7 + i>>11)
	}
	write("srv/www/big.bin", string(big), 0o644)
	if err := os.Link(filepath.Join(src, "srv/www/big.bin"), filepath.Join(src, "srv/www/big.link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../secret", filepath.Join(src, "srv/www/to-secret")); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2020, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(src, "srv/www/big.bin"), old, old); err != nil {
		t.Fatal(err)
	}
	write("boot/efi/EFI/test/loader.txt", "on the ESP\n", 0o755)

	doc, err := inventory.Collect(ctx, inventory.Sources{Disks: []string{dev}, Root: src}, "rec-test")
	if err != nil {
		t.Fatal(err)
	}
	// As `backup --system-root` records it: mounts at the system's own
	// paths, what each filesystem holds, the boot mode of the disks.
	for i := range doc.Filesystems {
		f := &doc.Filesystems[i]
		for j := range f.Mounts {
			rel := strings.TrimPrefix(f.Mounts[j].Target, src)
			if rel == "" {
				rel = "/"
			}
			f.Mounts[j].Target = rel
		}
		if len(f.Mounts) > 0 {
			var sfs unix.Statfs_t
			if err := unix.Statfs(filepath.Join(src, f.Mounts[0].Target), &sfs); err != nil {
				t.Fatal(err)
			}
			f.UsedBytes = int64(sfs.Blocks-sfs.Bfree) * sfs.Bsize
		}
	}
	doc.Boot = inventory.Boot{Mode: "uefi", Loaders: []string{"grub"}}

	be := mem.New()
	r, err := repository.Init(ctx, be, []byte("pw"), repository.InitOptions{KDF: crypto.TestKDFParams, Compression: "none"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	invID, err := inventory.Save(ctx, r, doc)
	if err != nil {
		t.Fatal(err)
	}
	a, err := archiver.New(r, archiver.Options{BeforeSave: func(_ context.Context, sn *snapshot.Snapshot) error {
		sn.Inventory = &invID
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	sn, err := a.Snapshot(ctx, []string{src})
	if err != nil {
		t.Fatal(err)
	}
	files := manifest(t, src)
	unESP()
	unRoot()
	return &sourceSystem{repo: r, sn: sn, doc: doc, root: src, files: files, swapPath: p3}
}

func TestRecover(t *testing.T) {
	if !testutil.IsRoot() {
		t.Skip("needs root")
	}
	src := makeSource(t)
	ctx := context.Background()
	srcTable := src.doc.Disks[0].Table
	fsBySource := map[string]inventory.Filesystem{}
	for _, f := range src.doc.Filesystems {
		fsBySource[f.Device] = f
	}

	for _, c := range []struct {
		name string
		size int64
	}{{"larger", 300 << 20}, {"smaller", 160 << 20}} {
		t.Run(c.name, func(t *testing.T) {
			dev := testutil.LoopDisk(t, c.size)
			tg, err := ProbeTarget(ctx, dev)
			if err != nil {
				t.Fatal(err)
			}
			if tg.SizeBytes != c.size || tg.SectorSize != 512 {
				t.Fatalf("probe %+v", tg)
			}
			opt := Options{Repo: src.repo, Snapshot: src.sn, Inventory: src.doc, Targets: []Target{tg}, Root: src.root}

			// A dry run plans and checks, and writes nothing.
			before := testutil.ContentSum(t, dev)
			dry := opt
			dry.DryRun = true
			rep, err := Recover(ctx, dry)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Plan == nil || len(rep.Phases) != 1 || testutil.ContentSum(t, dev) != before {
				t.Fatalf("dry run: %+v, disk changed %v", rep, testutil.ContentSum(t, dev) != before)
			}

			rep, err = Recover(ctx, opt)
			if err != nil {
				t.Fatalf("recover: %v (report %+v)", err, rep)
			}
			js, _ := json.MarshalIndent(rep, "", "  ")
			t.Logf("report: %s", js)
			var names []string
			for _, ph := range rep.Phases {
				names = append(names, ph.Name)
			}
			if fmt.Sprint(names) != "[plan partition mkfs restore bootloader]" {
				t.Errorf("phases %v", names)
			}

			// The table: same types, UUIDs, names; the swap took the rest.
			var got struct {
				PT struct {
					ID         string `json:"id"`
					Partitions []struct {
						Node  string `json:"node"`
						Start int64  `json:"start"`
						Size  int64  `json:"size"`
						Type  string `json:"type"`
						UUID  string `json:"uuid"`
						Name  string `json:"name"`
					} `json:"partitions"`
				} `json:"partitiontable"`
			}
			if err := json.Unmarshal([]byte(tool(t, "", "sfdisk", "-J", dev)), &got); err != nil {
				t.Fatal(err)
			}
			if got.PT.ID != srcTable.ID || len(got.PT.Partitions) != 3 {
				t.Fatalf("table %+v, recorded %+v", got.PT, srcTable)
			}
			for i, p := range got.PT.Partitions {
				w := srcTable.Partitions[i]
				if p.Type != w.Type || p.UUID != w.UUID || p.Name != w.Name || p.Start != w.Start {
					t.Errorf("partition %d: %+v, recorded %+v", i+1, p, w)
				}
				if i < 2 && p.Size != w.Size {
					t.Errorf("partition %d changed size: %d, recorded %d", i+1, p.Size, w.Size)
				}
			}
			end := (got.PT.Partitions[2].Start + got.PT.Partitions[2].Size) * 512
			if end > c.size || end < c.size-2*MiB {
				t.Errorf("the last partition ends at %d on a %d-byte disk", end, c.size)
			}

			// The filesystems: same types, UUIDs, labels.
			for i, w := range srcTable.Partitions {
				np := dev + "p" + fmt.Sprint(i+1)
				kv := map[string]string{}
				for _, l := range strings.Split(tool(t, "", "blkid", "-p", "-o", "export", np), "\n") {
					if k, v, ok := strings.Cut(l, "="); ok {
						kv[k] = v
					}
				}
				f := fsBySource[w.Path]
				if kv["TYPE"] != f.Type || kv["UUID"] != f.UUID || kv["LABEL"] != f.Label {
					t.Errorf("%s: %v, recorded %+v", np, kv, f)
				}
			}

			// The files, byte for byte with their metadata.
			mnt := filepath.Join(t.TempDir(), "new")
			unRoot := mountT(t, dev+"p2", mnt, "ext4", "ro")
			unESP := func() {}
			if kernelHas("vfat") {
				unESP = mountT(t, dev+"p1", filepath.Join(mnt, "boot/efi"), "vfat", "ro")
			}
			files := manifest(t, mnt)
			for p, w := range src.files {
				g, ok := files[p]
				if p == "etc/fstab" || p == "boot/grub/grub.cfg" || strings.HasPrefix(p, "boot/grub/x86_64-efi") {
					continue
				}
				if strings.HasPrefix(p, "boot/efi/") && !kernelHas("vfat") {
					continue // checked with mtools below
				}
				if !ok {
					t.Errorf("%s: missing", p)
				} else if g != w {
					t.Errorf("%s: %+v, was %+v", p, g, w)
				}
			}
			for p := range files {
				if _, ok := src.files[p]; !ok && !strings.HasPrefix(p, "boot/grub/x86_64-efi") {
					t.Errorf("%s: not in the source", p)
				}
			}
			fstab, _ := os.ReadFile(filepath.Join(mnt, "etc/fstab"))
			swapUUID := fsBySource[src.swapPath].UUID
			if !strings.Contains(string(fstab), "UUID="+swapUUID+" none swap") || strings.Contains(string(fstab), src.swapPath) {
				t.Errorf("fstab not fixed:\n%s", fstab)
			}
			cfg, _ := os.ReadFile(filepath.Join(mnt, "boot/grub/grub.cfg"))
			if !strings.Contains(string(cfg), "root=UUID="+fsBySource[srcTable.Partitions[1].Path].UUID) {
				t.Errorf("grub.cfg not fixed: %s", cfg)
			}
			if len(rep.Fixed) != 2 {
				t.Errorf("fixed %q", rep.Fixed)
			}
			if kernelHas("vfat") {
				if _, err := os.Stat(filepath.Join(mnt, "boot/efi/EFI/BOOT/BOOTX64.EFI")); err != nil {
					t.Errorf("GRUB for UEFI: %v", err)
				}
			} else {
				listing := mtools(t, "mdir", "-i", dev+"p1", "-/", "-b", "::/")
				if !strings.Contains(listing, "::/EFI/BOOT/BOOTX64.EFI") || !strings.Contains(listing, "::/EFI/test/loader.txt") {
					t.Errorf("the ESP holds:\n%s", listing)
				}
				if got := mtools(t, "mtype", "-i", dev+"p1", "::/EFI/test/loader.txt"); got != "on the ESP\n" {
					t.Errorf("loader.txt on the ESP: %q", got)
				}
				if ents, _ := os.ReadDir(filepath.Join(mnt, "boot/efi")); len(ents) != 0 {
					t.Errorf("the ESP's mount point on the root is not empty: %v", ents)
				}
			}
			if _, err := os.Stat(filepath.Join(mnt, "boot/grub/x86_64-efi")); err != nil {
				t.Errorf("GRUB modules: %v", err)
			}
			unESP()
			unRoot()
			if why := busy(dev); why != "" {
				t.Errorf("after recover: %s", why)
			}
		})
	}
}

// TestRecoverRefuses: bad input is refused before anything is written.
func TestRecoverRefuses(t *testing.T) {
	if !testutil.IsRoot() {
		t.Skip("needs root")
	}
	src := makeSource(t)
	ctx := context.Background()
	dev := testutil.LoopDisk(t, 300<<20)
	tg, err := ProbeTarget(ctx, dev)
	if err != nil {
		t.Fatal(err)
	}
	opt := Options{Repo: src.repo, Snapshot: src.sn, Inventory: src.doc, Targets: []Target{tg}, Root: src.root}
	refused := func(name string, opt Options, dev string, want error, text string) {
		t.Helper()
		before := testutil.ContentSum(t, dev)
		_, err := Recover(ctx, opt)
		if !errors.Is(err, want) || !strings.Contains(err.Error(), text) {
			t.Errorf("%s: %v, want %v with %q", name, err, want, text)
		}
		if testutil.ContentSum(t, dev) != before {
			t.Errorf("%s: the target changed", name)
		}
	}

	small := testutil.LoopDisk(t, 100<<20)
	stg, err := ProbeTarget(ctx, small)
	if err != nil {
		t.Fatal(err)
	}
	o := opt
	o.Targets = []Target{stg}
	refused("too small", o, small, ErrTooSmall, "bytes missing")

	o = opt
	o.Inventory = nil
	refused("no inventory", o, dev, inventory.ErrNone, "--system-root")

	// grub-install hidden: a PATH with every other program.
	bin := t.TempDir()
	for _, n := range []string{"sfdisk", "partx", "mkfs.ext4", "mkfs.vfat", "mkswap", "blkid", "udevadm", "mcopy", "grub-mkimage"} {
		p := testutil.RequireTool(t, n)
		if err := os.Symlink(p, filepath.Join(bin, n)); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin+":/nonexistent/sbin")
	refused("no grub-install", opt, dev, ErrMissingTool, "grub-efi-amd64-bin")
	t.Setenv("PATH", os.Getenv("PATH"))

	// A partition of the target mounted.
	tool(t, "size=50MiB\n", "sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", dev)
	tool(t, "", "partx", "-u", dev)
	tool(t, "", "mkfs.ext4", "-q", "-F", dev+"p1")
	un := mountT(t, dev+"p1", filepath.Join(t.TempDir(), "m"), "ext4", "")
	refused("mounted", opt, dev, ErrTargetBusy, "is mounted on")
	un()
}
