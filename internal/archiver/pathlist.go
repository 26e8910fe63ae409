package archiver

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ListFormat says how a file listing backup paths is read
// (backup --files-from and its variants).
type ListFormat int

const (
	// ListLines: one path per line; surrounding whitespace is trimmed,
	// and empty lines and lines starting with # are ignored.
	ListLines ListFormat = iota
	// ListVerbatim: one path per line, exactly as written (no comments,
	// no trimming); only empty lines are ignored.
	ListVerbatim
	// ListNUL: paths separated by NUL bytes, as `find -print0` writes
	// them, for names holding newlines; empty entries are ignored.
	ListNUL
)

// ListedPath is a backup path read from a list file, with where it was
// read, so that an error about it can say where it came from.
type ListedPath struct {
	Path string
	File string
	Line int // line (or, for ListNUL, entry) number from 1
}

// ParsePathList splits the content of a list file into paths. file names
// it in the result.
func ParsePathList(data []byte, format ListFormat, file string) []ListedPath {
	sep := byte('\n')
	if format == ListNUL {
		sep = 0
	}
	var out []ListedPath
	for i, rec := range bytes.Split(data, []byte{sep}) {
		p := string(rec)
		if format == ListLines {
			p = strings.TrimSpace(p)
			if strings.HasPrefix(p, "#") {
				continue
			}
		}
		if p == "" {
			continue
		}
		out = append(out, ListedPath{Path: p, File: file, Line: i + 1})
	}
	return out
}

// ReadPathList reads a list file; "-" is standard input.
func ReadPathList(file string, format ListFormat) ([]ListedPath, error) {
	var data []byte
	var err error
	name := file
	if file == "-" {
		data, err = io.ReadAll(os.Stdin)
		name = "standard input"
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, fmt.Errorf("read the list of paths: %w", err)
	}
	return ParsePathList(data, format, name), nil
}

// CheckListed makes sure that every listed path exists, before anything
// is stored: a path that does not is named with the file and line it
// came from.
func CheckListed(paths []ListedPath) error { return CheckListedIn("", paths) }

// CheckListedIn is CheckListed for the paths of a system whose root is
// mounted at root (Options.SystemRoot; "" is this one): each must be
// absolute, and is looked for below root.
func CheckListedIn(root string, paths []ListedPath) error {
	for _, p := range paths {
		if root != "" && !filepath.IsAbs(p.Path) {
			return fmt.Errorf("%q (line %d of %s): with a system root, list the system's absolute paths (such as /etc); nothing was backed up", p.Path, p.Line, p.File)
		}
		if _, err := os.Lstat(filepath.Join(root, p.Path)); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("%q (line %d of %s) does not exist; nothing was backed up", p.Path, p.Line, p.File)
			}
			return fmt.Errorf("%q (line %d of %s): %w; nothing was backed up", p.Path, p.Line, p.File, err)
		}
	}
	return nil
}
