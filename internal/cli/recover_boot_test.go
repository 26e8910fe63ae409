package cli

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/loopdev"
	"github.com/rewind-backup/rewind/internal/testutil"
	"golang.org/x/sys/unix"
)

// TestRecoverBoots: the test server, backed up cold with backup
// --system-root, is recovered onto a blank disk of another size (BIOS
// onto a larger one, UEFI onto a smaller one) and the result boots under
// QEMU: its own init prints the marker with its hostname, every fstab
// entry mounts (UUIDs kept), the HTTP probe answers with the server's
// token, and the initramfs stand-in ran in the recovered system.
func TestRecoverBoots(t *testing.T) {
	if !testutil.IsRoot() {
		t.Skip("needs root")
	}
	testutil.RequireQEMU(t)
	for _, c := range []struct {
		mode string
		size int64
	}{{"bios", 640 << 20}, {"uefi", 256 << 20}} {
		t.Run(c.mode, func(t *testing.T) {
			if c.mode == "uefi" {
				testutil.RequireOVMF(t)
			}
			ctx := context.Background()
			token := "recovered-" + c.mode + "-51c2"
			d := testutil.BuildServerDisk(t, testutil.ServerOptions{Mode: c.mode, Token: token})
			e := newRepo(t, 0)

			// The server's disk attached here, its root mounted read-only,
			// backed up as the system it is.
			src, err := loopdev.Attach(ctx, d.Path)
			if err != nil {
				t.Fatal(err)
			}
			srcAttached := true
			detachSrc := func() {
				if srcAttached {
					srcAttached = false
					if err := loopdev.Detach(ctx, src); err != nil {
						t.Error(err)
					}
				}
			}
			t.Cleanup(detachSrc)
			mnt := e.path("mnt")
			if err := os.MkdirAll(mnt, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := unix.Mount(loopdev.PartitionPath(src, 4), mnt, "ext4", unix.MS_RDONLY, ""); err != nil {
				t.Fatal(err)
			}
			e.mustRun("backup", "--system-root", mnt, "--disks", src)
			if err := unix.Unmount(mnt, 0); err != nil {
				t.Fatal(err)
			}
			detachSrc()

			img := e.path("recovered.img")
			if err := os.WriteFile(img, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(img, c.size); err != nil {
				t.Fatal(err)
			}
			dst, err := loopdev.Attach(ctx, img)
			if err != nil {
				t.Fatal(err)
			}
			dstAttached := true
			t.Cleanup(func() {
				if dstAttached {
					_ = loopdev.Detach(ctx, dst)
				}
			})
			began := time.Now()
			r := e.mustRun("recover", "--host", testutil.ServerHostname, "--disk", dst, "--boot-mode", c.mode, "--yes", "--json")
			var rep jsonRecoverReport
			decodeStrict(t, r.stdout, &rep)
			t.Logf("recover %s onto %d MiB in %s: phases %+v, warnings %q, fixed %q", c.mode, c.size>>20, time.Since(began).Round(time.Millisecond), rep.Phases, rep.Warnings, rep.Fixed)
			if len(rep.Phases) != 5 || rep.Plan.Disks[0].Resized == "" {
				t.Errorf("report %+v", rep)
			}
			if err := loopdev.Detach(ctx, dst); err != nil {
				t.Fatal(err)
			}
			dstAttached = false

			v := testutil.BootServer(t, img, c.mode)
			host, fstabOK := v.WaitReady()
			if host != testutil.ServerHostname || !fstabOK {
				t.Errorf("booted %q, fstab mounted %v", host, fstabOK)
			}
			if body, err := v.HTTPGet("/"); err != nil || body != token {
				t.Errorf("GET /: %q, %v; want %q", body, err, token)
			}
			lines, status := v.Run("cat "+testutil.ServerRegenerated, time.Minute)
			if status != "0" || !strings.Contains(strings.Join(lines, "\n"), d.Kernel) {
				t.Errorf("initramfs not regenerated in the recovered system: %s %q", status, lines)
			}
			if err := v.Poweroff(time.Minute); err != nil {
				t.Error(err)
			}
		})
	}
}
