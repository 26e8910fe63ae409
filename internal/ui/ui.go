// Package ui is everything the user sees besides logs: human-readable
// output, line-delimited JSON (--json), and progress bars on a terminal.
package ui

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/term"
)

// UI writes results to Out and messages to Err.
type UI struct {
	Out   io.Writer
	Err   io.Writer
	JSON  bool
	Quiet bool
	// Listing is true for a command whose output is the data asked for
	// (a listing, a file's content): Quiet does not silence it.
	Listing bool
	// TTY is true when Err is a terminal, so progress bars are drawn.
	TTY bool
	mu  sync.Mutex // serializes writes
}

// New returns a UI on stdout and stderr.
func New(jsonOut, quiet bool) *UI {
	return &UI{Out: os.Stdout, Err: os.Stderr, JSON: jsonOut, Quiet: quiet, TTY: term.IsTerminal(int(os.Stderr.Fd()))}
}

// Printf writes human-readable output to Out, unless in JSON mode or,
// except for a listing, quiet: -q leaves only errors.
func (u *UI) Printf(format string, args ...any) {
	if u.JSON || (u.Quiet && !u.Listing) {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	fmt.Fprintf(u.Out, format, args...)
}

// Infof writes a message to Err unless quiet or in JSON mode.
func (u *UI) Infof(format string, args ...any) {
	if u.Quiet || u.JSON {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	fmt.Fprintf(u.Err, format, args...)
}

// Warnf writes a warning to Err, even when quiet.
func (u *UI) Warnf(format string, args ...any) {
	u.mu.Lock()
	defer u.mu.Unlock()
	fmt.Fprintf(u.Err, format, args...)
}

// JSONLine writes v as one line of JSON to Out.
func (u *UI) JSONLine(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"message_type": "error", "error": err.Error()})
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.Out.Write(append(b, '\n'))
}

// JSONDoc writes v as one JSON document (a listing) to Out.
func (u *UI) JSONDoc(v any) error {
	enc := json.NewEncoder(u.Out)
	u.mu.Lock()
	defer u.mu.Unlock()
	return enc.Encode(v)
}

// Bytes formats a byte count for humans.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.2f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
