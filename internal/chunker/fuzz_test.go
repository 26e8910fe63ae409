package chunker

import (
	"bytes"
	"testing"
	"testing/iotest"
)

// FuzzChunker checks the invariants on arbitrary data and small params:
// chunks concatenate to the input, respect Min and Max, agree with the
// reference cutter, and come out the same from Split as from Cut.
func FuzzChunker(f *testing.F) {
	f.Add([]byte{}, uint16(0), uint8(0), uint16(0))
	f.Add([]byte("hello, rewind"), uint16(0), uint8(0), uint16(0))
	f.Add(bytes.Repeat([]byte{0}, 5000), uint16(10), uint8(1), uint16(100))
	f.Add(bytes.Repeat([]byte("abc"), 3000), uint16(200), uint8(2), uint16(3000))
	f.Add(randomBytes(3000, 1), uint16(0), uint8(0), uint16(0))
	f.Add(randomBytes(12000, 2), uint16(300), uint8(2), uint16(900))
	f.Fuzz(func(t *testing.T, data []byte, minExtra uint16, avgShift uint8, maxExtra uint16) {
		// The reference cutter is quadratic-ish; keep inputs small.
		data = data[:min(len(data), 32<<10)]
		avg := uint32(128) << (avgShift % 6)
		p := Params{Min: 64 + uint32(minExtra)%(avg-64), Avg: avg, Max: avg + 1 + uint32(maxExtra)}
		if err := p.Validate(); err != nil {
			t.Fatalf("fuzz params %v: %v", p, err)
		}
		c := mustNew(t, testSecret, p)

		lens := cutLengths(c, data)
		var joined []byte
		off := 0
		for i, n := range lens {
			if n > int(p.Max) || n == 0 || (n < int(p.Min) && i != len(lens)-1) {
				t.Fatalf("%v: chunk %d of %d has %d bytes", p, i, len(lens), n)
			}
			joined = append(joined, data[off:off+n]...)
			off += n
		}
		if !bytes.Equal(joined, data) {
			t.Fatal("chunks do not concatenate to the input")
		}
		if want := referenceLengths(c, data); !equalInts(lens, want) {
			t.Fatalf("%v: Cut %v, reference %v", p, lens, want)
		}
		if got := splitLengths(t, c, iotest.HalfReader(bytes.NewReader(data)), nil, data); !equalInts(got, lens) {
			t.Fatalf("%v: Split %v, Cut %v", p, got, lens)
		}
	})
}
