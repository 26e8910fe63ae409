package testutil

import (
	"fmt"
	"hash"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/rewind-backup/rewind/internal/kmod"

	"github.com/rewind-backup/rewind/internal/progpath"
)

// serverIn is everything a server disk is built from, read once to
// make the cache key and then to build.
type serverIn struct {
	busybox []byte
	vmlinuz string // path in the kernel package
	kernel  string // its version
	mods    []kmod.Module
	grub    []byte // GRUB's kernel.img of the mode's platform
	tools   map[string]string
}

// serverTools are the programs the build runs, with the package that
// brings each.
var serverTools = map[string]string{
	"sfdisk":       "fdisk",
	"mkfs.ext4":    "e2fsprogs",
	"mkfs.vfat":    "dosfstools",
	"mkswap":       "util-linux",
	"mcopy":        "mtools",
	"mmd":          "mtools",
	"grub-mkimage": "grub-common",
}

func serverInputs(opt ServerOptions) (*serverIn, error) {
	in := &serverIn{tools: map[string]string{}}
	for tool, pkg := range serverTools {
		p, err := lookTool(tool)
		if err != nil {
			return nil, missing("%s not found (run scripts/recovery.sh as root: %s)", tool, pkg)
		}
		in.tools[tool] = p
	}
	var err error
	if in.busybox, err = os.ReadFile("/bin/busybox"); err != nil {
		return nil, missing("%v (run scripts/qemu.sh as root: busybox-static)", err)
	}
	platform, pkg := "i386-pc", "grub-pc-bin"
	if opt.Mode == "uefi" {
		platform, pkg = "x86_64-efi", "grub-efi-amd64-bin"
	}
	if in.grub, err = os.ReadFile(filepath.Join("/usr/lib/grub", platform, "kernel.img")); err != nil {
		return nil, missing("GRUB for %s: %v (run scripts/recovery.sh as root: %s)", platform, err, pkg)
	}
	kdir, err := guestKernelDir()
	if err != nil {
		return nil, err
	}
	vmlinuz, err := filepath.Glob(filepath.Join(kdir, "boot", "vmlinuz-*"))
	if err != nil || len(vmlinuz) != 1 {
		return nil, fmt.Errorf("no single vmlinuz in %s/boot: %v", kdir, vmlinuz)
	}
	in.vmlinuz = vmlinuz[0]
	in.kernel = strings.TrimPrefix(filepath.Base(in.vmlinuz), "vmlinuz-")
	if in.mods, err = moduleOrder(kdir, serverModules); err != nil {
		return nil, err
	}
	return in, nil
}

// lookTool finds a program in PATH, /usr/sbin or /sbin.
func lookTool(name string) (string, error) {
	if p := progpath.Find(name, progpath.Sbin); p != "" {
		return p, nil
	}
	return "", fmt.Errorf("%s not found", name)
}

func (in *serverIn) hash(h hash.Hash) {
	for _, part := range [][]byte{in.busybox, in.grub, []byte(in.vmlinuz),
		[]byte(serverInitramfsInit), []byte(serverRootInit), []byte(serverUpdateInitramfs),
		[]byte(serverFstab(false)), []byte(serverGrubCfg(in.kernel))} {
		fmt.Fprintf(h, "%d:", len(part))
		h.Write(part)
	}
	for _, m := range in.mods {
		fmt.Fprintf(h, "%s;", m.Rel)
	}
}

// buildServer writes the server's disk, a new sparse file, using work
// for its scratch files.
func buildServer(work, disk string, opt ServerOptions, in *serverIn) error {
	f, err := os.OpenFile(disk, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	err = f.Truncate(opt.SizeBytes)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := serverPartition(disk, opt.SizeBytes); err != nil {
		return err
	}
	root := filepath.Join(work, "root")
	if err := serverRootTree(root, opt, in); err != nil {
		return fmt.Errorf("root tree: %w", err)
	}
	rootSize := serverRootSize(opt.SizeBytes)
	if err := runErr(in.tools["mkfs.ext4"], "-q", "-F", "-t", "ext4", "-b", "4096", "-I", "256", "-i", "16384",
		"-L", ServerRootLabel, "-U", ServerRootUUID,
		"-E", fmt.Sprintf("offset=%d,nodiscard", serverRootStart*512), "-d", root,
		disk, fmt.Sprintf("%dk", rootSize/2)); err != nil {
		return err
	}
	if err := serverESP(work, disk, opt, in); err != nil {
		return err
	}
	if err := serverSwap(work, disk, in); err != nil {
		return err
	}
	if opt.Mode == "bios" {
		return serverGrubBIOS(work, disk, in)
	}
	return nil
}

// serverRootSize is the root partition's size in sectors: up to the
// backup GPT, in whole MiB as sfdisk aligns.
func serverRootSize(diskBytes int64) int64 {
	n := diskBytes/512 - serverRootStart - serverGPTTail
	return n - n%2048
}

// serverPartition writes the GPT (sfdisk on the file).
func serverPartition(disk string, diskBytes int64) error {
	var s strings.Builder
	fmt.Fprintf(&s, "label: gpt\nlabel-id: %s\n", strings.ToUpper(ServerDiskGUID))
	starts := []int64{serverBIOSStart, serverESPStart, serverSwapStart, serverRootStart}
	sizes := []int64{serverBIOSSize, serverESPSize, serverSwapSize, serverRootSize(diskBytes)}
	names := []string{"bios", "esp", "swap", "root"}
	for i := range starts {
		fmt.Fprintf(&s, "start=%d, size=%d, type=%s, uuid=%s, name=%q\n", starts[i], sizes[i], strings.ToUpper(ServerPartTypes[i]), strings.ToUpper(ServerPartUUIDs[i]), names[i])
	}
	cmd := exec.Command(serverToolPath("sfdisk"), "--quiet", "--no-reread", "--no-tell-kernel", disk)
	cmd.Stdin = strings.NewReader(s.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("sfdisk %s: %v: %s", disk, err, out)
	}
	return nil
}

func serverToolPath(name string) string {
	if p, err := lookTool(name); err == nil {
		return p
	}
	return name
}

// serverRootTree writes the root filesystem's files into dir.
func serverRootTree(dir string, opt ServerOptions, in *serverIn) error {
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "run",
		"root", "boot/efi", "boot/grub", "srv/www", "var/log", "lib"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), in.busybox, 0o755); err != nil {
		return err
	}
	out, err := exec.Command(filepath.Join(dir, "bin/busybox"), "--list-full").Output()
	if err != nil {
		return fmt.Errorf("busybox --list-full: %v", err)
	}
	for _, l := range strings.Fields(string(out)) {
		if l == "bin/busybox" || strings.Contains(l, "..") {
			continue
		}
		if err := os.Symlink("/bin/busybox", filepath.Join(dir, l)); err != nil && !os.IsExist(err) {
			return err
		}
	}
	initrd, err := busyboxInitramfs(serverInitramfsInit, []string{"root"}, in.busybox, in.mods)
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	k, err := os.ReadFile(in.vmlinuz)
	if err != nil {
		return err
	}
	files := []struct {
		name string
		mode os.FileMode
		data []byte
	}{
		{"sbin/init", 0o755, []byte(serverRootInit)},
		{"usr/sbin/update-initramfs", 0o755, []byte(serverUpdateInitramfs)},
		{"etc/hostname", 0o644, []byte(ServerHostname + "\n")},
		{"etc/fstab", 0o644, []byte(serverFstab(opt.DataDiskBytes != 0))},
		{"etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\n")},
		{"etc/group", 0o644, []byte("root:x:0:\n")},
		{"srv/www/index.html", 0o644, []byte(opt.Token)},
		{"boot/grub/grub.cfg", 0o644, []byte(serverGrubCfg(in.kernel))},
		{"boot/vmlinuz-" + in.kernel, 0o644, k},
		{"boot/initrd.img-" + in.kernel, 0o644, initrd},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		_ = os.Remove(p) // a busybox link of that name (sbin/init)
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			return err
		}
	}
	if opt.DataDiskBytes != 0 {
		if err := os.MkdirAll(filepath.Join(dir, ServerDataMount), 0o755); err != nil {
			return err
		}
		if err := os.Symlink(ServerDataMount+ServerDataFile, filepath.Join(dir, "srv/www", ServerDataFile)); err != nil {
			return err
		}
	}
	return nil
}

// serverESP makes the vfat ESP in place and, for UEFI, puts GRUB's EFI
// image on it as the removable-media loader EFI/BOOT/BOOTX64.EFI.
func serverESP(work, disk string, opt ServerOptions, in *serverIn) error {
	// -h: the sectors before the partition, as a boot sector records.
	if err := runErr(in.tools["mkfs.vfat"], "-F", "16", "--offset", fmt.Sprint(serverESPStart), "-h", fmt.Sprint(serverESPStart),
		"-n", ServerESPLabel, "-i", strings.ReplaceAll(ServerESPUUID, "-", ""), disk, fmt.Sprint(serverESPSize/2)); err != nil {
		return err
	}
	img := fmt.Sprintf("%s@@%d", disk, serverESPStart*512)
	if err := runErr(in.tools["mmd"], "-i", img, "::/EFI"); err != nil {
		return err
	}
	if opt.Mode != "uefi" {
		return nil
	}
	efi := filepath.Join(work, "BOOTX64.EFI")
	if err := serverGrubEFI(work, efi, in); err != nil {
		return err
	}
	if err := runErr(in.tools["mmd"], "-i", img, "::/EFI/BOOT"); err != nil {
		return err
	}
	return runErr(in.tools["mcopy"], "-i", img, efi, "::/EFI/BOOT/BOOTX64.EFI")
}

// serverSwap makes the swap area in a side file (mkswap writes no
// offset) and copies it into its partition.
func serverSwap(work, disk string, in *serverIn) error {
	p := filepath.Join(work, "swap.img")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		return err
	}
	if err := os.Truncate(p, serverSwapSize*512); err != nil {
		return err
	}
	if err := runErr(in.tools["mkswap"], "-L", ServerSwapLabel, "-U", ServerSwapUUID, p); err != nil {
		return err
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(disk, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := writeSparse(f, data, serverSwapStart*512); err != nil {
		return err
	}
	return f.Close()
}

// buildServerData writes the server's data disk, a new sparse file: a
// GPT of one partition filling it, ext4 holding data.txt.
func buildServerData(work, disk string, opt ServerOptions, in *serverIn) error {
	f, err := os.OpenFile(disk, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	err = f.Truncate(opt.DataDiskBytes)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	const start = 2048
	n := opt.DataDiskBytes/512 - start - serverGPTTail
	size := n - n%2048
	table := fmt.Sprintf("label: gpt\nlabel-id: %s\nstart=%d, size=%d, type=%s, uuid=%s, name=\"data\"\n",
		strings.ToUpper(ServerDataDiskGUID), start, size, strings.ToUpper(ServerPartTypes[3]), strings.ToUpper(ServerDataPartUUID))
	cmd := exec.Command(serverToolPath("sfdisk"), "--quiet", "--no-reread", "--no-tell-kernel", disk)
	cmd.Stdin = strings.NewReader(table)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("sfdisk %s: %v: %s", disk, err, out)
	}
	tree := filepath.Join(work, "data")
	if err := os.MkdirAll(tree, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tree, "data.txt"), []byte(opt.DataToken), 0o644); err != nil {
		return err
	}
	return runErr(in.tools["mkfs.ext4"], "-q", "-F", "-t", "ext4", "-b", "4096", "-I", "256", "-i", "16384",
		"-L", ServerDataLabel, "-U", ServerDataUUID,
		"-E", fmt.Sprintf("offset=%d,nodiscard", start*512), "-d", tree,
		disk, fmt.Sprintf("%dk", size/2))
}
