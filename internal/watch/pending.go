package watch

import (
	"slices"
	"time"
)

// maxPending bounds the paths kept between two captures. Past it, the
// roots that hold them are walked whole instead: memory stays bounded when
// millions of files change at once (an archive unpacked), and a walk is
// then no dearer than looking at each.
const maxPending = 200_000

// dropBelow is the size up to which Pending drops the paths below a
// directory that becomes walked whole.
const dropBelow = 4096

// Batch is what one capture is asked to look at.
type Batch struct {
	// Full: walk every root (start, periodic scan, lost events whose
	// place is unknown).
	Full bool
	// Paths whose entries changed; Rescan, directories to walk whole.
	// Both sorted.
	Paths  []string
	Rescan []string
	// InFlux are files still being written when capture gave up waiting.
	InFlux []string
	// Oldest is when the oldest change in the batch was seen; zero when
	// the batch holds none (a scheduled full scan).
	Oldest time.Time
	// Reason says why the capture runs: "start", "changes", "full scan",
	// "overflow".
	Reason string
}

// entry is what is known of one changed path.
type entry struct {
	first     time.Time // first event since the last capture
	lastWrite time.Time
	writing   bool // written to and not closed since
}

// Pending coalesces events between captures: one entry per path, however
// many events it had, and nothing below a directory that will be walked
// whole. It is not safe for concurrent use.
type Pending struct {
	roots  []string
	paths  map[string]*entry
	rescan map[string]time.Time
	full   bool
	reason string
	oldest time.Time
}

// NewPending returns an empty set for the given roots.
func NewPending(roots []string) *Pending {
	return &Pending{roots: roots, paths: map[string]*entry{}, rescan: map[string]time.Time{}}
}

// Len is the number of changes waiting: paths, directories to walk whole,
// and one for a full walk.
func (p *Pending) Len() int {
	n := len(p.paths) + len(p.rescan)
	if p.full {
		n++
	}
	return n
}

// Oldest is when the oldest waiting change was seen (zero if none).
func (p *Pending) Oldest() time.Time { return p.oldest }

// Add records one event seen at now.
func (p *Pending) Add(ev Event, now time.Time) {
	if p.oldest.IsZero() || now.Before(p.oldest) {
		p.oldest = now
	}
	switch ev.Op {
	case OpOverflow:
		p.addRescan(ev.Path, now, "overflow")
		return
	case OpNewDir:
		p.addRescan(ev.Path, now, "")
		return
	}
	e := p.paths[ev.Path]
	if e == nil {
		if ev.Op == OpChange && p.covered(ev.Path) {
			return // a walk will see it; no write to wait for
		}
		if len(p.paths) >= maxPending {
			p.collapse(now)
			if p.covered(ev.Path) {
				return
			}
		}
		e = &entry{first: now}
		p.paths[ev.Path] = e
	}
	switch ev.Op {
	case OpWrite:
		e.lastWrite, e.writing = now, true
	case OpClose:
		e.lastWrite, e.writing = now, false
	}
}

// MarkFull asks for a walk of every root.
func (p *Pending) MarkFull(now time.Time, reason string) {
	if !p.full {
		p.full, p.reason = true, reason
	}
	if reason != "full scan" && (p.oldest.IsZero() || now.Before(p.oldest)) {
		p.oldest = now
	}
}

// addRescan asks for dir to be walked whole.
func (p *Pending) addRescan(dir string, now time.Time, reason string) {
	if p.covered(dir) {
		return
	}
	if dir == "" || dir == "/" {
		p.MarkFull(now, reason)
		return
	}
	for _, r := range p.roots {
		if dir == r && reason == "overflow" && len(p.roots) == 1 {
			p.MarkFull(now, reason)
			return
		}
	}
	if _, ok := p.rescan[dir]; !ok {
		p.rescan[dir] = now
		// Entries below dir are covered now (Take leaves them out); they
		// are dropped while that is cheap, so that Len counts what will
		// be looked at. Files being written stay, to be waited for.
		if len(p.paths) <= dropBelow {
			for path, e := range p.paths {
				if !e.writing && under(path, dir) {
					delete(p.paths, path)
				}
			}
		}
	}
	if reason != "" && p.reason == "" {
		p.reason = reason
	}
}

// covered reports whether a directory walked whole holds path (or is it).
func (p *Pending) covered(path string) bool {
	if p.full {
		return true
	}
	if len(p.rescan) == 0 {
		return false
	}
	for d := path; ; {
		if _, ok := p.rescan[d]; ok {
			return true
		}
		i := lastSlash(d)
		if i <= 0 {
			_, ok := p.rescan["/"]
			return ok
		}
		d = d[:i]
	}
}

func lastSlash(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '/' {
			return i
		}
	}
	return -1
}

// collapse replaces the pending paths by walks of the roots that hold
// them.
func (p *Pending) collapse(now time.Time) {
	for path := range p.paths {
		for _, r := range p.roots {
			if under(path, r) {
				p.addRescan(r, now, "")
				break
			}
		}
	}
	for path, e := range p.paths {
		if !e.writing && p.covered(path) {
			delete(p.paths, path)
		}
	}
}

// Unsettled returns the files written within quiet before now and not
// closed since: capture waits for them.
func (p *Pending) Unsettled(now time.Time, quiet time.Duration) []string {
	var out []string
	for path, e := range p.paths {
		if e.writing && now.Sub(e.lastWrite) < quiet {
			out = append(out, path)
		}
	}
	slices.Sort(out)
	return out
}

// QuietAt is when every write seen so far will be quiet (zero if none
// is being written).
func (p *Pending) QuietAt(quiet time.Duration) time.Time {
	var t time.Time
	for _, e := range p.paths {
		if e.writing && e.lastWrite.Add(quiet).After(t) {
			t = e.lastWrite.Add(quiet)
		}
	}
	return t
}

// Take returns everything pending as a batch and empties the set.
// inFlux names the files capture stopped waiting for.
func (p *Pending) Take(inFlux []string) Batch {
	b := Batch{Full: p.full, Oldest: p.oldest, InFlux: inFlux, Reason: p.reason}
	if b.Reason == "" {
		b.Reason = "changes"
	}
	if !b.Full {
		for path := range p.paths {
			if !p.covered(path) {
				b.Paths = append(b.Paths, path)
			}
		}
		for d := range p.rescan {
			b.Rescan = append(b.Rescan, d)
		}
		slices.Sort(b.Paths)
		slices.Sort(b.Rescan)
	}
	p.paths = map[string]*entry{}
	p.rescan = map[string]time.Time{}
	p.full, p.reason, p.oldest = false, "", time.Time{}
	return b
}

// Restore puts a batch that could not be captured back, so that its
// changes are captured with the next one.
func (p *Pending) Restore(b Batch) {
	if b.Full {
		p.MarkFull(b.Oldest, b.Reason)
	}
	for _, d := range b.Rescan {
		p.addRescan(d, b.Oldest, "")
	}
	for _, path := range b.Paths {
		if _, ok := p.paths[path]; !ok && !p.covered(path) {
			p.paths[path] = &entry{first: b.Oldest}
		}
	}
	if !b.Oldest.IsZero() && (p.oldest.IsZero() || b.Oldest.Before(p.oldest)) {
		p.oldest = b.Oldest
	}
}
