package restorer

import (
	"context"
	"errors"
	"os"

	"golang.org/x/sys/unix"

	"github.com/rewind-backup/rewind/internal/fs"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
)

// A dry run (Options.DryRun) walks the snapshot through the same code as
// a restore: the walker, ensure, makeWay, remove and deleteExtra, the
// hard-link table and the workers. Where a restore would change the
// target, a dry run records the decision instead (Planned, Stats). It
// only opens and reads what the target holds, never for writing: an
// existing file is compared chunk by chunk with the snapshot as a restore
// with Overwrite compares it. A directory the restore would create does
// not exist, so it cannot be opened: it is modelled as absent (rdir.absent,
// fd -1), and everything below it is new.

// Actions of a dry run.
const (
	// ActNew: the entry would be created; nothing is at its path.
	ActNew = "new"
	// ActRewrite: the entry exists and would be rewritten (a file whose
	// content differs, or an entry that is replaced, such as a symlink).
	ActRewrite = "rewrite"
	// ActUnchanged: a file already holds the snapshot's content, or a
	// directory already exists; only its metadata would be set again.
	ActUnchanged = "unchanged"
	// ActRemove: the entry of the target would be removed (Overwrite: of
	// another type in the way; Delete: not in the snapshot).
	ActRemove = "remove"
	// ActNotBackedUp: the backup could not read the file; nothing would
	// be written and what is at its path is left alone.
	ActNotBackedUp = "not_backed_up"
)

// Planned is one decision of a dry run.
type Planned struct {
	Action string `json:"action"`
	// Path is the entry's path in the snapshot (for a removal, the path
	// the target's entry has in the snapshot's terms).
	Path string `json:"path"`
	// Type is file, dir, symlink, dev, chardev, fifo or socket.
	Type string `json:"type"`
	// Size is a file's size: what would be written for new and rewrite,
	// what is there for remove.
	Size int64 `json:"size"`
	// LinkTo names the path an extra name of a hard-linked file would be
	// linked to.
	LinkTo string `json:"link_to,omitempty"`
}

// plan tells Options.Plan about a decision, one at a time.
func (r *Restorer) plan(p Planned) {
	if r.opt.Plan == nil {
		return
	}
	r.planMu.Lock()
	defer r.planMu.Unlock()
	r.opt.Plan(p)
}

// planned is the decision about an entry of the snapshot.
func plannedNode(action, p string, n *tree.Node) Planned {
	pl := Planned{Action: action, Path: p, Type: n.Type.String()}
	if n.Type == tree.File {
		pl.Size = int64(n.Size)
	}
	return pl
}

// modeType names the type of an entry of the target.
func modeType(mode uint32) string {
	if t := fs.TypeOf(mode); t != 0 {
		return t.String()
	}
	return tree.File.String()
}

// errExists is what creating name fails with when something is there and
// Overwrite is off.
func errExists(op, name string) error {
	return &os.PathError{Op: op, Path: name, Err: unix.EEXIST}
}

// ensureDry is ensure in a dry run: d exists already (it is opened,
// read-only), or it would be created (absent), after makeWay has recorded
// what of another type it would remove.
func (r *Restorer) ensureDry(d *rdir) error {
	if !d.parent.absent {
		gone, err := r.makeWay(d.parent.fd, d.name, d.path, true)
		if err != nil {
			return err
		}
		if !gone {
			fd, err := fs.OpenDirAt(d.parent.fd, d.name)
			switch {
			case err == nil:
				d.fd = fd
				r.dirs.Add(1)
				r.plan(plannedNode(ActUnchanged, d.path, d.node))
				return nil
			case !errors.Is(err, unix.ENOENT):
				// Mkdirat fails on anything but a directory.
				return errExists("mkdirat", d.name)
			}
		}
	}
	d.absent = true
	r.dirs.Add(1)
	r.plan(plannedNode(ActNew, d.path, d.node))
	return nil
}

// inPlace reports whether the directory d of the target holds an entry
// name, which the restore would replace (gone: makeWay removes it first).
func inPlace(d *rdir, name string, gone bool) bool {
	if gone || d.absent {
		return false
	}
	var st unix.Stat_t
	return unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil
}

// specialDry is special in a dry run: a symlink, device or FIFO is
// always made anew, replacing what is there with Overwrite.
func (r *Restorer) specialDry(d *rdir, p string, n *tree.Node, gone bool) error {
	act := ActNew
	if inPlace(d, n.Name, gone) {
		if !r.opt.Overwrite {
			return errExists("create", n.Name)
		}
		act = ActRewrite
	}
	r.plan(plannedNode(act, p, n))
	return nil
}

// linkDry is the link of a further name of a hard-linked inode in a dry
// run.
func (r *Restorer) linkDry(d *rdir, p, first string, n *tree.Node, gone bool) error {
	act := ActNew
	if inPlace(d, n.Name, gone) {
		if !r.opt.Overwrite {
			return errExists("link", n.Name)
		}
		act = ActRewrite
	}
	pl := plannedNode(act, p, n)
	pl.LinkTo = first
	r.plan(pl)
	return nil
}

// restoreFileDry is restoreFile in a dry run: it decides, as a restore
// would, whether the file is new, rewritten or already up to date,
// comparing an existing file chunk by chunk (read-only).
func (r *Restorer) restoreFileDry(ctx context.Context, job *fileJob, buf []byte) ([]byte, error) {
	n := job.node
	content, err := snapshot.ReadableContent(ctx, r.repo, n)
	if err != nil {
		return buf, err
	}
	act := ActNew
	if !job.absent && !job.dir.absent {
		if act, buf, err = r.compareFile(job.dir.fd, n, content, buf); err != nil {
			return buf, err
		}
	}
	if act == ActUnchanged {
		r.skipped.Add(1)
	} else {
		r.files.Add(1)
		r.bytes.Add(int64(n.Size))
	}
	r.plan(plannedNode(act, job.path, n))
	if r.opt.Progress != nil {
		r.opt.Progress(1, int64(n.Size))
	}
	return buf, nil
}

// compareFile decides what a restore would do with the file n at its
// name in dirfd: createFile opens a regular file with one link as it is
// (with Overwrite), and restoreFile leaves it unchanged when it has the
// size and every chunk (differs); anything else is replaced.
func (r *Restorer) compareFile(dirfd int, n *tree.Node, content []tree.Chunk, buf []byte) (string, []byte, error) {
	fd, err := unix.Openat(dirfd, n.Name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err == unix.ENOENT {
		return ActNew, buf, nil
	}
	if !r.opt.Overwrite {
		if err == nil {
			unix.Close(fd)
		}
		return "", buf, errExists("create", n.Name)
	}
	if err != nil {
		return ActRewrite, buf, nil
	}
	f := os.NewFile(uintptr(fd), n.Name)
	defer f.Close()
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 || st.Size != int64(n.Size) {
		return ActRewrite, buf, nil
	}
	var off int64
	for _, c := range content {
		var diff bool
		if diff, buf = r.differs(f, st.Size, off, c, buf); diff {
			return ActRewrite, buf, nil
		}
		off += int64(c.Size)
	}
	return ActUnchanged, buf, nil
}
