package chunker

import "testing"

// TestCutFinal: a cut CutFinal calls final is the cut of every longer
// stream with the same prefix, and cutting a growing stream from its last
// final boundary gives the chunks of cutting the whole stream at once.
func TestCutFinal(t *testing.T) {
	for _, p := range []Params{tinyParams, {Min: 64, Avg: 128, Max: 129}, {Min: 1000, Avg: 4096, Max: 20000}} {
		c := mustNew(t, testSecret, p)
		data := randomBytes(200000, 5)
		finals := 0
		for l := 1; l < 6000; l += 7 {
			n, final := c.CutFinal(data[:l])
			if final {
				finals++
				if m := c.Cut(data); m != n {
					t.Fatalf("%+v: %d bytes: final cut %d, but %d on the whole stream", p, l, n, m)
				}
			}
		}
		if finals == 0 {
			t.Fatalf("%+v: no final cut", p)
		}
		// Grow in steps, keeping the final chunks.
		want := cutLengths(c, data)
		var got []int
		done := 0
		for have := 0; have < len(data); {
			have = min(have+1+have%5000, len(data))
			var tail []int
			for off := done; off < have; {
				n, final := c.CutFinal(data[off:have])
				if final && tail == nil {
					got = append(got, n)
					done += n
				} else {
					tail = append(tail, n)
				}
				off += n
			}
			if have == len(data) {
				got = append(got, tail...)
			}
		}
		if !equalInts(got, want) {
			t.Fatalf("%+v: incremental cuts differ: %d chunks, want %d", p, len(got), len(want))
		}
	}
}
