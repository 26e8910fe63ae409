package fs

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidName is returned, wrapped, for a name that is not a single
// path component: see ValidName.
var ErrInvalidName = errors.New("invalid file name")

// ErrDuplicateName is returned, wrapped, for a second entry of the same
// name in one directory listing.
var ErrDuplicateName = errors.New("a second entry of the same name in one directory")

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
