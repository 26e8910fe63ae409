package chunker

import (
	"math/rand/v2"
	"testing"
)

// testSecret is the secret most tests use.
var testSecret = [SecretSize]byte{1, 2, 3, 4, 5, 6, 7, 8}

// tinyParams gives many chunks on little data, for exhaustive checks.
var tinyParams = Params{Min: 64, Avg: 256, Max: 1024}

// randomBytes returns n bytes from a ChaCha8 stream seeded with seed.
func randomBytes(n int, seed uint64) []byte {
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(s).Read(b)
	return b
}

func mustNew(tb testing.TB, secret [SecretSize]byte, p Params) *Chunker {
	tb.Helper()
	c, err := New(secret, p)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// referenceLengths cuts data by the package doc's definition, written as
// plainly as possible: one hash per candidate position, no lanes.
func referenceLengths(c *Chunker, data []byte) []int {
	var out []int
	for s := 0; s < len(data); {
		n := len(data) - s
		for i := s; i < len(data); i++ {
			l := i - s + 1
			if l == c.max {
				n = l
				break
			}
			if l < c.min {
				continue
			}
			var h uint64
			for _, b := range data[i-windowSize+1 : i+1] {
				h = h<<1 + c.gear[b]
			}
			m := c.maskL
			if l < c.avg {
				m = c.maskS
			}
			if h&m == 0 {
				n = l
				break
			}
		}
		out = append(out, n)
		s += n
	}
	return out
}

// cutLengths cuts data with repeated calls of Cut.
func cutLengths(c *Chunker, data []byte) []int {
	var out []int
	for len(data) > 0 {
		n := c.Cut(data)
		out = append(out, n)
		data = data[n:]
	}
	return out
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
