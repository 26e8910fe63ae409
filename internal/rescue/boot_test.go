package rescue

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/testutil"
)

// staticRewind builds the rewind program as the docs say, static.
func staticRewind(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		if filepath.Dir(dir) == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = filepath.Dir(dir)
	}
	out := filepath.Join(t.TempDir(), "rewind")
	cmd := exec.Command("go", "build", "-ldflags=-s -w", "-o", out, "./cmd/rewind")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("static build of rewind: %v: %s", err, b)
	}
	return out
}

// TestRescueBoots builds the rescue system with Debian's kernel of the
// test guest and boots it under QEMU (TCG) with a user network and a
// blank disk: DHCP gives 10.0.2.15 and a name server, the prompt comes,
// and rewind, sfdisk (a dynamically linked tool with its libraries) and
// the disk work inside.
func TestRescueBoots(t *testing.T) {
	q := testutil.RequireTool(t, "qemu-system-x86_64")
	kdir := testutil.GuestKernelDir(t)
	kernels, _ := filepath.Glob(filepath.Join(kdir, "boot", "vmlinuz-*"))
	mods, _ := filepath.Glob(filepath.Join(kdir, "lib", "modules", "*"))
	if len(kernels) != 1 || len(mods) != 1 {
		t.Fatalf("no single kernel and module tree in %s: %v %v", kdir, kernels, mods)
	}
	rw := staticRewind(t)
	out := filepath.Join(t.TempDir(), "rescue")
	_, isoErr := findISOTools()
	start := time.Now()
	res, err := Build(context.Background(), Options{Out: out, Kernel: kernels[0], Modules: mods[0], Rewind: rw, ISO: isoErr == nil,
		Log: func(f string, a ...any) { t.Logf(f, a...) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built in %v: initramfs %.1f MB (%.1f MB unpacked), %d tools, %d modules, missing %v",
		time.Since(start).Round(time.Millisecond), float64(res.InitrdBytes)/1e6, float64(res.ImageBytes)/1e6, len(res.Tools), len(res.Modules), res.Missing)
	for _, p := range []string{res.Kernel, res.Initrd, res.Readme} {
		if _, err := os.Stat(p); err != nil {
			t.Error(err)
		}
	}
	if isoErr == nil {
		checkISO(t, res.ISO)
	}
	disk := filepath.Join(t.TempDir(), "blank.img")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 64<<20); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(q, "-machine", "accel=tcg", "-m", "512", "-display", "none",
		"-no-reboot", "-serial", "stdio", "-monitor", "none", "-nodefaults",
		"-kernel", res.Kernel, "-initrd", res.Initrd,
		"-append", "console=ttyS0,115200 quiet loglevel=1 panic=-1",
		"-nic", "user,restrict=on,model=virtio-net-pci",
		"-drive", "file="+disk+",format=raw,if=virtio")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	boot := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("qemu: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("qemu stderr: %s", stderr.String())
		}
	})
	c := testutil.NewConsole(stdout, in)
	net := c.Expect(t, MarkerNet, 90*time.Second)
	if f := strings.Fields(net); len(f) != 3 || f[2] != "10.0.2.15" {
		t.Errorf("DHCP: %q, want an interface with 10.0.2.15", net)
	}
	c.Expect(t, "Where is the repository?", 30*time.Second)
	t.Logf("boot to the question under TCG: %v", time.Since(boot).Round(100*time.Millisecond))
	c.Send(t, "") // no repository: straight to the shell
	c.Expect(t, MarkerUp, 60*time.Second)
	t.Logf("boot to %s (the filesystems' modules loaded) under TCG: %v", MarkerUp, time.Since(boot).Round(100*time.Millisecond))
	c.Expect(t, "rewind recover --dry-run --disk /dev/sda", 10*time.Second)
	// The quotes keep the tty's echo of each command from matching.
	c.Send(t, `echo REWIND""-T1 $(rewind version)`)
	if l := c.Expect(t, "REWIND-T1", 30*time.Second); !strings.Contains(l, "rewind ") || !strings.Contains(l, "repository format") {
		t.Errorf("rewind version in the rescue system: %q", l)
	}
	c.Send(t, `echo REWIND""-T2 $(sfdisk --version 2>&1)`)
	if l := c.Expect(t, "REWIND-T2", 20*time.Second); !strings.Contains(l, "util-linux") {
		t.Errorf("sfdisk --version in the rescue system: %q", l)
	}
	// restrict=on: QEMU's DHCP offers neither a router nor a name server.
	c.Send(t, `echo REWIND""-T3 $(cat /sys/block/vda/size) $(ip -4 addr show dev eth0 | grep -o 'inet [0-9./]*')`)
	if l := c.Expect(t, "REWIND-T3", 20*time.Second); l != fmt.Sprintf("REWIND-T3 %d inet 10.0.2.15/24", (64<<20)/512) {
		t.Errorf("disk and address in the rescue system: %q", l)
	}
	// The unattended path: rescue-recover runs rewind recover --config,
	// here against a repository that does not exist (exit status 10).
	c.Send(t, `printf 'repository: /nonexistent/repo\npassword-file: /tmp/pw\ndisks: [/dev/vda]\n' >/tmp/r.conf; echo pw >/tmp/pw; rescue-recover /tmp/r.conf`)
	if l := c.Expect(t, MarkerRecoverFailed, 30*time.Second); l != MarkerRecoverFailed+" exit 10" {
		t.Errorf("unattended recover without a repository: %q", l)
	}
	// Leaving the shell starts another instead of ending init.
	c.Send(t, "exit")
	c.Expect(t, "the shell ended, here is another", 10*time.Second)
	c.Send(t, `echo REWIND""-T4 alive`)
	c.Expect(t, "REWIND-T4 alive", 10*time.Second)
	c.Send(t, "poweroff -f")
}

// checkISO lists the ISO with xorriso: it holds the kernel, the
// initramfs and GRUB's configuration.
func checkISO(t *testing.T, iso string) {
	t.Helper()
	out, err := exec.Command(lookTool("xorriso"), "-indev", iso, "-find", "/boot", "-type", "f").CombinedOutput()
	if err != nil {
		t.Fatalf("xorriso: %v: %s", err, out)
	}
	for _, want := range []string{"/boot/vmlinuz", "/boot/initrd.img", "/boot/grub/grub.cfg"} {
		if !strings.Contains(string(out), "'"+want+"'") {
			t.Errorf("%s lacks %s:\n%s", iso, want, out)
		}
	}
	st, _ := os.Stat(iso)
	t.Logf("ISO %.1f MB", float64(st.Size())/1e6)
}
