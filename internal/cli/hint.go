package cli

import "errors"

// hintedError is an error that knows the one hint that fits it, given in
// place of the general hint hintFor has for its kind: an error names the
// problem, its hint the fix, and the user reads one of each.
type hintedError struct {
	err  error
	hint string
}

func (e *hintedError) Error() string { return e.err.Error() }
func (e *hintedError) Unwrap() error { return e.err }

// withHint attaches hint to err.
func withHint(err error, hint string) error { return &hintedError{err: err, hint: hint} }

// ownHint returns the hint attached to err, if any.
func ownHint(err error) (string, bool) {
	var h *hintedError
	if errors.As(err, &h) {
		return h.hint, true
	}
	return "", false
}
