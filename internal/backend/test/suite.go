// Package test is the conformance suite for storage backends. Every
// provider and every wrapper runs RunTests from its own tests, so that all
// of them keep the contract written in package backend; RunBenchmarks
// measures the same operations on each of them.
package test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/rewind-backup/rewind/internal/backend"
)

// RunTests checks every promise of the backend contract. newBackend must
// return a new, empty backend for each call; RunTests closes it when the
// test using it ends.
func RunTests(t *testing.T, newBackend func(t *testing.T) backend.Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, be backend.Backend)
	}{
		{"Location", testLocation},
		{"SaveLoad", testSaveLoad},
		{"SaveLoadOtherReader", testSaveLoadOtherReader},
		{"FileTypesSeparate", testFileTypesSeparate},
		{"LoadRanges", testLoadRanges},
		{"LoadBadRanges", testLoadBadRanges},
		{"LoadCallbackError", testLoadCallbackError},
		{"NotExist", testNotExist},
		{"SaveExisting", testSaveExisting},
		{"SaveFailingReader", testSaveFailingReader},
		{"List", testList},
		{"ListCallbackError", testListCallbackError},
		{"ListAndRemove", testListAndRemove},
		{"Remove", testRemove},
		{"InvalidHandles", testInvalidHandles},
		{"ErrorsNameFile", testErrorsNameFile},
		{"ContextCanceled", testContextCanceled},
		{"ListContextCanceled", testListContextCanceled},
		{"Concurrent", testConcurrent},
		{"ConcurrentConflict", testConcurrentConflict},
		{"ConcurrentLoadRemove", testConcurrentLoadRemove},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			be := newBackend(t)
			t.Cleanup(func() {
				if err := be.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, be)
		})
	}
}

// newRand returns a random source seeded by the test's name, so that a
// failure repeats.
func newRand(t testing.TB) *rand.Rand {
	h := fnv.New64a()
	_, _ = h.Write([]byte(t.Name()))
	return rand.New(rand.NewPCG(h.Sum64(), 0x5eed))
}

// randomName returns 64 random lowercase hex digits, like a file ID.
func randomName(rng *rand.Rand) string {
	var b [32]byte
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return hex.EncodeToString(b[:])
}

// randomData returns n random bytes.
func randomData(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// save stores data under h and fails the test on error.
func save(t testing.TB, be backend.Backend, h backend.Handle, data []byte) {
	t.Helper()
	if err := be.Save(context.Background(), h, backend.NewByteReader(data)); err != nil {
		t.Fatalf("Save(%v): %v", h, err)
	}
}

// load reads length bytes of h from offset.
func load(be backend.Backend, h backend.Handle, length int, offset int64) ([]byte, error) {
	var data []byte
	err := be.Load(context.Background(), h, length, offset, func(rd io.Reader) error {
		var err error
		data, err = io.ReadAll(rd)
		return err
	})
	return data, err
}

// checkLoad fails the test unless h holds exactly want.
func checkLoad(t testing.TB, be backend.Backend, h backend.Handle, want []byte) {
	t.Helper()
	got, err := load(be, h, 0, 0)
	if err != nil {
		t.Fatalf("Load(%v): %v", h, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Load(%v): got %d bytes, want %d bytes (content differs: %v)", h, len(got), len(want), len(got) == len(want))
	}
}

// checkNotExist fails the test unless err means a missing file.
func checkNotExist(t testing.TB, what string, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error for a missing file", what)
	}
	if !backend.IsNotExist(err) {
		t.Fatalf("%s: error %q does not match ErrNotExist", what, err)
	}
	if !backend.IsPermanent(err) {
		t.Fatalf("%s: not-found error %q is not permanent", what, err)
	}
}

// listAll returns the name and size of every file of type typ.
func listAll(t testing.TB, be backend.Backend, typ backend.FileType) map[string]int64 {
	t.Helper()
	files := make(map[string]int64)
	err := be.List(context.Background(), typ, func(fi backend.FileInfo) error {
		if _, dup := files[fi.Name]; dup {
			t.Errorf("List(%v): %q listed twice", typ, fi.Name)
		}
		files[fi.Name] = fi.Size
		return nil
	})
	if err != nil {
		t.Fatalf("List(%v): %v", typ, err)
	}
	return files
}

// checkList fails the test unless the files of type typ are exactly want.
func checkList(t testing.TB, be backend.Backend, typ backend.FileType, want map[string]int64) {
	t.Helper()
	got := listAll(t, be, typ)
	for name, size := range want {
		gotSize, ok := got[name]
		switch {
		case !ok:
			t.Errorf("List(%v): %q missing", typ, name)
		case gotSize != size:
			t.Errorf("List(%v): %q has size %d, want %d", typ, name, gotSize, size)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("List(%v): unexpected %q", typ, name)
		}
	}
}

// otherReader is a RewindReader that is not a *backend.ByteReader, so that
// providers take their general path.
type otherReader struct {
	data []byte
	pos  int
}

func (r *otherReader) Read(p []byte) (int, error) {
	if r.pos >= len(r.data) {
		return 0, io.EOF
	}
	// Short reads on purpose: at most 1000 bytes at a time.
	n := copy(p[:min(len(p), 1000)], r.data[r.pos:])
	r.pos += n
	return n, nil
}

func (r *otherReader) Length() int64 { return int64(len(r.data)) }
func (r *otherReader) Rewind() error { r.pos = 0; return nil }

// badReader is a RewindReader that lies about its length, or fails with
// err (if not nil) once failAt bytes were read.
type badReader struct {
	otherReader
	length int64
	failAt int
	err    error
}

func (r *badReader) Read(p []byte) (int, error) {
	if r.err != nil {
		if r.pos >= r.failAt {
			return 0, r.err
		}
		p = p[:min(len(p), r.failAt-r.pos)]
	}
	return r.otherReader.Read(p)
}

func (r *badReader) Length() int64 { return r.length }

// errTest is returned by test callbacks.
var errTest = errors.New("error from the test")
