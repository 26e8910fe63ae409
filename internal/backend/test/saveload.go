package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"testing"

	"github.com/rewind-backup/rewind/internal/backend"
)

func testLocation(t *testing.T, be backend.Backend) {
	if be.Location() == "" {
		t.Fatal("Location is empty")
	}
}

// testSaveLoad saves files of every type and several sizes and reads them
// back at once (read-after-write).
func testSaveLoad(t *testing.T, be backend.Backend) {
	rng := newRand(t)
	ctx := context.Background()

	cfg := backend.Handle{Type: backend.ConfigFile}
	cfgData := randomData(rng, 321)
	save(t, be, cfg, cfgData)
	checkLoad(t, be, cfg, cfgData)

	sizes := []int{0, 1, 2, 4095, 4096, 4097, 1<<20 + 17}
	for _, typ := range backend.AllTypes[1:] {
		for _, size := range sizes {
			h := backend.Handle{Type: typ, Name: randomName(rng)}
			data := randomData(rng, size)
			save(t, be, h, data)
			checkLoad(t, be, h, data)

			fi, err := be.Stat(ctx, h)
			if err != nil {
				t.Fatalf("Stat(%v): %v", h, err)
			}
			if fi.Size != int64(size) || fi.Name != h.Name {
				t.Fatalf("Stat(%v) = %+v, want size %d", h, fi, size)
			}
		}
	}
}

// testSaveLoadOtherReader saves through a reader that is not a ByteReader
// and that gives short reads.
func testSaveLoadOtherReader(t *testing.T, be backend.Backend) {
	rng := newRand(t)
	for _, size := range []int{0, 999, 1000, 1001, 300_000} {
		h := backend.Handle{Type: backend.PackFile, Name: randomName(rng)}
		data := randomData(rng, size)
		if err := be.Save(context.Background(), h, &otherReader{data: data}); err != nil {
			t.Fatalf("Save(%v) of %d bytes: %v", h, size, err)
		}
		checkLoad(t, be, h, data)
	}
}

// testFileTypesSeparate checks that one name under two types names two
// files.
func testFileTypesSeparate(t *testing.T, be backend.Backend) {
	rng := newRand(t)
	name := randomName(rng)
	idx := backend.Handle{Type: backend.IndexFile, Name: name}
	snap := backend.Handle{Type: backend.SnapshotFile, Name: name}
	idxData, snapData := randomData(rng, 100), randomData(rng, 200)
	save(t, be, idx, idxData)
	save(t, be, snap, snapData)
	checkLoad(t, be, idx, idxData)
	checkLoad(t, be, snap, snapData)

	if err := be.Remove(context.Background(), idx); err != nil {
		t.Fatalf("Remove(%v): %v", idx, err)
	}
	checkLoad(t, be, snap, snapData)
}

func testLoadRanges(t *testing.T, be backend.Backend) {
	rng := newRand(t)
	const size = 100_000
	data := randomData(rng, size)
	h := backend.Handle{Type: backend.PackFile, Name: randomName(rng)}
	save(t, be, h, data)

	ranges := []struct {
		offset int64
		length int
	}{
		{0, 0}, {0, 1}, {0, size}, {1, size - 1}, {10, 0}, {size - 1, 0},
		{size, 0}, {size - 1, 1}, {1000, 4096}, {size - 4096, 4096}, {12345, 1},
	}
	for _, r := range ranges {
		got, err := load(be, h, r.length, r.offset)
		if err != nil {
			t.Errorf("Load(length %d, offset %d): %v", r.length, r.offset, err)
			continue
		}
		want := data[r.offset:]
		if r.length > 0 {
			want = want[:r.length]
		}
		if !bytes.Equal(got, want) {
			t.Errorf("Load(length %d, offset %d): got %d bytes, want %d (or content differs)",
				r.length, r.offset, len(got), len(want))
		}
	}

	// Random ranges, read with io.ReadFull into an exact buffer.
	for range 200 {
		offset := rng.Int64N(size)
		length := 1 + rng.IntN(size-int(offset))
		buf := make([]byte, length)
		err := be.Load(context.Background(), h, length, offset, func(rd io.Reader) error {
			_, err := io.ReadFull(rd, buf)
			return err
		})
		if err != nil {
			t.Fatalf("Load(length %d, offset %d): %v", length, offset, err)
		}
		if !bytes.Equal(buf, data[offset:offset+int64(length)]) {
			t.Fatalf("Load(length %d, offset %d): wrong content", length, offset)
		}
	}
}

// testLoadBadRanges checks that ranges past the end fail with
// io.ErrUnexpectedEOF and negative ones fail, both permanently and without
// calling fn.
func testLoadBadRanges(t *testing.T, be backend.Backend) {
	rng := newRand(t)
	const size = 10_000
	h := backend.Handle{Type: backend.PackFile, Name: randomName(rng)}
	save(t, be, h, randomData(rng, size))

	pastEnd := []struct {
		offset int64
		length int
	}{
		{0, size + 1}, {1, size}, {size, 1}, {size + 1, 0}, {size - 10, 11}, {1 << 40, 0}, {1 << 40, 5},
		{1, math.MaxInt}, {size, math.MaxInt}, {math.MaxInt64, 1}, {math.MaxInt64, math.MaxInt},
	}
	for _, r := range pastEnd {
		called := false
		err := be.Load(context.Background(), h, r.length, r.offset, func(io.Reader) error {
			called = true
			return nil
		})
		what := fmt.Sprintf("Load(length %d, offset %d) of %d bytes", r.length, r.offset, size)
		switch {
		case err == nil:
			t.Errorf("%s: no error", what)
		case !errors.Is(err, io.ErrUnexpectedEOF):
			t.Errorf("%s: error %q does not match io.ErrUnexpectedEOF", what, err)
		case !backend.IsPermanent(err):
			t.Errorf("%s: error %q is not permanent", what, err)
		}
		if called {
			t.Errorf("%s: fn called", what)
		}
	}

	negative := []struct {
		offset int64
		length int
	}{{-1, 0}, {0, -1}, {-5, 10}}
	for _, r := range negative {
		_, err := load(be, h, r.length, r.offset)
		if err == nil || !backend.IsPermanent(err) {
			t.Errorf("Load(length %d, offset %d): got %v, want a permanent error", r.length, r.offset, err)
		}
	}
}

// testLoadCallbackError checks that Load returns fn's error.
func testLoadCallbackError(t *testing.T, be backend.Backend) {
	rng := newRand(t)
	h := backend.Handle{Type: backend.IndexFile, Name: randomName(rng)}
	save(t, be, h, randomData(rng, 5000))

	err := be.Load(context.Background(), h, 0, 0, func(rd io.Reader) error {
		if _, err := io.ReadFull(rd, make([]byte, 10)); err != nil {
			return err
		}
		return errTest
	})
	if !errors.Is(err, errTest) {
		t.Fatalf("Load returned %v, want the callback's error", err)
	}

	perm := backend.Permanent(errTest)
	err = be.Load(context.Background(), h, 100, 10, func(io.Reader) error { return perm })
	if !errors.Is(err, errTest) || !backend.IsPermanent(err) {
		t.Fatalf("Load returned %v, want the callback's permanent error", err)
	}

	// A callback that reads only part of the range is not an error.
	err = be.Load(context.Background(), h, 0, 0, func(rd io.Reader) error {
		_, err := rd.Read(make([]byte, 1))
		return err
	})
	if err != nil {
		t.Fatalf("Load with a partial read: %v", err)
	}
}

// testNotExist checks the errors for a missing file, of every type.
func testNotExist(t *testing.T, be backend.Backend) {
	rng := newRand(t)
	ctx := context.Background()
	for _, typ := range backend.AllTypes {
		h := backend.Handle{Type: typ, Name: randomName(rng)}
		if typ == backend.ConfigFile {
			h.Name = ""
		}
		called := false
		err := be.Load(ctx, h, 0, 0, func(io.Reader) error { called = true; return nil })
		checkNotExist(t, fmt.Sprintf("Load(%v)", h), err)
		if called {
			t.Errorf("Load(%v) of a missing file called fn", h)
		}
		err = be.Load(ctx, h, 10, 5, func(io.Reader) error { return nil })
		checkNotExist(t, fmt.Sprintf("Load(%v) of a range", h), err)
		_, err = be.Stat(ctx, h)
		checkNotExist(t, fmt.Sprintf("Stat(%v)", h), err)
		err = be.Remove(ctx, h)
		checkNotExist(t, fmt.Sprintf("Remove(%v)", h), err)
	}
}

// testSaveExisting checks that Save of an existing name succeeds with the
// same content and fails with ErrExists otherwise, keeping the old file.
func testSaveExisting(t *testing.T, be backend.Backend) {
	rng := newRand(t)
	ctx := context.Background()
	for _, size := range []int{1, 5000, 200_000} {
		h := backend.Handle{Type: backend.SnapshotFile, Name: randomName(rng)}
		data := randomData(rng, size)
		save(t, be, h, data)

		if err := be.Save(ctx, h, backend.NewByteReader(bytes.Clone(data))); err != nil {
			t.Fatalf("Save(%v) again with the same content: %v", h, err)
		}
		if err := be.Save(ctx, h, &otherReader{data: data}); err != nil {
			t.Fatalf("Save(%v) again with the same content, other reader: %v", h, err)
		}

		changed := bytes.Clone(data)
		changed[len(changed)-1] ^= 1
		others := map[string][]byte{
			"one bit changed": changed,
			"longer":          append(bytes.Clone(data), 0),
			"shorter":         data[:len(data)-1],
		}
		for what, other := range others {
			err := be.Save(ctx, h, backend.NewByteReader(other))
			if !errors.Is(err, backend.ErrExists) {
				t.Errorf("Save(%v) with content %s: got %v, want ErrExists", h, what, err)
			}
			if !backend.IsPermanent(err) {
				t.Errorf("Save(%v) with content %s: error %v is not permanent", h, what, err)
			}
			err = be.Save(ctx, h, &otherReader{data: other})
			if !errors.Is(err, backend.ErrExists) {
				t.Errorf("Save(%v) with content %s, other reader: got %v, want ErrExists", h, what, err)
			}
		}
		checkLoad(t, be, h, data)
	}
}

// testSaveFailingReader checks that a Save whose reader fails or lies about
// its length stores nothing, not even a prefix.
func testSaveFailingReader(t *testing.T, be backend.Backend) {
	rng := newRand(t)
	data := randomData(rng, 50_000)
	cases := map[string]*badReader{
		"fails at start":    {otherReader: otherReader{data: data}, length: int64(len(data)), failAt: 0, err: errTest},
		"fails midway":      {otherReader: otherReader{data: data}, length: int64(len(data)), failAt: 20_000, err: errTest},
		"fails at the end":  {otherReader: otherReader{data: data}, length: int64(len(data)), failAt: len(data), err: errTest},
		"shorter than said": {otherReader: otherReader{data: data}, length: int64(len(data)) + 1},
		"longer than said":  {otherReader: otherReader{data: data}, length: int64(len(data)) - 1},
		"empty, said 1":     {otherReader: otherReader{}, length: 1},
	}
	for what, rd := range cases {
		h := backend.Handle{Type: backend.PackFile, Name: randomName(rng)}
		err := be.Save(context.Background(), h, rd)
		if err == nil {
			t.Errorf("Save with a reader that %s: no error", what)
			continue
		}
		if rd.err != nil && !errors.Is(err, rd.err) {
			t.Errorf("Save with a reader that %s: error %q does not wrap the reader's", what, err)
		}
		_, err = be.Stat(context.Background(), h)
		checkNotExist(t, "Stat after a failed Save with a reader that "+what, err)
	}
	checkList(t, be, backend.PackFile, nil)
}
