package watch

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// Op says what happened to a path.
type Op uint8

// Operations reported by sources.
const (
	// OpWrite: content was written and the file may still be open.
	OpWrite Op = iota + 1
	// OpClose: a file open for writing was closed.
	OpClose
	// OpChange: the entry was created, removed, renamed to or from, or
	// given new metadata; it must be looked at again.
	OpChange
	// OpNewDir: a directory appeared (made, or moved in). Files may have
	// been created in it before anyone could watch it: walk it whole.
	OpNewDir
	// OpOverflow: events were lost. Path is the root below which changes
	// may have gone unreported.
	OpOverflow
)

func (o Op) String() string {
	switch o {
	case OpWrite:
		return "write"
	case OpClose:
		return "close"
	case OpChange:
		return "change"
	case OpNewDir:
		return "new-dir"
	case OpOverflow:
		return "overflow"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Event is one change reported by a source. Path is absolute and clean.
type Event struct {
	Path string
	Op   Op
}

// Source reports changes below a set of roots. It is set up (every watch
// or mark in place) when its constructor returns, so that a scan made after
// that misses nothing that the source does not report.
type Source interface {
	// Name is "fanotify" or "inotify".
	Name() string
	// Run reads events until ctx is done or Close is called, handing them
	// to emit in batches. emit is called from Run's goroutine only.
	Run(ctx context.Context, emit func([]Event)) error
	// Close releases the kernel objects and makes Run return.
	Close() error
}

// Backends accepted by Open.
const (
	BackendAuto     = "auto"
	BackendFanotify = "fanotify"
	BackendInotify  = "inotify"
)

// Open sets up a source for roots with the backend asked for. With
// BackendAuto it tries fanotify and falls back to recursive inotify where
// fanotify is unavailable (an old kernel, no CAP_SYS_ADMIN, a filesystem
// without file handles). Events below the ignore paths are dropped.
func Open(backend string, roots, ignore []string, log *slog.Logger) (Source, error) {
	switch backend {
	case BackendFanotify:
		return newFanotify(roots, ignore, log)
	case BackendInotify:
		return newInotify(roots, ignore, log)
	case BackendAuto, "":
		s, err := newFanotify(roots, ignore, log)
		if err == nil {
			return s, nil
		}
		log.Info("fanotify is unavailable; watching with inotify", "err", err)
		return newInotify(roots, ignore, log)
	}
	return nil, fmt.Errorf("unknown watch backend %q (want auto, fanotify or inotify)", backend)
}

// pathFilter decides which paths belong to the watched roots.
type pathFilter struct {
	roots  []string
	ignore []string
}

// under reports whether p is root or below it.
func under(p, root string) bool {
	return p == root || root == "/" || strings.HasPrefix(p, root) && len(p) > len(root) && p[len(root)] == '/'
}

// root returns the watched root that holds p, or "".
func (f *pathFilter) root(p string) string {
	for _, ig := range f.ignore {
		if under(p, ig) {
			return ""
		}
	}
	for _, r := range f.roots {
		if under(p, r) {
			return r
		}
	}
	return ""
}

// joinName appends a directory entry's name to its directory's path.
func joinName(dir, name string) string {
	switch {
	case name == "" || name == ".":
		return dir
	case dir == "/":
		return "/" + name
	}
	return dir + "/" + name
}
