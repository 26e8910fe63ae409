package watch

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestPendingCoalesces: many events on one path make one entry; nothing
// is kept below a directory that will be walked whole; a batch taken
// empties the set, and a batch put back is taken again.
func TestPendingCoalesces(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	p := NewPending([]string{"/w"})
	for i := range 100 {
		p.Add(Event{Path: "/w/log", Op: OpWrite}, t0.Add(time.Duration(i)*time.Millisecond))
	}
	p.Add(Event{Path: "/w/a/b/f", Op: OpChange}, t0)
	p.Add(Event{Path: "/w/a", Op: OpNewDir}, t0.Add(time.Second))
	p.Add(Event{Path: "/w/a/c", Op: OpChange}, t0.Add(2*time.Second))
	p.Add(Event{Path: "/w/ab", Op: OpChange}, t0.Add(2*time.Second))
	if got := p.Len(); got != 3 {
		t.Errorf("Len = %d, want 3 (/w/log, /w/ab, walk /w/a)", got)
	}
	b := p.Take(nil)
	if want := []string{"/w/ab", "/w/log"}; !slices.Equal(b.Paths, want) {
		t.Errorf("paths %q, want %q", b.Paths, want)
	}
	if want := []string{"/w/a"}; !slices.Equal(b.Rescan, want) {
		t.Errorf("rescan %q, want %q", b.Rescan, want)
	}
	if b.Full || !b.Oldest.Equal(t0) || b.Reason != "changes" {
		t.Errorf("batch full %v, oldest %v, reason %q", b.Full, b.Oldest, b.Reason)
	}
	if p.Len() != 0 || !p.Oldest().IsZero() {
		t.Errorf("after Take: Len %d, oldest %v", p.Len(), p.Oldest())
	}
	p.Add(Event{Path: "/w/later", Op: OpChange}, t0.Add(time.Hour))
	p.Restore(b)
	b2 := p.Take(nil)
	if want := []string{"/w/ab", "/w/later", "/w/log"}; !slices.Equal(b2.Paths, want) || !slices.Equal(b2.Rescan, b.Rescan) || !b2.Oldest.Equal(t0) {
		t.Errorf("after Restore: paths %q rescan %q oldest %v", b2.Paths, b2.Rescan, b2.Oldest)
	}
}

// TestPendingSettles: a file written and not closed is unsettled until it
// has been quiet for the quiet period; a closed one is settled at once.
func TestPendingSettles(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	q := 100 * time.Millisecond
	p := NewPending([]string{"/w"})
	p.Add(Event{Path: "/w/open", Op: OpWrite}, t0)
	p.Add(Event{Path: "/w/closed", Op: OpWrite}, t0)
	p.Add(Event{Path: "/w/closed", Op: OpClose}, t0)
	if got := p.Unsettled(t0.Add(50*time.Millisecond), q); !slices.Equal(got, []string{"/w/open"}) {
		t.Errorf("unsettled %q, want /w/open", got)
	}
	if got := p.QuietAt(q); !got.Equal(t0.Add(q)) {
		t.Errorf("quiet at %v, want %v", got, t0.Add(q))
	}
	if got := p.Unsettled(t0.Add(q), q); len(got) != 0 {
		t.Errorf("unsettled after the quiet period: %q", got)
	}
}

// TestPendingOverflow: an overflow of the only root asks for a full walk;
// with several roots, for a walk of the root that overflowed only.
func TestPendingOverflow(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	one := NewPending([]string{"/w"})
	one.Add(Event{Path: "/w/x", Op: OpChange}, t0)
	one.Add(Event{Path: "/w", Op: OpOverflow}, t0)
	if b := one.Take(nil); !b.Full || b.Reason != "overflow" || len(b.Paths) != 0 {
		t.Errorf("one root: %+v", b)
	}
	two := NewPending([]string{"/a", "/b"})
	two.Add(Event{Path: "/a/x", Op: OpChange}, t0)
	two.Add(Event{Path: "/b/y", Op: OpChange}, t0)
	two.Add(Event{Path: "/b", Op: OpOverflow}, t0)
	b := two.Take(nil)
	if b.Full || !slices.Equal(b.Rescan, []string{"/b"}) || !slices.Equal(b.Paths, []string{"/a/x"}) || b.Reason != "overflow" {
		t.Errorf("two roots: %+v", b)
	}
}

// TestPendingBounded: past maxPending paths, the roots holding them are
// walked whole instead, and the set stops growing.
func TestPendingBounded(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	p := NewPending([]string{"/a", "/b"})
	p.Add(Event{Path: "/b/one", Op: OpChange}, t0)
	for i := range maxPending + 10 {
		p.Add(Event{Path: fmt.Sprintf("/a/f%d", i), Op: OpChange}, t0)
	}
	if p.Len() > 3 {
		t.Errorf("Len %d after %d changes; want the roots walked instead", p.Len(), maxPending+11)
	}
	b := p.Take(nil)
	if !slices.Equal(b.Rescan, []string{"/a", "/b"}) || len(b.Paths) != 0 {
		t.Errorf("batch rescan %q, %d paths", b.Rescan, len(b.Paths))
	}
}
