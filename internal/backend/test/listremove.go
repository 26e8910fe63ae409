package test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/backend"
)

// testList saves files of every type and checks that List yields each
// exactly once with its size, and nothing else.
func testList(t *testing.T, be backend.Backend) {
	rng := newRand(t)
	for _, typ := range backend.AllTypes {
		checkList(t, be, typ, nil)
	}

	want := make(map[backend.FileType]map[string]int64)
	cfg := randomData(rng, 77)
	save(t, be, backend.Handle{Type: backend.ConfigFile}, cfg)
	want[backend.ConfigFile] = map[string]int64{"": int64(len(cfg))}

	for _, typ := range backend.AllTypes[1:] {
		want[typ] = make(map[string]int64)
		n := 5 + rng.IntN(20)
		if typ == backend.PackFile {
			n = 300 // enough to spread over many data/<xx> folders
		}
		for range n {
			h := backend.Handle{Type: typ, Name: randomName(rng)}
			data := randomData(rng, rng.IntN(3000))
			save(t, be, h, data)
			want[typ][h.Name] = int64(len(data))
		}
	}
	// Names of other lengths are valid too.
	short := backend.Handle{Type: backend.PackFile, Name: "ab"}
	save(t, be, short, []byte("short"))
	want[backend.PackFile][short.Name] = 5

	for _, typ := range backend.AllTypes {
		checkList(t, be, typ, want[typ])
	}
}

// testListCallbackError checks that an error from fn stops List and is
// returned.
func testListCallbackError(t *testing.T, be backend.Backend) {
	rng := newRand(t)
	for range 10 {
		save(t, be, backend.Handle{Type: backend.LockFile, Name: randomName(rng)}, []byte("lock"))
	}
	calls := 0
	err := be.List(context.Background(), backend.LockFile, func(backend.FileInfo) error {
		calls++
		return errTest
	})
	if !errors.Is(err, errTest) {
		t.Fatalf("List returned %v, want the callback's error", err)
	}
	if calls != 1 {
		t.Fatalf("List called fn %d times after it failed, want 1", calls)
	}
}

// testListAndRemove removes each file from within List's callback.
func testListAndRemove(t *testing.T, be backend.Backend) {
	rng := newRand(t)
	want := make(map[string]int64)
	for range 50 {
		h := backend.Handle{Type: backend.PackFile, Name: randomName(rng)}
		save(t, be, h, []byte("x"))
		want[h.Name] = 1
	}
	ctx := context.Background()
	err := be.List(ctx, backend.PackFile, func(fi backend.FileInfo) error {
		delete(want, fi.Name)
		return be.Remove(ctx, backend.Handle{Type: backend.PackFile, Name: fi.Name})
	})
	if err != nil {
		t.Fatalf("List with Remove in the callback: %v", err)
	}
	if len(want) > 0 {
		t.Errorf("List missed files: %d", len(want))
	}
	checkList(t, be, backend.PackFile, nil)
}

// testRemove checks that a removed file is gone for every method, and that
// its name can be saved again with new content.
func testRemove(t *testing.T, be backend.Backend) {
	rng := newRand(t)
	ctx := context.Background()
	for _, typ := range backend.AllTypes {
		h := backend.Handle{Type: typ, Name: randomName(rng)}
		if typ == backend.ConfigFile {
			h.Name = ""
		}
		data := randomData(rng, 10_000)
		save(t, be, h, data)
		checkLoad(t, be, h, data) // so that a provider may cache it

		if err := be.Remove(ctx, h); err != nil {
			t.Fatalf("Remove(%v): %v", h, err)
		}
		_, err := load(be, h, 0, 0)
		checkNotExist(t, fmt.Sprintf("Load(%v) after Remove", h), err)
		_, err = load(be, h, 100, 10)
		checkNotExist(t, fmt.Sprintf("Load(%v) of a range after Remove", h), err)
		_, err = be.Stat(ctx, h)
		checkNotExist(t, fmt.Sprintf("Stat(%v) after Remove", h), err)
		err = be.Remove(ctx, h)
		checkNotExist(t, fmt.Sprintf("Remove(%v) after Remove", h), err)
		checkList(t, be, typ, nil)

		other := randomData(rng, 7000)
		save(t, be, h, other)
		checkLoad(t, be, h, other)
		got, err := load(be, h, 100, 6000)
		if err != nil || string(got) != string(other[6000:6100]) {
			t.Fatalf("Load(%v) of a range after saving again: %v", h, err)
		}
	}
}

// testInvalidHandles checks Handle.Valid and that every method rejects an
// invalid handle, permanently and without touching the store.
func testInvalidHandles(t *testing.T, be backend.Backend) {
	ctx := context.Background()
	good := []backend.Handle{
		{Type: backend.ConfigFile},
		{Type: backend.PackFile, Name: "ab"},
		{Type: backend.KeyFile, Name: strings.Repeat("0123456789abcdef", 4)},
		{Type: backend.LockFile, Name: strings.Repeat("f", 128)},
	}
	for _, h := range good {
		if err := h.Valid(); err != nil {
			t.Errorf("%#v.Valid() = %v, want nil", h, err)
		}
	}

	bad := []backend.Handle{
		{Type: backend.PackFile, Name: ""},
		{Type: backend.PackFile, Name: "a"},
		{Type: backend.PackFile, Name: "../x"},
		{Type: backend.PackFile, Name: "../../config"},
		{Type: backend.IndexFile, Name: "ab/cd"},
		{Type: backend.IndexFile, Name: "ABCD"},
		{Type: backend.IndexFile, Name: "abcg"},
		{Type: backend.SnapshotFile, Name: ".tmp-abcd"},
		{Type: backend.SnapshotFile, Name: "ab\x00cd"},
		{Type: backend.SnapshotFile, Name: " abcd"},
		{Type: backend.LockFile, Name: strings.Repeat("f", 129)},
		{Type: backend.ConfigFile, Name: "ab"},
		{Type: 0, Name: "ab"},
		{Type: backend.RunbookFile + 1, Name: "ab"},
	}
	for _, h := range bad {
		if err := h.Valid(); err == nil {
			t.Errorf("%#v.Valid() = nil, want an error", h)
		}
		errs := map[string]error{
			"Save":   be.Save(ctx, h, backend.NewByteReader([]byte("data"))),
			"Load":   be.Load(ctx, h, 0, 0, func(io.Reader) error { return nil }),
			"Remove": be.Remove(ctx, h),
		}
		_, errs["Stat"] = be.Stat(ctx, h)
		for op, err := range errs {
			if err == nil || !backend.IsPermanent(err) {
				t.Errorf("%s(%#v): got %v, want a permanent error", op, h, err)
			}
		}
	}
	for _, typ := range backend.AllTypes {
		checkList(t, be, typ, nil)
	}

	for _, typ := range []backend.FileType{0, backend.RunbookFile + 1} {
		err := be.List(ctx, typ, func(backend.FileInfo) error { return nil })
		if err == nil {
			t.Errorf("List(%v): no error", typ)
		}
	}
}
