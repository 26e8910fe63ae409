package test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/backend"
)

// testErrorsNameFile checks that every error about one file names the
// operation and the file once, as a backend.OpError: the layers above rely
// on it and do not name the file again.
func testErrorsNameFile(t *testing.T, be backend.Backend) {
	rng := newRand(t)
	ctx := context.Background()
	stored := backend.Handle{Type: backend.IndexFile, Name: randomName(rng)}
	data := randomData(rng, 3000)
	save(t, be, stored, data)
	canceled, cancel := context.WithCancel(ctx)
	cancel()

	type failure struct {
		what string
		op   string
		h    backend.Handle
		err  error
	}
	var got []failure
	add := func(what, op string, h backend.Handle, err error) {
		got = append(got, failure{what, op, h, err})
	}
	for _, typ := range []backend.FileType{backend.ConfigFile, backend.KeyFile, backend.SnapshotFile, backend.PackFile, backend.LockFile} {
		h := backend.Handle{Type: typ, Name: randomName(rng)}
		if typ == backend.ConfigFile {
			h.Name = ""
		}
		_, err := load(be, h, 0, 0)
		add("Load of a missing file", "load", h, err)
		_, err = be.Stat(ctx, h)
		add("Stat of a missing file", "stat", h, err)
		add("Remove of a missing file", "remove", h, be.Remove(ctx, h))
	}
	other := bytes.Clone(data)
	other[0] ^= 0x80
	add("Save of other content", "save", stored, be.Save(ctx, stored, backend.NewByteReader(other)))
	_, err := load(be, stored, 10, int64(len(data)))
	add("Load past the end", "load", stored, err)
	_, err = load(be, stored, 0, -1)
	add("Load at a negative offset", "load", stored, err)
	fresh := backend.Handle{Type: backend.SnapshotFile, Name: randomName(rng)}
	add("Save from a failing reader", "save", fresh,
		be.Save(ctx, fresh, &badReader{otherReader: otherReader{data: data}, length: int64(len(data)), failAt: 100, err: errTest}))
	add("Save with a cancelled context", "save", fresh, be.Save(canceled, fresh, backend.NewByteReader(data)))
	add("Load with a cancelled context", "load", stored,
		be.Load(canceled, stored, 0, 0, func(rd io.Reader) error { _, err := io.ReadAll(rd); return err }))
	_, err = be.Stat(canceled, stored)
	add("Stat with a cancelled context", "stat", stored, err)

	for _, f := range got {
		if f.err == nil {
			t.Errorf("%s (%v): no error", f.what, f.h)
			continue
		}
		var oe *backend.OpError
		if !errors.As(f.err, &oe) || oe.Op != f.op || oe.File != f.h.String() {
			t.Errorf("%s: error %q is not an OpError for %s %v", f.what, f.err, f.op, f.h)
		}
		if n := strings.Count(f.err.Error(), f.h.String()); n != 1 {
			t.Errorf("%s: error %q names %v %d times, want once", f.what, f.err, f.h, n)
		}
		if wrapped := backend.Wrap(f.op, f.h.String(), f.err); wrapped.Error() != f.err.Error() {
			t.Errorf("%s: Wrap named the file again: %q", f.what, wrapped)
		}
	}
}
