package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
)

// newLogger makes the logger of --log-format and -v. Logs always go to
// standard error, never to standard output where summaries are.
//
// Without -v only warnings are logged, and in the text format they are
// written as sentences for people ("warning: ..."), not as slog records:
// a warning is something the user must see, and a key=value line in
// the middle of a backup's output reads as noise. With -v (or
// --log-format json) records keep slog's own format, for reading by
// tools and in bug reports.
func newLogger(w io.Writer, format string, verbose int) (*slog.Logger, error) {
	level := slog.LevelWarn
	if verbose > 0 {
		level = slog.LevelInfo
	}
	if verbose > 1 {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text", "":
		if verbose == 0 {
			return slog.New(&sentenceHandler{w: w, mu: &sync.Mutex{}}), nil
		}
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", format)
}

// sentenceHandler writes warnings and errors as one sentence each:
// "warning: MESSAGE (key value, key value)".
type sentenceHandler struct {
	w     io.Writer
	mu    *sync.Mutex
	attrs []slog.Attr
	group string
}

func (h *sentenceHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn
}

func (h *sentenceHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	if r.Level >= slog.LevelError {
		b.WriteString("error: ")
	} else {
		b.WriteString("warning: ")
	}
	b.WriteString(r.Message)
	var details []string
	add := func(a slog.Attr) {
		if a.Equal(slog.Attr{}) {
			return
		}
		key := a.Key
		if h.group != "" {
			key = h.group + "." + key
		}
		details = append(details, key+" "+a.Value.Resolve().String())
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(func(a slog.Attr) bool { add(a); return true })
	if len(details) > 0 {
		b.WriteString(" (" + strings.Join(details, ", ") + ")")
	}
	b.WriteString("\n")
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *sentenceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &c
}

func (h *sentenceHandler) WithGroup(name string) slog.Handler {
	c := *h
	if c.group != "" {
		name = c.group + "." + name
	}
	c.group = name
	return &c
}
