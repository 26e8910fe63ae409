package fs

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidName is returned, wrapped, for a name that is not a single
// path component: see ValidName.
var ErrInvalidName = errors.New("invalid file name")

// maxNameLen is NAME_MAX on Linux filesystems.
const maxNameLen = 255

// ValidName reports whether name can be used as a single entry in a
// directory. It rejects "", "." and "..", names containing '/' or NUL, and
// names longer than 255 bytes. Any other byte string is accepted,
// including invalid UTF-8, newlines and leading or trailing spaces.
func ValidName(name string) error {
	var why string
	switch {
	case name == "":
		why = "empty"
	case name == "." || name == "..":
		why = "a directory reference"
	case strings.IndexByte(name, '/') >= 0:
		why = "contains '/'"
	case strings.IndexByte(name, 0) >= 0:
		why = "contains NUL"
	case len(name) > maxNameLen:
		why = fmt.Sprintf("longer than %d bytes", maxNameLen)
	default:
		return nil
	}
	return fmt.Errorf("%w %q: %s", ErrInvalidName, name, why)
}

// Listing checks the names of one directory listing in the order they are
// stored. Each must be a ValidName and sort strictly after the last one
// accepted: listings are sorted bytewise (docs/FORMAT.md §8), so an entry
// that does not is a second entry of an earlier name, or one out of
// order, which could otherwise put a directory where a symlink of the same
// name was just made. Restore, dump, ls and find all check names through
// it. The zero value is ready for a new listing.
type Listing struct {
	last string
	any  bool
}

// Check returns nil for a name that may be used, or an error wrapping
// ErrInvalidName that says why not. A refused name does not change what
// later names are compared with.
func (l *Listing) Check(name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if l.any && name <= l.last {
		why := "same name as an earlier entry of the listing"
		if name != l.last {
			why = fmt.Sprintf("out of name order after %q", l.last)
		}
		return fmt.Errorf("%w %q: %s", ErrInvalidName, name, why)
	}
	l.last, l.any = name, true
	return nil
}
