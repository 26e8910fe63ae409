package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/mount"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/spf13/cobra"
)

func newMountCmd(g *globals) *cobra.Command {
	var sf snapFilter
	var at string
	var allowOther bool
	var cacheMiB int64
	cmd := &cobra.Command{
		Use:   "mount MOUNTPOINT",
		Short: "Mount the repository as a read-only filesystem (FUSE)",
		Long: `Mount the repository read-only at MOUNTPOINT, an empty directory, and serve
it until it is unmounted (umount MOUNTPOINT, fusermount3 -u MOUNTPOINT) or
the command gets SIGINT (Ctrl-C) or SIGTERM. It runs in the foreground.

The tree (docs/MOUNT.md):
  hosts/HOST/TIME-ID/...   every snapshot of each host (TIME in local time)
  ids/ID/...               every snapshot by its short ID
  tags/TAG/TIME-ID/...     the snapshots of each tag
  latest/HOST/...          the newest snapshot of each host
  at/MOMENT/...            everything the host backed up, as it was at
                           MOMENT, each path from the newest snapshot that
                           covers it; MOMENT is 2026-12-07T10:31:05 or any
                           form --at takes that is a file name (-15m, a
                           label); listing at/ shows the moments of the
                           host's snapshots

With --at, the root is that one moment's view. at/ follows this machine's
host name, or --host.

Files keep their modes, owners, times, xattrs and ACLs as stored; hard links
share an inode number; sparse files report their holes (SEEK_HOLE). A file
whose data cannot be read (a damaged pack) gives EIO and a warning, and the
mount stays up. Needs /dev/fuse and fusermount3 (Debian: the fuse3 package).

Then, from another shell: ls /mnt/rewind/at/2026-12-07T10:31:05/etc, and
umount /mnt/rewind when done.`,
		Example: `  mkdir /mnt/rewind && rewind mount /mnt/rewind
  rewind mount /mnt/rewind --at "2026-12-07 10:31:05"
  rewind mount /mnt/rewind --host web1 --allow-other
  rewind mount /mnt/rewind --at -1h --host db1`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.runMount(cmd.Context(), args[0], at, sf, allowOther, cacheMiB)
		},
	}
	sf.add(cmd)
	f := cmd.Flags()
	f.StringVar(&at, "at", "", "mount only the view of this "+atUsage)
	f.BoolVar(&allowOther, "allow-other", false, "let other users than the one mounting read the mount (needs user_allow_other in /etc/fuse.conf when not root); modes are enforced")
	f.Int64Var(&cacheMiB, "cache-size", 64, "bound the cache of decrypted data in `MiB`")
	return cmd
}

// fuseReady says what is missing for a FUSE mount, and how to get it.
func fuseReady() error {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("mount: /dev/fuse is missing (%v): load the fuse module (modprobe fuse), or in a container pass --device /dev/fuse; install the fuse3 package for fusermount3", err)
	}
	if _, err := exec.LookPath("fusermount3"); err != nil {
		return errors.New("mount: fusermount3 is not installed: install the fuse3 package (apt-get install fuse3)")
	}
	return nil
}

// checkMountpoint refuses what is not an empty directory, and a dead
// mount left by a killed rewind mount.
func checkMountpoint(dir string) error {
	f, err := os.Open(dir)
	if errors.Is(err, syscall.ENOTCONN) {
		return fmt.Errorf("mount: %s is a mount whose server is gone (a killed rewind mount?): unmount it with fusermount3 -u %s, then mount again", dir, dir)
	}
	if err != nil {
		return fmt.Errorf("mount: mountpoint: %w (make an empty directory: mkdir %s)", err, dir)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("mount: mountpoint: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("mount: %s is not a directory; give an empty directory", dir)
	}
	if _, err := f.Readdirnames(1); err == nil {
		return fmt.Errorf("mount: %s is not empty; give an empty directory (mounting over files would hide them)", dir)
	} else if errors.Is(err, syscall.ENOTCONN) {
		return fmt.Errorf("mount: %s is a mount whose server is gone (a killed rewind mount?): unmount it with fusermount3 -u %s, then mount again", dir, dir)
	} else if err != io.EOF {
		return fmt.Errorf("mount: mountpoint %s: %w", dir, err)
	}
	return nil
}

func (g *globals) runMount(ctx context.Context, dir, at string, sf snapFilter, allowOther bool, cacheMiB int64) error {
	if err := fuseReady(); err != nil {
		return err
	}
	if err := checkMountpoint(dir); err != nil {
		return err
	}
	if cacheMiB < 1 {
		return fmt.Errorf("mount: --cache-size %d: give at least 1 MiB", cacheMiB)
	}
	tf := timelineFilter(sf)
	if len(tf.Hosts) != 1 {
		return fmt.Errorf("mount: at/ shows one host's history; give one --host, not %d", len(tf.Hosts))
	}
	r, done, err := g.openLocked(ctx, lock.Shared, "mount", true)
	if err != nil {
		return err
	}
	defer done()
	h, err := g.loadHistory(ctx, r, "", sf.filter())
	if err != nil {
		return err
	}
	all, err := g.listSnapshots(ctx, r)
	if err != nil {
		return err
	}
	f := sf.filter()
	var shown []*snapshot.Snapshot
	for _, sn := range all {
		if f.Match(sn) {
			shown = append(shown, sn)
		}
	}
	opt := mount.Options{
		Snapshots:  shown,
		Host:       tf.Hosts[0],
		CacheBytes: cacheMiB << 20,
		Moment: func(name string) (time.Time, bool) {
			m, err := h.moment(name, time.Now())
			if err != nil {
				return time.Time{}, false
			}
			return m.Until, true
		},
		Warn: func(msg string) { g.ui.Warnf("mount: %s\n", msg) },
	}
	if at != "" {
		m, err := h.moment(at, time.Now())
		if err != nil {
			return err
		}
		opt.At = m.Until
		files := 0
		for _, sn := range all {
			if sn.Hostname == opt.Host && sn.Postgres == nil && !sn.AsOf().After(m.Until) {
				files++
			}
		}
		if files == 0 {
			return fmt.Errorf("%w: no snapshot of host %s had finished by %s (--host picks another host)", snapshot.ErrNotFound, opt.Host, m)
		}
	}
	root, _ := mount.New(context.WithoutCancel(ctx), r, opt)
	sec := time.Hour
	server, err := mount.Serve(dir, root, &fs.Options{
		EntryTimeout:    &sec,
		AttrTimeout:     &sec,
		NegativeTimeout: &sec,
		MountOptions: fuse.MountOptions{
			AllowOther:   allowOther,
			FsName:       "rewind",
			Name:         "rewind",
			Options:      []string{"ro", "default_permissions"},
			MaxReadAhead: 1 << 20,
			// Requests of up to 1 MiB (the kernel's max_pages follows
			// it): a sequential read takes fewer round trips.
			MaxWrite: 1 << 20,
		},
	})
	if err != nil {
		return fmt.Errorf("mount: %s: %w", dir, err)
	}
	// Best effort (root only): more of a sequential read in flight.
	mount.SetKernelReadahead(dir, mount.KernelReadahead)
	g.ui.Infof("repository mounted at %s (read-only); unmount with umount %s, or stop this command with Ctrl-C\n", dir, dir)
	stopped := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			if err := server.Unmount(); err != nil {
				g.ui.Warnf("mount: %s is busy (%v): detaching it now; it goes when the last file in it is closed\n", dir, err)
				exec.Command("fusermount3", "-u", "-z", dir).Run()
			}
		case <-stopped:
		}
	}()
	server.Wait()
	close(stopped)
	g.ui.Infof("%s unmounted\n", dir)
	return nil
}

// mount never writes to the repository: it may run with --no-lock, for a
// repository on read-only media.
func init() { readOnlyCommands = append(readOnlyCommands, "mount") }
