package chunker

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func splitLengths(t *testing.T, c *Chunker, r io.Reader, buf []byte, data []byte) []int {
	t.Helper()
	var out []int
	off := 0
	err := c.Split(r, buf, func(chunk []byte) error {
		if !bytes.Equal(chunk, data[off:off+len(chunk)]) {
			t.Fatalf("chunk %d at %d: wrong bytes", len(out), off)
		}
		off += len(chunk)
		out = append(out, len(chunk))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if off != len(data) {
		t.Fatalf("chunks cover %d bytes, want %d", off, len(data))
	}
	return out
}

func TestSplitMatchesCut(t *testing.T) {
	p := Params{Min: 1 << 10, Avg: 4 << 10, Max: 16 << 10}
	c := mustNew(t, testSecret, p)
	data := randomBytes(1<<20+123, 2)
	want := cutLengths(c, data)
	readers := map[string]func() io.Reader{
		"bytes":   func() io.Reader { return bytes.NewReader(data) },
		"onebyte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data)) },
		"half":    func() io.Reader { return iotest.HalfReader(bytes.NewReader(data)) },
		"dataerr": func() io.Reader { return iotest.DataErrReader(bytes.NewReader(data)) },
	}
	for name, mk := range readers {
		for _, size := range []int{0, int(p.Max), int(p.Max) + 1, 2 * int(p.Max), 1 << 20} {
			var buf []byte
			if size > 0 {
				buf = make([]byte, size)
			}
			if got := splitLengths(t, c, mk(), buf, data); !equalInts(got, want) {
				t.Errorf("%s reader, buffer %d: lengths differ from Cut", name, size)
			}
		}
	}
}

func TestSplitEmptyAndShort(t *testing.T) {
	c := mustNew(t, testSecret, DefaultParams)
	if got := splitLengths(t, c, bytes.NewReader(nil), nil, nil); len(got) != 0 {
		t.Errorf("empty input gave chunks %v", got)
	}
	data := randomBytes(1000, 1)
	if got := splitLengths(t, c, bytes.NewReader(data), nil, data); !equalInts(got, []int{1000}) {
		t.Errorf("short input gave chunks %v", got)
	}
}

func TestReaderNextAndReset(t *testing.T) {
	c := mustNew(t, testSecret, tinyParams)
	a, b := randomBytes(50000, 1), randomBytes(30000, 2)
	rd := c.NewReader(bytes.NewReader(a), nil)
	for _, data := range [][]byte{a, b} {
		var got []int
		for {
			chunk, err := rd.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, len(chunk))
		}
		if want := cutLengths(c, data); !equalInts(got, want) {
			t.Errorf("Next gives %v, want %v", got, want)
		}
		if _, err := rd.Next(); err != io.EOF {
			t.Errorf("Next after EOF: %v", err)
		}
		rd.Reset(bytes.NewReader(b))
	}
}

func TestReaderErrors(t *testing.T) {
	c := mustNew(t, testSecret, tinyParams)
	boom := errors.New("boom")
	rd := c.NewReader(io.MultiReader(bytes.NewReader(randomBytes(10000, 1)), iotest.ErrReader(boom)), nil)
	var err error
	for err == nil {
		_, err = rd.Next()
	}
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want boom", err)
	}
	if _, err2 := rd.Next(); !errors.Is(err2, boom) {
		t.Errorf("error not sticky: %v", err2)
	}

	if _, err := c.NewReader(emptyReader{}, nil).Next(); !errors.Is(err, io.ErrNoProgress) {
		t.Errorf("empty reads: got %v, want io.ErrNoProgress", err)
	}
	if _, err := c.NewReader(badReader{}, nil).Next(); err == nil {
		t.Error("invalid read count: no error")
	}

	stop := errors.New("stop")
	err = c.Split(bytes.NewReader(randomBytes(10000, 1)), nil, func([]byte) error { return stop })
	if err != stop {
		t.Errorf("Split returned %v, want fn's error", err)
	}
}

type emptyReader struct{}

func (emptyReader) Read([]byte) (int, error) { return 0, nil }

type badReader struct{}

func (badReader) Read(p []byte) (int, error) { return len(p) + 1, nil }

func TestSplitAllocs(t *testing.T) {
	c := mustNew(t, testSecret, SmallParams)
	data := randomBytes(4<<20, 1)
	buf := make([]byte, c.BufferSize())
	r := bytes.NewReader(data)
	chunks := 0
	fn := func([]byte) error { chunks++; return nil }
	allocs := testing.AllocsPerRun(5, func() {
		r.Reset(data)
		if err := c.Split(r, buf, fn); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Split allocates %v times per %d-chunk stream", allocs, chunks/6)
	}
}
