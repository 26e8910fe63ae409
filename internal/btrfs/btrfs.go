// Package btrfs wraps btrfs(8) for the plan's btrfs_snapshot step: it
// takes a read-only snapshot of a subvolume, deletes it, and tells
// subvolumes from plain folders. It is the only place rewind runs btrfs.
package btrfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"golang.org/x/sys/unix"
)

// superMagic is BTRFS_SUPER_MAGIC (linux/magic.h).
const superMagic = 0x9123683e

// firstFreeObjectID is the inode number of every subvolume's root
// folder (BTRFS_FIRST_FREE_OBJECTID), which is how btrfs-progs tells a
// subvolume from a folder.
const firstFreeObjectID = 256

// ErrNotSubvolume is returned for a path that is no btrfs subvolume.
var ErrNotSubvolume = errors.New("not a btrfs subvolume")

// Tool runs btrfs. The zero Tool uses "btrfs" from PATH.
type Tool struct {
	Bin string
}

// IsSubvolume reports whether path is the root of a btrfs subvolume.
func IsSubvolume(path string) (bool, error) {
	var sfs unix.Statfs_t
	if err := unix.Statfs(path, &sfs); err != nil {
		return false, fmt.Errorf("statfs %s: %w", path, err)
	}
	if sfs.Type != superMagic {
		return false, nil
	}
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return false, fmt.Errorf("lstat %s: %w", path, err)
	}
	return st.Mode&unix.S_IFMT == unix.S_IFDIR && st.Ino == firstFreeObjectID, nil
}

// Snapshot takes a read-only snapshot of the subvolume src at dst, which
// must not exist and must be on the same filesystem.
func (t Tool) Snapshot(ctx context.Context, src, dst string) error {
	ok, err := IsSubvolume(src)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("snapshot %s: %w", src, ErrNotSubvolume)
	}
	return t.run(ctx, "subvolume", "snapshot", "-r", src, dst)
}

// Delete deletes the subvolume (or snapshot) at path.
func (t Tool) Delete(ctx context.Context, path string) error {
	return t.run(ctx, "subvolume", "delete", path)
}

// run calls btrfs with args; a failure names the command and carries
// btrfs's own message.
func (t Tool) run(ctx context.Context, args ...string) error {
	bin := t.Bin
	if bin == "" {
		bin = "btrfs"
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("btrfs %s: %s", strings.Join(args, " "), msg)
	}
	return nil
}
