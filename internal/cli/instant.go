package cli

// rewind instant: boot a device or image snapshot in QEMU from the
// repository (internal/instant, docs/IMAGES.md).

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/rewind-backup/rewind/internal/instant"
	"github.com/rewind-backup/rewind/internal/qemu"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/restorer"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/ui"
)

// InstantSummary is the JSON line of `instant` when the guest has
// stopped (docs/JSON.md).
type InstantSummary struct {
	MessageType string `json:"message_type"`
	SnapshotID  string `json:"snapshot_id"`
	// Accel is kvm or tcg.
	Accel     string `json:"accel"`
	StateDir  string `json:"state_dir"`
	SerialLog string `json:"serial_log"`
	// FirstOutputSeconds is from the command's start to the guest's
	// first byte on its serial console (0: it printed nothing).
	FirstOutputSeconds float64 `json:"first_output_seconds"`
	// RestoreSeconds is the full restore's time (--time-restore).
	RestoreSeconds float64 `json:"restore_seconds,omitempty"`
	// MigratedTo is the --migrate target, once the copy completed.
	MigratedTo string `json:"migrated_to,omitempty"`
}

type instantOpts struct {
	sf          snapFilter
	migrate     string
	stateDir    string
	memoryMiB   int
	disk        string
	timeRestore bool
}

func newInstantCmd(g *globals) *cobra.Command {
	var o instantOpts
	cmd := &cobra.Command{
		Use:   "instant SNAPSHOT[:IMAGE] [-- QEMU-ARGS...]",
		Short: "Boot a device or image snapshot in QEMU straight from the repository",
		Long: `Boot the disk of a device or image snapshot (backup --device or --image) in
QEMU at once, without restoring it first. The image is served by a private
read-only FUSE mount of the repository; a qcow2 overlay in the state
directory takes the guest's writes, so the repository is never written.
QEMU (qemu-system-x86_64) runs with KVM when /dev/kvm is usable, TCG
otherwise; the guest reads only the blocks it touches.

The guest's serial console (its ttyS0) is this command's standard output
and input, and is copied to serial.log in the state directory; QMP is on
qmp.sock there. The command prints the time from its start to the guest's
first serial output and, with --time-restore, first times a full restore
of the same image (into a sparse file in the state directory, deleted
after) for comparison. It ends when the guest powers off or QEMU exits;
Ctrl-C stops QEMU at once (the guest is not shut down).

--migrate DEST copies the whole disk, with the guest's writes, to DEST (a
new file, made sparse, or a block device at least as large) while the guest
runs (QMP blockdev-mirror); when the copy is complete the guest's disk is
DEST, the overlay and the mount are closed, and the command says that the
guest no longer depends on the repository.

IMAGE, when given, must name the snapshot's image (its path or its file
name). Arguments after -- go to QEMU as they are (e.g. -smp 2, -nic user).
Needs qemu-system-x86 and qemu-utils, and FUSE (/dev/fuse, fuse3).`,
		Example: `  rewind instant latest --tag image
  rewind instant 4f2a91c3 --time-restore
  rewind instant 4f2a91c3 --migrate /dev/vg0/web1 -- -smp 2 -nic user
  rewind instant 4f2a91c3:/var/lib/libvirt/images/web1.img --memory 2048 --state-dir /var/tmp/web1`,
		Args: func(cmd *cobra.Command, args []string) error {
			n := len(args)
			if d := cmd.ArgsLenAtDash(); d >= 0 {
				n = d
			}
			if n != 1 {
				return fmt.Errorf("name one SNAPSHOT[:IMAGE] (then -- and QEMU's arguments), not %d", n)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			var extra []string
			if d := cmd.ArgsLenAtDash(); d >= 0 {
				extra = args[d:]
			}
			return g.runInstant(cmd.Context(), time.Now(), args[0], extra, &o)
		},
	}
	o.sf.add(cmd)
	f := cmd.Flags()
	f.StringVar(&o.migrate, "migrate", "", "copy the disk to `DEST` (a new file or a block device) while the guest runs, then detach it from the repository")
	f.StringVar(&o.stateDir, "state-dir", "", "keep the overlay, the serial log and the QMP socket in `DIR` (default: a temporary directory removed at the end)")
	f.IntVar(&o.memoryMiB, "memory", 1024, "the guest's memory in `MiB`")
	f.StringVar(&o.disk, "disk", "virtio", "the disk's device model: `virtio` or ide")
	f.BoolVar(&o.timeRestore, "time-restore", false, "first time a full restore of the image, to compare with the boot")
	return cmd
}

func (g *globals) runInstant(ctx context.Context, start time.Time, arg string, extra []string, o *instantOpts) error {
	for _, p := range []string{qemu.SystemProgram, qemu.ImgProgram} {
		if _, err := qemu.LookPath(p); err != nil {
			return fmt.Errorf("instant: %w", err)
		}
	}
	if err := instant.FUSEReady(); err != nil {
		return fmt.Errorf("instant: %w", err)
	}
	if o.memoryMiB < 16 {
		return fmt.Errorf("instant: --memory %d: give at least 16 MiB", o.memoryMiB)
	}
	r, sn, err := g.openImageSnapshot(ctx, "instant", arg, o.sf.filter())
	if err != nil {
		return err
	}
	var once sync.Once
	release := func() { once.Do(r.done) }
	defer release()
	state, cleanup, err := instantStateDir(o.stateDir)
	if err != nil {
		return err
	}
	defer cleanup()
	// The notes go to standard error, with --json too (where the guest's
	// console goes there as well): when the guest is up, when it is
	// detached from the repository.
	note := func(format string, args ...any) {
		if !g.quiet {
			g.ui.Warnf(format, args...)
		}
	}
	sum := InstantSummary{MessageType: "summary", SnapshotID: sn.ID.String(), StateDir: state}
	if o.timeRestore {
		secs, err := timeRestore(ctx, r.repo, sn, state)
		if err != nil {
			return err
		}
		sum.RestoreSeconds = secs
		note("instant: full restore of the %s image: %.1f s (a sparse file, deleted)\n", ui.Bytes(sn.Image.Size), secs)
		start = time.Now()
	}
	var dest string
	var destDevice bool
	if o.migrate != "" {
		dest, _ = filepath.Abs(o.migrate)
		if destDevice, err = instant.PrepareDest(dest, sn.Image.Size); err != nil {
			return fmt.Errorf("instant: %w", err)
		}
	}
	ex, err := instant.Expose(ctx, r.repo, sn, state, func(msg string) { g.ui.Warnf("instant: repository read: %s\n", msg) })
	if err != nil {
		return fmt.Errorf("instant: %w", err)
	}
	defer ex.Unmount()
	var console io.Writer = os.Stdout
	if g.json {
		console = os.Stderr
	}
	var firstMu sync.Mutex
	vm, err := instant.Start(ctx, instant.Options{
		Image: ex.File, StateDir: state, MemoryMiB: o.memoryMiB, Disk: o.disk,
		Args: extra, Console: console, Input: os.Stdin,
		FirstOutput: func(t time.Time) {
			firstMu.Lock()
			sum.FirstOutputSeconds = t.Sub(start).Seconds()
			firstMu.Unlock()
			note("\ninstant: first serial output %.2f s after the command started\n", t.Sub(start).Seconds())
		},
	})
	if err != nil {
		return fmt.Errorf("instant: %w", err)
	}
	sum.Accel, sum.SerialLog = vm.Accel, vm.Log
	note("instant: snapshot %s (%s) boots in QEMU (%s) from the repository; writes go to %s; serial log %s\n",
		sn.ID.Short(), ui.Bytes(sn.Image.Size), vm.Accel, vm.Overlay, vm.Log)
	migrated := make(chan error, 1)
	if dest != "" {
		note("instant: copying the disk to %s while the guest runs\n", dest)
		go func() {
			err := vm.Migrate(ctx, dest, destDevice)
			if err == nil {
				err = ex.Unmount()
			}
			if err == nil {
				release()
				note("\ninstant: migrated: the guest's disk is %s now; it no longer depends on the repository, which is unmounted\n", dest)
			}
			migrated <- err
		}()
	}
	select {
	case <-vm.Exited():
	case <-ctx.Done():
		g.ui.Warnf("instant: stopping QEMU (the guest is not shut down)\n")
		vm.Quit()
	}
	werr := vm.Wait()
	if dest != "" {
		select {
		case err := <-migrated:
			if err != nil {
				return fmt.Errorf("instant: the copy to %s failed: %w (the guest ran from the repository until it stopped)", dest, err)
			}
			sum.MigratedTo = dest
		default:
			return fmt.Errorf("instant: the guest stopped before the copy to %s was complete: %s is incomplete", dest, dest)
		}
	}
	if werr != nil {
		return fmt.Errorf("instant: %w", werr)
	}
	firstMu.Lock()
	defer firstMu.Unlock()
	if g.json {
		g.ui.JSONLine(sum)
		return nil
	}
	g.ui.Infof("instant: the guest stopped; first serial output came %.2f s after the command started", sum.FirstOutputSeconds)
	if sum.RestoreSeconds > 0 {
		g.ui.Infof(", the full restore took %.1f s (%.2f×)", sum.RestoreSeconds, sum.FirstOutputSeconds/sum.RestoreSeconds)
	}
	g.ui.Infof("\n")
	return nil
}

// openedImage is a repository opened for an image snapshot.
type openedImage struct {
	repo *repository.Repository
	done func()
}

// openImageSnapshot opens the repository (Shared lock) and resolves
// SNAPSHOT[:IMAGE] to a device or image snapshot.
func (g *globals) openImageSnapshot(ctx context.Context, command, arg string, f snapshot.Filter) (*openedImage, *snapshot.Snapshot, error) {
	r, sn, p, done, err := g.openSnapshot(ctx, command, arg, f)
	if err != nil {
		return nil, nil, err
	}
	if sn.Image == nil {
		done()
		return nil, nil, fmt.Errorf("%s: %w", command, instant.NotImageError(sn))
	}
	if p != "/" && p != sn.Paths[0] && strings.TrimPrefix(p, "/") != filepath.Base(sn.Paths[0]) {
		done()
		return nil, nil, fmt.Errorf("%s: snapshot %s holds the image %s, not %s: drop :%s or name that one", command, sn.ID.Short(), sn.Paths[0], p, p)
	}
	return &openedImage{repo: r, done: done}, sn, nil
}

// instantStateDir makes the state directory: dir, or a temporary one
// removed by cleanup.
func instantStateDir(dir string) (string, func(), error) {
	if dir == "" {
		d, err := os.MkdirTemp("", "rewind-instant-")
		if err != nil {
			return "", nil, fmt.Errorf("instant: state directory: %w", err)
		}
		return d, func() { os.RemoveAll(d) }, nil
	}
	d, err := filepath.Abs(dir)
	if err == nil {
		err = os.MkdirAll(d, 0o700)
	}
	if err != nil {
		return "", nil, fmt.Errorf("instant: --state-dir: %w", err)
	}
	if _, err := os.Stat(filepath.Join(d, "overlay.qcow2")); err == nil {
		return "", nil, fmt.Errorf("instant: --state-dir %s holds an overlay of an earlier run: give another directory, or remove it to start over", d)
	}
	return d, func() {}, nil
}

// timeRestore restores the image into a sparse file in dir and returns
// the seconds it took; the file is deleted.
func timeRestore(ctx context.Context, r *repository.Repository, sn *snapshot.Snapshot, dir string) (float64, error) {
	p := filepath.Join(dir, "restore-timing.img")
	defer os.Remove(p)
	t0 := time.Now()
	if _, err := restorer.RestoreImage(ctx, r, sn, restorer.ImageTarget{Path: p}); err != nil {
		return 0, fmt.Errorf("instant: --time-restore: %w", err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err == nil {
		err = f.Sync()
		f.Close()
	}
	if err != nil {
		return 0, fmt.Errorf("instant: --time-restore: %w", err)
	}
	return time.Since(t0).Seconds(), nil
}
