// Package fault wraps a Backend to make it misbehave on purpose, for tests
// of the code above it: it can fail the Nth call of an operation (before or
// after the call reaches the wrapped backend), truncate what a Load yields,
// split its reads into small pieces, flip a bit in loaded data, and delay
// calls. With no fault configured it passes every call through unchanged,
// and passes the backend conformance suite.
package fault

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
)

// ErrInjected is the error of a failure configured without an error of its
// own. It is not Permanent, so a retry wrapper retries it.
var ErrInjected = errors.New("injected fault")

// Op names a Backend method that faults can target.
type Op uint8

// The operations.
const (
	Save Op = iota
	Load
	Stat
	Remove
	List
	numOps
)

func (o Op) String() string {
	switch o {
	case Save:
		return "save"
	case Load:
		return "load"
	case Stat:
		return "stat"
	case Remove:
		return "remove"
	case List:
		return "list"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Every, as the call number n of a fault, makes it apply to every call
// until Reset.
const Every = 0

// kind is what a fault does.
type kind uint8

const (
	failBefore kind = iota // return err without calling the wrapped backend
	failAfter              // call the wrapped backend, then return err
	truncate               // Load's reader ends after keep bytes
	flipBit                // Load's reader has bit flipped
)

// fault is one configured misbehaviour.
type fault struct {
	op   Op
	at   int // call number it applies to, counted since New; Every: all
	kind kind
	err  error
	keep int64
	bit  int64
}

// Backend wraps another Backend and injects the faults configured on it.
// It is safe for concurrent use, including configuring faults while calls
// run.
type Backend struct {
	inner backend.Backend

	mu        sync.Mutex
	calls     [numOps]int           // calls made per op; mu
	faults    []fault               // mu
	delays    [numOps]time.Duration // mu
	splitSize int                   // 0: reads are not split; mu
}

var _ backend.Backend = (*Backend)(nil)

// New returns be wrapped, with no faults configured.
func New(be backend.Backend) *Backend { return &Backend{inner: be} }

// at returns the absolute number of the nth call of op from now, or Every.
// b.mu must be held.
func (b *Backend) at(op Op, n int) int {
	if op >= numOps {
		return -1 // no call has this number: the fault never applies
	}
	if n <= Every {
		return Every
	}
	return b.calls[op] + n
}

func (b *Backend) add(f fault, n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f.at = b.at(f.op, n)
	b.faults = append(b.faults, f)
}

// FailNth makes the nth call of op from now (1: the next one; Every: all)
// return err without reaching the wrapped backend. A nil err means
// ErrInjected.
func (b *Backend) FailNth(op Op, n int, err error) {
	b.add(fault{op: op, kind: failBefore, err: orInjected(err)}, n)
}

// FailNthAfter makes the nth call of op from now reach the wrapped backend
// and then return err, as when a request succeeds but its answer is lost.
// For Load, fn runs before the error is returned.
func (b *Backend) FailNthAfter(op Op, n int, err error) {
	b.add(fault{op: op, kind: failAfter, err: orInjected(err)}, n)
}

// ShortReadNth makes the reader of the nth Load from now end (io.EOF) after
// keep bytes, as a connection that drops mid-transfer without an error.
func (b *Backend) ShortReadNth(n int, keep int64) {
	b.add(fault{op: Load, kind: truncate, keep: keep}, n)
}

// FlipBitNth flips bit number bit (counted from the first bit of the range
// loaded, least significant bit of each byte first) in what the nth Load
// from now yields. A bit past the range changes nothing. The stored file
// is not changed.
func (b *Backend) FlipBitNth(n int, bit int64) {
	b.add(fault{op: Load, kind: flipBit, bit: bit}, n)
}

// SplitReads makes every Load reader return at most size bytes per Read, as
// network readers do; 0 turns it off. Unlike ShortReadNth no data is lost.
func (b *Backend) SplitReads(size int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.splitSize = size
}

// Delay makes every call of op wait d before it starts, or until its
// context is done; 0 turns it off.
func (b *Backend) Delay(op Op, d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if op < numOps {
		b.delays[op] = d
	}
}

// Reset removes every configured fault, split and delay. Call counts go on.
func (b *Backend) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.faults = nil
	b.delays = [numOps]time.Duration{}
	b.splitSize = 0
}

// Calls returns how many calls of op were made since New.
func (b *Backend) Calls(op Op) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls[op]
}

func orInjected(err error) error {
	if err == nil {
		return ErrInjected
	}
	return err
}

// call is what happens to one call: the faults that apply to it.
type call struct {
	faults []fault
	delay  time.Duration
	split  int
}

// start counts a call of op and returns what applies to it. One-shot
// faults that fired are removed.
func (b *Backend) start(op Op) call {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls[op]++
	n := b.calls[op]
	c := call{delay: b.delays[op], split: b.splitSize}
	kept := b.faults[:0]
	for _, f := range b.faults {
		if f.op == op && (f.at == Every || f.at == n) {
			c.faults = append(c.faults, f)
		}
		if f.at == Every || f.at > n || f.op != op {
			kept = append(kept, f)
		}
	}
	clear(b.faults[len(kept):])
	b.faults = kept
	return c
}

// before waits out the delay and returns the error of a failBefore fault.
// Like a provider's, the error names the operation and the file.
func (c call) before(ctx context.Context, op Op, file string) error {
	if c.delay > 0 {
		t := time.NewTimer(c.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return backend.Wrap(op.String(), file, ctx.Err())
		}
	}
	for _, f := range c.faults {
		if f.kind == failBefore {
			return backend.Wrap(op.String(), file, f.err)
		}
	}
	return nil
}

// after returns err, or the error of a failAfter fault if err is nil.
func (c call) after(op Op, file string, err error) error {
	if err != nil {
		return err
	}
	for _, f := range c.faults {
		if f.kind == failAfter {
			return backend.Wrap(op.String(), file, f.err)
		}
	}
	return nil
}

// Location returns the wrapped backend's location, marked.
func (b *Backend) Location() string { return "fault:" + b.inner.Location() }

// Save passes the call on unless a fault says otherwise.
func (b *Backend) Save(ctx context.Context, h backend.Handle, rd backend.RewindReader) error {
	c := b.start(Save)
	if err := c.before(ctx, Save, h.String()); err != nil {
		return err
	}
	return c.after(Save, h.String(), b.inner.Save(ctx, h, rd))
}

// Load passes the call on, wrapping the reader fn gets as the faults of
// this call say.
func (b *Backend) Load(ctx context.Context, h backend.Handle, length int, offset int64, fn func(rd io.Reader) error) error {
	c := b.start(Load)
	if err := c.before(ctx, Load, h.String()); err != nil {
		return err
	}
	err := b.inner.Load(ctx, h, length, offset, func(rd io.Reader) error {
		for _, f := range c.faults {
			switch f.kind {
			case truncate:
				rd = io.LimitReader(rd, f.keep)
			case flipBit:
				rd = &flipReader{rd: rd, bit: f.bit}
			}
		}
		if c.split > 0 {
			rd = &splitReader{rd: rd, size: c.split}
		}
		return fn(rd)
	})
	return c.after(Load, h.String(), err)
}

// Stat passes the call on unless a fault says otherwise.
func (b *Backend) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	c := b.start(Stat)
	if err := c.before(ctx, Stat, h.String()); err != nil {
		return backend.FileInfo{}, err
	}
	fi, err := b.inner.Stat(ctx, h)
	if err := c.after(Stat, h.String(), err); err != nil {
		return backend.FileInfo{}, err
	}
	return fi, nil
}

// Remove passes the call on unless a fault says otherwise.
func (b *Backend) Remove(ctx context.Context, h backend.Handle) error {
	c := b.start(Remove)
	if err := c.before(ctx, Remove, h.String()); err != nil {
		return err
	}
	return c.after(Remove, h.String(), b.inner.Remove(ctx, h))
}

// List passes the call on unless a fault says otherwise.
func (b *Backend) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	c := b.start(List)
	if err := c.before(ctx, List, t.String()); err != nil {
		return err
	}
	return c.after(List, t.String(), b.inner.List(ctx, t, fn))
}

// Close closes the wrapped backend.
func (b *Backend) Close() error { return b.inner.Close() }
