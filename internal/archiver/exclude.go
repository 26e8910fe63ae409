package archiver

import (
	"fmt"
	"slices"
	"strings"

	"github.com/rewind-backup/rewind/internal/tree"
	"golang.org/x/sys/unix"
)

// cacheDirSignature starts a valid CACHEDIR.TAG file
// (https://bford.info/cachedir/).
const cacheDirSignature = "Signature: 8a477f597d28d172789f06886806bc55"

// marker is a file whose presence excludes the content of its directory
// (Options.ExcludeIfPresent, ExcludeCaches): named name, and when header
// is set, starting with it.
type marker struct {
	name, header string
}

// parseMarkers reads ExcludeIfPresent specs, NAME or NAME:HEADER (split at
// the first colon, as restic does), and adds CACHEDIR.TAG for
// ExcludeCaches.
func parseMarkers(specs []string, caches bool) ([]marker, error) {
	var out []marker
	for _, s := range specs {
		name, header, _ := strings.Cut(s, ":")
		if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
			return nil, fmt.Errorf("--exclude-if-present %q: want a file name, optionally followed by :CONTENT", s)
		}
		out = append(out, marker{name, header})
	}
	if caches {
		out = append(out, marker{"CACHEDIR.TAG", cacheDirSignature})
	}
	return out, nil
}

// markedBy returns the names of the markers present in the directory open
// as dirfd, nil when there are none. A marker with a header must be a
// regular file (not followed if a symlink) that starts with it.
func markedBy(dirfd int, markers []marker) []string {
	var found []string
	for _, m := range markers {
		if slices.Contains(found, m.name) {
			continue
		}
		if m.header == "" {
			var st unix.Stat_t
			if unix.Fstatat(dirfd, m.name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
				found = append(found, m.name)
			}
			continue
		}
		if hasHeader(dirfd, m) {
			found = append(found, m.name)
		}
	}
	return found
}

func hasHeader(dirfd int, m marker) bool {
	fd, err := unix.Openat(dirfd, m.name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false
	}
	buf := make([]byte, len(m.header))
	n := 0
	for n < len(buf) {
		k, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil || k == 0 {
			return false
		}
		n += k
	}
	return string(buf) == m.header
}

// markerChanged reports whether a partial backup's changes below a
// directory name one of its markers.
func (a *Archiver) markerChanged(c *cnode) bool {
	for _, m := range a.markers {
		if _, ok := c.children[m.name]; ok {
			return true
		}
	}
	return false
}

// LargeFile is a regular file left out by Options.ExcludeLargerThan.
type LargeFile struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// tooLarge reports whether n, at p, is a regular file larger than
// ExcludeLargerThan, and records it if so.
func (a *Archiver) tooLarge(p string, n *tree.Node) bool {
	if a.opt.ExcludeLargerThan <= 0 || n.Type != tree.File || int64(n.Size) <= a.opt.ExcludeLargerThan {
		return false
	}
	a.errMu.Lock()
	a.large = append(a.large, LargeFile{Path: p, Size: int64(n.Size)})
	a.errMu.Unlock()
	a.log.Info("left out: larger than --exclude-larger-than", "path", p, "size", n.Size)
	return true
}

// TooLarge returns the files left out by ExcludeLargerThan, sorted by
// path.
func (a *Archiver) TooLarge() []LargeFile {
	a.errMu.Lock()
	defer a.errMu.Unlock()
	out := slices.Clone(a.large)
	slices.SortFunc(out, func(x, y LargeFile) int { return strings.Compare(x.Path, y.Path) })
	return out
}
