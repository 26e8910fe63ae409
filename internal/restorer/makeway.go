package restorer

import (
	"errors"
	"fmt"
	"os"
	"path"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/rewind-backup/rewind/internal/fs"
)

// Making way: what a restore with Overwrite or Delete removes from the
// target, so that the target ends up as the snapshot has it. Both rollback
// and restore go through here.
//
//   - With Overwrite, an entry of the other kind in the way of a snapshot
//     entry is removed first: a file, symlink, device or FIFO where the
//     snapshot has a directory (a symlink is removed, never followed), or a
//     directory, with what is below it, where the snapshot has anything
//     else.
//   - With Delete, entries of a directory restored whole that the snapshot
//     does not list are removed too.
//
// Whatever the restore excludes (Options.Exclude), sockets, and anything
// on another filesystem than the target's are left alone, and so are the
// directories that hold them. Every removal is relative to an open
// directory descriptor, one validated name at a time, without following a
// symlink, so it stays inside the target.

// errKept: a directory in the way was kept because it holds entries the
// restore leaves alone.
var errKept = errors.New("it holds entries a restore leaves alone (excluded, sockets, or on another filesystem)")

// kindInWay reports whether the target has an entry name in dirfd that
// is of the other kind than the snapshot's (directory or not). A missing
// entry is not in the way.
func kindInWay(dirfd int, name string, wantDir bool) (bool, error) {
	var st unix.Stat_t
	err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, &os.PathError{Op: "lstat", Path: name, Err: err}
	}
	return (st.Mode&unix.S_IFMT == unix.S_IFDIR) != wantDir, nil
}

// makeWay removes the entry name of the directory open as dirfd (p is its
// path in the snapshot) when it is of the other kind than the snapshot's
// entry, with Overwrite, and reports whether it did (in a dry run: would).
// Without Overwrite, nothing is removed and the creation that follows
// reports what is in the way.
func (r *Restorer) makeWay(dirfd int, name, p string, wantDir bool) (bool, error) {
	if !r.opt.Overwrite {
		return false, nil
	}
	in, err := kindInWay(dirfd, name, wantDir)
	if err != nil || !in {
		return false, err
	}
	if err := r.remove(dirfd, name, p); err != nil {
		return false, fmt.Errorf("replace what is in the way: %w", err)
	}
	return true, nil
}

// deleteExtra removes, with Delete, the entries of the target directory d
// (at snapshot path p) that the snapshot's listing (names) lacks.
func (r *Restorer) deleteExtra(d *rdir, p string, names map[string]bool) {
	f, err := os.Open(fmt.Sprintf("/proc/self/fd/%d", d.fd))
	if err != nil {
		r.fail(p, fmt.Errorf("list what to delete: %w", err))
		return
	}
	defer f.Close()
	have, err := f.Readdirnames(-1)
	if err != nil {
		r.fail(p, fmt.Errorf("list what to delete: %w", err))
		return
	}
	slices.Sort(have)
	for _, name := range have {
		if names[name] {
			continue
		}
		q := path.Join(p, name)
		if err := r.remove(d.fd, name, q); err != nil && !errors.Is(err, errKept) {
			r.fail(q, fmt.Errorf("delete: %w", err))
		}
	}
}

// remove removes the entry name of the directory open as dirfd, at
// snapshot path p, and for a directory everything below it that may go.
// An entry left alone, or a directory that keeps one, is not an error for
// deleteExtra's sake, but makes remove return errKept so that a creation
// in its place is not attempted.
func (r *Restorer) remove(dirfd int, name, p string) error {
	if err := fs.ValidName(name); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return &os.PathError{Op: "lstat", Path: p, Err: err}
	}
	if r.leftAlone(p, name) || st.Mode&unix.S_IFMT == unix.S_IFSOCK || st.Dev != r.dev {
		r.log.Info("left alone", "path", p)
		return fmt.Errorf("%s: %w", p, errKept)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		if r.opt.DryRun {
			r.removedDry(p, &st)
			return nil
		}
		if err := unix.Unlinkat(dirfd, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return &os.PathError{Op: "unlink", Path: p, Err: err}
		}
		r.removed.Add(1)
		return nil
	}
	sub, err := fs.OpenDirAt(dirfd, name)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(sub), p)
	names, err := f.Readdirnames(-1)
	if err != nil {
		f.Close()
		return fmt.Errorf("list %s: %w", p, err)
	}
	kept := false
	for _, n := range names {
		err := r.remove(sub, n, path.Join(p, n))
		switch {
		case errors.Is(err, errKept):
			kept = true
		case err != nil:
			f.Close()
			return err
		}
	}
	f.Close()
	if kept {
		return fmt.Errorf("directory %s: %w", p, errKept)
	}
	if r.opt.DryRun {
		r.removedDry(p, &st)
		return nil
	}
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return &os.PathError{Op: "rmdir", Path: p, Err: err}
	}
	r.removed.Add(1)
	return nil
}

// removedDry records, in a dry run, an entry remove would remove (what is
// below a directory is recorded first, as remove goes).
func (r *Restorer) removedDry(p string, st *unix.Stat_t) {
	r.removed.Add(1)
	pl := Planned{Action: ActRemove, Path: p, Type: modeType(st.Mode)}
	if st.Mode&unix.S_IFMT == unix.S_IFREG {
		pl.Size = st.Size
	}
	r.plan(pl)
}
