package password

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// ReadFile returns the first line of the password file that s names.
// A missing, unreadable or empty file, or one whose first line is blank,
// is an error that names the file and the setting and says what to do;
// it is never passed on as a (wrong) password.
func ReadFile(s Setting) ([]byte, error) {
	b, err := os.ReadFile(s.Value)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("password file %s (from %s) does not exist: create it with the password on its first line, or name another file", s.Value, s.Name)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("password file %s (from %s) cannot be read: %w; run rewind as a user who can read it, or fix its permissions", s.Value, s.Name, err)
	case err != nil:
		return nil, fmt.Errorf("password file %s (from %s) cannot be read: %w", s.Value, s.Name, err)
	}
	if blank(b) {
		return nil, fmt.Errorf("%w: password file %s (from %s) holds no password (it is empty or only whitespace): write the password on its first line", ErrEmpty, s.Value, s.Name)
	}
	pw := firstLine(b)
	if blank(pw) {
		return nil, fmt.Errorf("%w: the first line of password file %s (from %s) is blank: the password must be on the first line", ErrEmpty, s.Value, s.Name)
	}
	return pw, nil
}
