package testutil

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The test server of the recovery tests, built for each boot mode, boots
// under QEMU to its own init (the marker with the hostname from its
// /etc/hostname), mounts every fstab entry and answers GET / with its
// token through the forwarded port. Both boots run at once.
func TestServerBoots(t *testing.T) {
	RequireQEMU(t)
	for _, mode := range []string{"bios", "uefi"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			token := "token-" + mode + "-7f3a"
			d := BuildServerDisk(t, ServerOptions{Mode: mode, Token: token})
			checkServerLayout(t, d)
			v := BootServer(t, d.Path, mode)
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
