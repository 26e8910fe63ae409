package watch

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// fanMask is what a fanotify group asks for: every change to names,
// content and metadata, for files and directories alike.
const fanMask = unix.FAN_CREATE | unix.FAN_DELETE | unix.FAN_MOVED_FROM | unix.FAN_MOVED_TO |
	unix.FAN_MODIFY | unix.FAN_CLOSE_WRITE | unix.FAN_ATTRIB | unix.FAN_ONDIR

// Sizes of the kernel's records (linux/fanotify.h).
const (
	fanMetaLen     = 24 // struct fanotify_event_metadata
	fanInfoHdrLen  = 4  // struct fanotify_event_info_header
	fanFsidLen     = 8  // __kernel_fsid_t
	fanHandleHdr   = 8  // struct file_handle without f_handle
	fanMaxCacheLen = 1 << 16
)

// ignoreOwnEvents drops the events caused by this process. Tests that
// make their changes from the process itself clear it; elsewhere it is
// always set.
var ignoreOwnEvents = true

// fanotify watches whole filesystems: one fanotify group per mount that
// holds a root, with one FAN_MARK_FILESYSTEM mark, so that the cost of
// watching does not grow with the number of directories. Events name the
// directory by file handle (FAN_REPORT_DFID_NAME, Linux 5.9); the handle
// is opened with open_by_handle_at and its path read back from
// /proc/self/fd, once per directory thanks to a cache, and events outside
// the roots are dropped.
type fanotify struct {
	groups    []*fanGroup
	closeOnce sync.Once
}

// fanGroup is one fanotify group: the roots of one mount.
type fanGroup struct {
	file    *os.File
	mountFd int // any descriptor on the mount, for open_by_handle_at
	filter  pathFilter
	self    int32
	log     *slog.Logger
	// cache maps a directory's handle to its path and where that lies.
	// Renaming a directory moves every path below it, so a directory
	// rename clears it.
	cache map[string]dirInfo
	key   []byte // scratch for cache keys
}

// dirInfo is what the cache knows of a directory.
type dirInfo struct {
	path  string
	where uint8
}

// Where a directory lies relative to the roots.
const (
	dirOutside = iota // nothing below it is watched
	dirInside         // it is a root or below one
	dirAbove          // it holds a root: only that entry matters
)

func newFanotify(roots, ignore []string, log *slog.Logger) (*fanotify, error) {
	byMount := map[int][]string{}
	var mounts []int
	for _, r := range roots {
		_, mnt, err := unix.NameToHandleAt(unix.AT_FDCWD, r, 0)
		if err != nil {
			return nil, fmt.Errorf("file handle of %s: %w", r, err)
		}
		if _, ok := byMount[mnt]; !ok {
			mounts = append(mounts, mnt)
		}
		byMount[mnt] = append(byMount[mnt], r)
	}
	s := &fanotify{}
	for _, m := range mounts {
		g, err := newFanGroup(byMount[m], ignore, log)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.groups = append(s.groups, g)
	}
	return s, nil
}

func newFanGroup(roots, ignore []string, log *slog.Logger) (*fanGroup, error) {
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC|unix.FAN_NONBLOCK|unix.FAN_REPORT_DFID_NAME,
		unix.O_RDONLY|unix.O_LARGEFILE|unix.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("fanotify_init: %w", err)
	}
	// open_by_handle_at refuses an O_PATH descriptor for the mount.
	mdir := roots[0]
	if fi, err := os.Stat(mdir); err == nil && !fi.IsDir() {
		mdir = filepath.Dir(mdir)
	}
	mfd, err := unix.Open(mdir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("open %s: %w", mdir, err)
	}
	if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_FILESYSTEM, fanMask, unix.AT_FDCWD, roots[0]); err != nil {
		unix.Close(fd)
		unix.Close(mfd)
		return nil, fmt.Errorf("fanotify_mark filesystem of %s: %w", roots[0], err)
	}
	// A non-blocking descriptor makes the os.File pollable, so that Read
	// waits in the runtime's poller and Close wakes it.
	return &fanGroup{
		file:    os.NewFile(uintptr(fd), "fanotify"),
		mountFd: mfd,
		filter:  pathFilter{roots: roots, ignore: ignore},
		self:    int32(os.Getpid()),
		log:     log,
		cache:   map[string]dirInfo{},
	}, nil
}

func (s *fanotify) Name() string { return BackendFanotify }

func (s *fanotify) Close() error {
	s.closeOnce.Do(func() {
		for _, g := range s.groups {
			g.file.Close()
			unix.Close(g.mountFd)
		}
	})
	return nil
}

func (s *fanotify) Run(ctx context.Context, emit func([]Event)) error {
	return runReaders(ctx, s, len(s.groups), func(i int, send func([]Event)) error {
		return s.groups[i].read(send)
	}, emit)
}

// runReaders runs one reader per kernel object of src and hands what they
// read to emit from the calling goroutine, until ctx is done or src is
// closed.
func runReaders(ctx context.Context, src Source, n int, read func(i int, send func([]Event)) error, emit func([]Event)) error {
	stop := context.AfterFunc(ctx, func() { src.Close() })
	defer stop()
	ch := make(chan []Event, 16)
	var g errgroup.Group
	for i := range n {
		g.Go(func() error { return read(i, func(evs []Event) { ch <- evs }) })
	}
	done := make(chan error, 1)
	go func() {
		done <- g.Wait()
		close(ch)
	}()
	for evs := range ch {
		emit(evs)
	}
	return <-done
}

// readPause is how long a reader lets events gather in the kernel's queue
// after a read that did not fill its buffer. Events come one at a time on a
// busy filesystem (a filesystem mark sees all of it); reading them in
// batches costs a fraction of the system calls and wake-ups, lets the
// kernel merge repeated events, and adds nothing noticeable to the delay
// of a capture.
const readPause = 25 * time.Millisecond

// read reads events until the group is closed.
func (g *fanGroup) read(send func([]Event)) error {
	buf := make([]byte, 64<<10)
	for {
		n, err := g.file.Read(buf)
		switch {
		case errors.Is(err, os.ErrClosed):
			return nil
		case errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN):
			continue
		case err != nil:
			return fmt.Errorf("read fanotify events: %w", err)
		}
		evs, err := g.parse(buf[:n])
		if err != nil {
			return err
		}
		if len(evs) > 0 {
			send(evs)
		}
		if n < len(buf)/2 {
			time.Sleep(readPause)
		}
	}
}

// parse decodes a buffer of fanotify events.
func (g *fanGroup) parse(b []byte) ([]Event, error) {
	ne := binary.NativeEndian
	var out []Event
	for len(b) >= fanMetaLen {
		evLen := int(ne.Uint32(b[0:]))
		mlen := int(ne.Uint16(b[6:]))
		if b[4] != unix.FANOTIFY_METADATA_VERSION {
			return out, fmt.Errorf("fanotify: metadata version %d, want %d", b[4], unix.FANOTIFY_METADATA_VERSION)
		}
		if evLen < fanMetaLen || evLen > len(b) || mlen < fanMetaLen || mlen > evLen {
			return out, fmt.Errorf("fanotify: bad event length %d", evLen)
		}
		mask := ne.Uint64(b[8:])
		if fd := int32(ne.Uint32(b[16:])); fd >= 0 {
			unix.Close(int(fd))
		}
		pid := int32(ne.Uint32(b[20:]))
		info := b[mlen:evLen]
		b = b[evLen:]
		if mask&unix.FAN_Q_OVERFLOW != 0 {
			for _, r := range g.filter.roots {
				out = append(out, Event{Path: r, Op: OpOverflow})
			}
			continue
		}
		d, name, ok := g.locate(info)
		if mask&unix.FAN_ONDIR != 0 && mask&(unix.FAN_MOVED_FROM|unix.FAN_MOVED_TO) != 0 && (!ok || g.near(joinName(d.path, name))) {
			// Every cached path below the renamed directory is stale. A
			// rename far from the roots only makes stale the paths of
			// directories that stay outside them, which are never used.
			clear(g.cache)
		}
		// Our own writes (the status file, a repository inside a root)
		// are never changes to capture.
		if !ok || d.where == dirOutside || pid == g.self && ignoreOwnEvents {
			continue
		}
		p := joinName(d.path, name)
		if g.filter.root(p) == "" {
			continue
		}
		out = appendOps(out, p, mask&unix.FAN_ONDIR != 0,
			mask&(unix.FAN_CREATE|unix.FAN_MOVED_TO) != 0,
			mask&(unix.FAN_CREATE|unix.FAN_DELETE|unix.FAN_MOVED_FROM|unix.FAN_MOVED_TO|unix.FAN_ATTRIB) != 0,
			mask&unix.FAN_MODIFY != 0, mask&unix.FAN_CLOSE_WRITE != 0)
	}
	return out, nil
}

// appendOps turns what happened to p into events: a directory that
// appeared, a changed entry, a write, a close after writing.
func appendOps(out []Event, p string, isDir, appeared, changed, wrote, closed bool) []Event {
	switch {
	case isDir && appeared:
		out = append(out, Event{Path: p, Op: OpNewDir})
	case changed:
		out = append(out, Event{Path: p, Op: OpChange})
	}
	if wrote {
		out = append(out, Event{Path: p, Op: OpWrite})
	}
	if closed {
		out = append(out, Event{Path: p, Op: OpClose})
	}
	return out
}

// locate finds the directory and entry name of an event's DFID_NAME (or
// DFID) record. ok is false when the directory no longer exists: then a
// change further up (its removal) is reported too.
func (g *fanGroup) locate(info []byte) (dir dirInfo, name string, ok bool) {
	ne := binary.NativeEndian
	for len(info) >= fanInfoHdrLen {
		typ := info[0]
		l := int(ne.Uint16(info[2:]))
		if l < fanInfoHdrLen || l > len(info) {
			return dirInfo{}, "", false
		}
		rec := info[:l]
		info = info[l:]
		if typ != unix.FAN_EVENT_INFO_TYPE_DFID_NAME && typ != unix.FAN_EVENT_INFO_TYPE_DFID {
			continue
		}
		h := rec[fanInfoHdrLen+fanFsidLen:]
		if len(h) < fanHandleHdr {
			return dirInfo{}, "", false
		}
		hb := int(ne.Uint32(h[0:]))
		ht := int32(ne.Uint32(h[4:]))
		if hb > len(h)-fanHandleHdr {
			return dirInfo{}, "", false
		}
		handle := h[fanHandleHdr : fanHandleHdr+hb]
		if typ == unix.FAN_EVENT_INFO_TYPE_DFID_NAME {
			n := h[fanHandleHdr+hb:]
			if i := strings.IndexByte(string(n), 0); i >= 0 {
				n = n[:i]
			}
			name = string(n)
		}
		dir, ok = g.resolve(ht, handle)
		return dir, name, ok
	}
	return dirInfo{}, "", false
}

// near reports whether a directory at p holds a root or is in one: moving
// it can change which directories are inside the roots.
func (g *fanGroup) near(p string) bool {
	for _, r := range g.filter.roots {
		if under(p, r) || under(r, p) {
			return true
		}
	}
	return false
}

// resolve returns the current path of the directory with the given file
// handle, and where it lies.
func (g *fanGroup) resolve(typ int32, handle []byte) (dirInfo, bool) {
	g.key = binary.NativeEndian.AppendUint32(g.key[:0], uint32(typ))
	g.key = append(g.key, handle...)
	if d, ok := g.cache[string(g.key)]; ok {
		return d, true
	}
	fd, err := unix.OpenByHandleAt(g.mountFd, unix.NewFileHandle(typ, handle), unix.O_PATH|unix.O_CLOEXEC)
	if err != nil {
		return dirInfo{}, false // ESTALE: removed since
	}
	p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	unix.Close(fd)
	if err != nil || !strings.HasPrefix(p, "/") || strings.HasSuffix(p, " (deleted)") {
		return dirInfo{}, false
	}
	d := dirInfo{path: p, where: dirOutside}
	for _, r := range g.filter.roots {
		switch {
		case under(p, r):
			d.where = dirInside
		case d.where == dirOutside && under(r, p):
			d.where = dirAbove
		}
	}
	if len(g.cache) >= fanMaxCacheLen {
		clear(g.cache)
	}
	g.cache[string(g.key)] = d
	return d, true
}
