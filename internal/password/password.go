// Package password finds the password that opens a repository: it picks
// one of the places a password can be configured (flags, environment
// variables) by a fixed precedence, and reads it from a file or a command
// with errors that name the place and say what to do.
//
// The precedence, documented in docs/CLI.md:
//
//  1. a flag (--password-file, --password-command) over any environment
//     variable (REWIND_PASSWORD, REWIND_PASSWORD_FILE,
//     REWIND_PASSWORD_COMMAND);
//  2. two settings of the same level (two flags, or two variables) are an
//     error naming both: rewind never picks one of them silently;
//  3. with none set, the caller falls back (the default repository's
//     password file, a prompt on a terminal).
package password

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Kind says what the value of a Setting is.
type Kind uint8

// The kinds of setting.
const (
	Literal Kind = iota + 1 // the password itself (REWIND_PASSWORD)
	File                    // a file whose first line is the password
	Command                 // a shell command that prints the password
)

// Setting is one place a password can be configured.
type Setting struct {
	// Name is how the user set it: "--password-file", "REWIND_PASSWORD".
	Name  string
	Kind  Kind
	Value string // the password, the file name or the command; "" if unset
	// Flag is true for a command-line flag, false for an environment
	// variable.
	Flag bool
}

// Set reports whether the setting was given. An empty value counts as
// unset, so REWIND_PASSWORD=$(cat missing-file) is no password rather
// than the empty one.
func (s Setting) Set() bool { return s.Value != "" }

// String names the setting and its file or command (never a literal
// password), for messages: "--password-file /root/pw".
func (s Setting) String() string {
	if s.Kind == Literal {
		return s.Name
	}
	return s.Name + " " + s.Value
}

// Sentinel errors, for callers and tests that tell failures apart.
var (
	// ErrConflict: two settings of the same level are given.
	ErrConflict = errors.New("conflicting password settings")
	// ErrEmpty: the source gave an empty or whitespace-only password.
	ErrEmpty = errors.New("empty password")
	// ErrTimeout: a password command did not finish in time.
	ErrTimeout = errors.New("password command timed out")
)

// Choose returns the setting to read the password from, by the
// precedence in the package comment, and false if none is set.
func Choose(settings ...Setting) (Setting, bool, error) {
	for _, flag := range []bool{true, false} {
		var set []Setting
		for _, s := range settings {
			if s.Flag == flag && s.Set() {
				set = append(set, s)
			}
		}
		switch {
		case len(set) == 1:
			return set[0], true, nil
		case len(set) > 1:
			return Setting{}, false, conflict(set, flag)
		}
	}
	return Setting{}, false, nil
}

func conflict(set []Setting, flags bool) error {
	names := make([]string, len(set))
	for i, s := range set {
		names[i] = s.Name
	}
	both := strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
	if flags {
		return fmt.Errorf("%w: %s are both given; give only one", ErrConflict, both)
	}
	return fmt.Errorf("%w: %s are all set; unset all but one, or choose with a flag, which takes precedence over the environment", ErrConflict, both)
}

// Options say how Read runs a password command.
type Options struct {
	// Timeout bounds a password command; 0 means no limit.
	Timeout time.Duration
	// Stderr receives what a command that succeeded wrote on its standard
	// error (a failing command's is put in the error); nil drops it.
	Stderr io.Writer
}

// DefaultTimeout is how long a password command may run by default.
const DefaultTimeout = 60 * time.Second

// Read returns the password that s gives.
func Read(ctx context.Context, s Setting, opt Options) ([]byte, error) {
	switch s.Kind {
	case Literal:
		if strings.TrimSpace(s.Value) == "" {
			return nil, fmt.Errorf("%w: %s holds only whitespace; set it to the password, or unset it", ErrEmpty, s.Name)
		}
		return []byte(s.Value), nil
	case File:
		return ReadFile(s)
	case Command:
		return RunCommand(ctx, s, opt)
	}
	return nil, fmt.Errorf("%s: unknown kind of password setting %d", s.Name, s.Kind)
}

// firstLine returns b up to its first line break, without a trailing \r.
func firstLine(b []byte) []byte {
	if i := strings.IndexByte(string(b), '\n'); i >= 0 {
		b = b[:i]
	}
	return []byte(strings.TrimSuffix(string(b), "\r"))
}

// blank reports whether b holds nothing but whitespace.
func blank(b []byte) bool { return strings.TrimSpace(string(b)) == "" }
