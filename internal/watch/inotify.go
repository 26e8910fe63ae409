package watch

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// inoMask is what every directory watch asks for.
const inoMask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO |
	unix.IN_MODIFY | unix.IN_CLOSE_WRITE | unix.IN_ATTRIB | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF |
	unix.IN_DONT_FOLLOW | unix.IN_EXCL_UNLINK

// inoHdrLen is the size of struct inotify_event without its name.
const inoHdrLen = unix.SizeofInotifyEvent

// inotify watches every directory below each root with its own inotify
// instance, so that a queue overflow is confined to one root. Watches are
// added to a directory before it is listed, so every entry made after the
// listing is reported; a directory that appears is watched and walked at
// once, and reported as new so that the files made in it before its watch
// existed are captured by walking it whole.
type inotify struct {
	insts     []*inoInst
	closeOnce sync.Once
}

// inoInst is the inotify instance of one root. Its maps are used by the
// reading goroutine only, after the constructor.
type inoInst struct {
	file   *os.File
	fd     int
	root   string
	single string // for a root that is not a directory: its name in the watched parent
	filter pathFilter
	log    *slog.Logger
	paths  map[int32]string // watch descriptor → directory
	wds    map[string]int32 // directory → watch descriptor
	full   bool             // the watch limit was hit once (logged once)
}

func newInotify(roots, ignore []string, log *slog.Logger) (*inotify, error) {
	s := &inotify{}
	for _, r := range roots {
		in, err := newInoInst(r, ignore, log)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.insts = append(s.insts, in)
	}
	return s, nil
}

func newInoInst(root string, ignore []string, log *slog.Logger) (*inoInst, error) {
	fi, err := os.Lstat(root)
	if err != nil {
		return nil, err
	}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	in := &inoInst{
		file:   os.NewFile(uintptr(fd), "inotify"),
		fd:     fd,
		root:   root,
		filter: pathFilter{roots: []string{root}, ignore: ignore},
		log:    log,
		paths:  map[int32]string{},
		wds:    map[string]int32{},
	}
	if !fi.IsDir() {
		// A single file: watch its directory, for that name only.
		in.single = filepath.Base(root)
		if err := in.watch(filepath.Dir(root)); err != nil {
			in.file.Close()
			return nil, err
		}
		return in, nil
	}
	if err := in.addTree(root); err != nil {
		in.file.Close()
		return nil, err
	}
	return in, nil
}

func (s *inotify) Name() string { return BackendInotify }

func (s *inotify) Close() error {
	s.closeOnce.Do(func() {
		for _, in := range s.insts {
			in.file.Close()
		}
	})
	return nil
}

func (s *inotify) Run(ctx context.Context, emit func([]Event)) error {
	return runReaders(ctx, s, len(s.insts), func(i int, send func([]Event)) error {
		return s.insts[i].read(send)
	}, emit)
}

// watch adds or updates the watch of one directory.
func (in *inoInst) watch(dir string) error {
	wd, err := unix.InotifyAddWatch(in.fd, dir, inoMask)
	if err != nil {
		return &os.PathError{Op: "inotify_add_watch", Path: dir, Err: err}
	}
	w := int32(wd)
	if old, ok := in.paths[w]; ok && old != dir {
		delete(in.wds, old)
	}
	in.paths[w] = dir
	in.wds[dir] = w
	return nil
}

// addTree watches dir and every directory below it. Each directory is
// watched before it is listed, so an entry made meanwhile is either listed
// or reported. Directories that vanish meanwhile are skipped.
func (in *inoInst) addTree(dir string) error {
	if in.filter.root(dir) == "" {
		return nil
	}
	if err := in.watch(dir); err != nil {
		switch {
		case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR):
			return nil
		case errors.Is(err, unix.ENOSPC):
			if !in.full {
				in.full = true
				in.log.Warn("inotify watch limit reached (fs.inotify.max_user_watches): changes in directories without a watch are found by the periodic full scan only", "dir", dir)
			}
			return nil
		}
		return err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return nil
		}
		return fmt.Errorf("list %s: %w", dir, err)
	}
	for _, e := range ents {
		if e.IsDir() {
			if err := in.addTree(joinName(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// removeTree drops the watches of dir and everything below it (moved out
// of its place; the new place, if watched, is added again).
func (in *inoInst) removeTree(dir string) {
	for p, wd := range in.wds {
		if under(p, dir) {
			unix.InotifyRmWatch(in.fd, uint32(wd))
			delete(in.wds, p)
			delete(in.paths, wd)
		}
	}
}

// read reads events until the instance is closed.
func (in *inoInst) read(send func([]Event)) error {
	buf := make([]byte, 64<<10)
	for {
		n, err := in.file.Read(buf)
		switch {
		case errors.Is(err, os.ErrClosed):
			return nil
		case errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN):
			continue
		case err != nil:
			return fmt.Errorf("read inotify events: %w", err)
		}
		if evs := in.parse(buf[:n]); len(evs) > 0 {
			send(evs)
		}
		if n < len(buf)/2 {
			time.Sleep(readPause)
		}
	}
}

// parse decodes a buffer of inotify events, keeping the watches in step
// with directories that come and go.
func (in *inoInst) parse(b []byte) []Event {
	ne := binary.NativeEndian
	var out []Event
	for len(b) >= inoHdrLen {
		wd := int32(ne.Uint32(b[0:]))
		mask := ne.Uint32(b[4:])
		l := int(ne.Uint32(b[12:]))
		if inoHdrLen+l > len(b) {
			break
		}
		name := string(b[inoHdrLen : inoHdrLen+l])
		b = b[inoHdrLen+l:]
		if i := strings.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		if mask&unix.IN_Q_OVERFLOW != 0 {
			out = append(out, Event{Path: in.root, Op: OpOverflow})
			continue
		}
		dir, ok := in.paths[wd]
		if mask&unix.IN_IGNORED != 0 {
			if ok {
				delete(in.paths, wd)
				if in.wds[dir] == wd {
					delete(in.wds, dir)
				}
			}
			continue
		}
		if !ok {
			continue
		}
		p := joinName(dir, name)
		if in.single != "" && name != in.single {
			continue
		}
		if in.filter.root(p) == "" {
			continue
		}
		isDir := mask&unix.IN_ISDIR != 0
		if mask&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF) != 0 {
			// Reported by the parent's watch as well, except for a root.
			if p == in.root {
				out = append(out, Event{Path: p, Op: OpChange})
			}
			continue
		}
		switch {
		case isDir && mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0:
			if err := in.addTree(p); err != nil {
				in.log.Warn("cannot watch a new directory; the periodic full scan will find its changes", "dir", p, "err", err)
			}
		case isDir && mask&unix.IN_MOVED_FROM != 0:
			in.removeTree(p)
		}
		out = appendOps(out, p, isDir,
			mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0,
			mask&(unix.IN_CREATE|unix.IN_DELETE|unix.IN_MOVED_FROM|unix.IN_MOVED_TO|unix.IN_ATTRIB) != 0,
			mask&unix.IN_MODIFY != 0, mask&unix.IN_CLOSE_WRITE != 0)
	}
	return out
}
