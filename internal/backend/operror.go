package backend

// OpError is a failed operation on one stored file. Every error a Backend
// returns for a file names the operation and the file this way
// ("save snapshots/1a2b…: …"), so the layers above add only what they were
// doing, never the file again.
type OpError struct {
	Op   string // save, load, stat, remove, list, …
	File string // the handle ("snapshots/1a2b…"), or the file type for list
	Err  error
}

func (e *OpError) Error() string { return e.Op + " " + e.File + ": " + e.Err.Error() }
func (e *OpError) Unwrap() error { return e.Err }

// Wrap names op and file in err, unless err already names that same
// operation on that same file (anywhere in its chain). It returns nil for
// nil. Providers, wrappers and the repository above them each call it at
// their boundary, and the message still says "save snapshots/1a2b…" once.
func Wrap(op, file string, err error) error {
	if err == nil || names(err, op, file) {
		return err
	}
	return &OpError{Op: op, File: file, Err: err}
}

// names reports whether an OpError for op on file is in err's chain.
func names(err error, op, file string) bool {
	for err != nil {
		if e, ok := err.(*OpError); ok && e.Op == op && e.File == file {
			return true
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if names(e, op, file) {
					return true
				}
			}
			return false
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		default:
			return false
		}
	}
	return false
}
