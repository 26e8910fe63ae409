package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The test server of the recovery tests, built for each boot mode, boots
// under QEMU to its own init (the marker with the hostname from its
// /etc/hostname), mounts every fstab entry and answers GET / with its
// token through the forwarded port; its update-initramfs stand-in runs.
// The UEFI one boots from a qcow2 copy. Both boots run at once.
func TestServerBoots(t *testing.T) {
	RequireQEMU(t)
	for _, mode := range []string{"bios", "uefi"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			token := "token-" + mode + "-7f3a"
			d := BuildServerDisk(t, ServerOptions{Mode: mode, Token: token})
			checkServerLayout(t, d)
			disk := d.Path
			if mode == "uefi" {
				// What export --vm writes: BootServer finds the format.
				disk = d.Path + ".qcow2"
				if out, err := exec.Command("qemu-img", "convert", "-O", "qcow2", d.Path, disk).CombinedOutput(); err != nil {
					t.Fatalf("qemu-img convert: %v: %s", err, out)
				}
			}
			v := BootServer(t, disk, mode)
			host, fstabOK := v.WaitReady()
			if host != ServerHostname {
				t.Errorf("marker hostname %q, want %q", host, ServerHostname)
			}
			if !fstabOK {
				t.Errorf("fstab did not mount: %s", v.Log())
			}
			body, err := v.HTTPGet("/")
			if err != nil || body != token {
				t.Errorf("GET /: %q, %v; want %q", body, err, token)
			}
			lines, status := v.Run("update-initramfs -u -k all && cat "+ServerRegenerated, time.Minute)
			if status != "0" || !strings.Contains(strings.Join(lines, "\n"), "kernel "+d.Kernel) {
				t.Errorf("update-initramfs stand-in: status %s, printed %q", status, lines)
			}
			if err := v.Poweroff(time.Minute); err != nil {
				t.Error(err)
			}
		})
	}
}

// checkServerLayout checks the disk's partition table and filesystems
// with sfdisk and blkid, on the image file itself.
func checkServerLayout(t *testing.T, d *ServerDisk) {
	t.Helper()
	st, err := os.Stat(d.Path)
	if err != nil || st.Size() != ServerDefaultSize {
		t.Fatalf("disk %s: %v, size %d", d.Path, err, st.Size())
	}
	out, err := exec.Command(serverToolPath("sfdisk"), "--dump", d.Path).CombinedOutput()
	if err != nil {
		t.Fatalf("sfdisk --dump: %v: %s", err, out)
	}
	dump := strings.ToLower(string(out))
	for i, u := range ServerPartUUIDs {
		if !strings.Contains(dump, "uuid="+u) || !strings.Contains(dump, "type="+ServerPartTypes[i]) {
			t.Errorf("partition %d (uuid %s, type %s) missing from:\n%s", i+1, u, ServerPartTypes[i], out)
		}
	}
	if !strings.Contains(dump, "label-id: "+ServerDiskGUID) {
		t.Errorf("disk GUID %s missing from:\n%s", ServerDiskGUID, out)
	}
	blkid, err := lookTool("blkid")
	if err != nil {
		return
	}
	for _, c := range []struct {
		off          int64
		typ, uuid, l string
	}{
		{serverESPStart * 512, "vfat", ServerESPUUID, ServerESPLabel},
		{serverSwapStart * 512, "swap", ServerSwapUUID, ServerSwapLabel},
		{serverRootStart * 512, "ext4", ServerRootUUID, ServerRootLabel},
	} {
		out, err := exec.Command(blkid, "-p", "-O", strconv.FormatInt(c.off, 10), "-o", "export", d.Path).CombinedOutput()
		s := string(out)
		if err != nil || !strings.Contains(s, "TYPE="+c.typ) || !strings.Contains(s, "UUID="+c.uuid) || !strings.Contains(s, "LABEL="+c.l) {
			t.Errorf("filesystem at %d: %v: %s; want %s %s %s", c.off, err, s, c.typ, c.uuid, c.l)
		}
	}
}

// The attached server shows its root and ESP where a --system-root
// backup reads them, and the UEFI build's loader is on the ESP.
func TestAttachServer(t *testing.T) {
	RequireRoot(t)
	d := BuildServerDisk(t, ServerOptions{Mode: "uefi"})
	a := AttachServer(t, d.Path)
	for name, want := range map[string]string{
		"/etc/hostname":       ServerHostname + "\n",
		"/srv/www/index.html": ServerDefaultToken,
		"/etc/fstab":          serverFstab(false),
	} {
		b, err := os.ReadFile(a.Root + name)
		if err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", name, b, err, want)
		}
	}
	if a.ESPMounted {
		if _, err := os.Stat(a.Root + "/boot/efi/EFI/BOOT/BOOTX64.EFI"); err != nil {
			t.Error(err)
		}
	} else if out, err := exec.Command(serverToolPath("mdir"), "-b", "-i", a.Part(2), "::/EFI/BOOT").CombinedOutput(); err != nil || !strings.Contains(string(out), "BOOTX64.EFI") {
		t.Errorf("mdir ::/EFI/BOOT on %s: %v: %s", a.Part(2), err, out)
	}
	for _, name := range []string{"/boot/vmlinuz-" + d.Kernel,
		"/boot/initrd.img-" + d.Kernel, "/boot/grub/grub.cfg", "/usr/sbin/update-initramfs", "/sbin/init"} {
		if _, err := os.Stat(a.Root + name); err != nil {
			t.Error(err)
		}
	}
}

// recordTB records a fatal failure instead of failing the test, so a
// test can check that a helper fails.
type recordTB struct {
	testing.TB
	fatal string
}

func (r *recordTB) Helper() {}

func (r *recordTB) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// A disk that does not boot fails WaitReady at once (SeaBIOS finds
// nothing and QEMU exits), not after ServerBootTimeout.
func TestServerBootFailsFast(t *testing.T) {
	RequireQEMU(t)
	blank := filepath.Join(t.TempDir(), "blank.img")
	if err := os.WriteFile(blank, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &recordTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		BootServer(r, blank, "bios").WaitReady()
	}()
	select {
	case <-done:
	case <-time.After(ServerBootTimeout / 2):
		t.Fatal("WaitReady on a blank disk still waits")
	}
	if !strings.Contains(r.fatal, "QEMU exited before") {
		t.Fatalf("WaitReady on a blank disk: %q", r.fatal)
	}
}

// TestServerDataDisk: DataDiskBytes adds a second disk, a GPT of one
// ext4 partition (label, UUIDs fixed) holding data.txt, mounted by the
// root's fstab at ServerDataMount; the root disk keeps its layout, and
// the one-disk server's fstab has no such entry. No boot: the drill test
// of internal/cli boots it.
func TestServerDataDisk(t *testing.T) {
	d := BuildServerDisk(t, ServerOptions{Mode: "bios", DataDiskBytes: 32 << 20, DataToken: "data-tok-1"})
	checkServerLayout(t, d)
	if d.DataPath == "" || d.DataToken != "data-tok-1" {
		t.Fatalf("no data disk: %+v", d)
	}
	if st, err := os.Stat(d.DataPath); err != nil || st.Size() != 32<<20 {
		t.Fatalf("data disk %s: %v", d.DataPath, err)
	}
	out, err := exec.Command(serverToolPath("sfdisk"), "--dump", d.DataPath).CombinedOutput()
	dump := strings.ToLower(string(out))
	if err != nil || !strings.Contains(dump, "label-id: "+ServerDataDiskGUID) || !strings.Contains(dump, "start=        2048") ||
		!strings.Contains(dump, "uuid="+ServerDataPartUUID) || strings.Count(dump, "start=") != 1 {
		t.Errorf("data disk table: %v:\n%s", err, out)
	}
	if blkid, err := lookTool("blkid"); err == nil {
		out, err := exec.Command(blkid, "-p", "-O", "1048576", "-o", "export", d.DataPath).CombinedOutput()
		s := string(out)
		if err != nil || !strings.Contains(s, "TYPE=ext4") || !strings.Contains(s, "UUID="+ServerDataUUID) || !strings.Contains(s, "LABEL="+ServerDataLabel) {
			t.Errorf("data filesystem: %v: %s", err, s)
		}
	}
	if f := serverFstab(true); !strings.Contains(f, "UUID="+ServerDataUUID+" /srv/data ext4 ") || strings.Contains(serverFstab(false), ServerDataUUID) {
		t.Errorf("fstab with the data disk:\n%s", f)
	}
	plain := BuildServerDisk(t, ServerOptions{Mode: "bios"})
	if plain.DataPath != "" {
		t.Errorf("the one-disk server has a data disk %s", plain.DataPath)
	}
}
