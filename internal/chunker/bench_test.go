package chunker

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
)

const benchSize = 64 << 20

// benchData is made on first use, so tests and fuzzing don't pay for it.
var benchData = sync.OnceValue(func() []byte { return randomBytes(benchSize, 1) })

var benchProfiles = []struct {
	name string
	p    Params
}{{"Default", DefaultParams}, {"Small", SmallParams}}

// BenchmarkCut cuts 64 MiB of random data in memory.
func BenchmarkCut(b *testing.B) {
	for _, prof := range benchProfiles {
		b.Run(prof.name, func(b *testing.B) {
			c := mustNew(b, testSecret, prof.p)
			b.SetBytes(benchSize)
			chunks := 0
			for b.Loop() {
				for d := benchData(); len(d) > 0; chunks++ {
					d = d[c.Cut(d):]
				}
			}
			b.ReportMetric(float64(benchSize)/float64(chunks)*float64(b.N), "B/chunk")
		})
	}
}

// BenchmarkSplit cuts 64 MiB through Split with a reader, as files are.
func BenchmarkSplit(b *testing.B) {
	for _, prof := range benchProfiles {
		b.Run(prof.name, func(b *testing.B) {
			c := mustNew(b, testSecret, prof.p)
			buf := make([]byte, 4*int(prof.p.Max))
			data := benchData()
			r := bytes.NewReader(data)
			b.SetBytes(benchSize)
			for b.Loop() {
				r.Reset(data)
				if err := c.Split(r, buf, func([]byte) error { return nil }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReference cuts like Cut with one hash chain instead of four
// lanes, to show what the lanes gain.
func BenchmarkReference(b *testing.B) {
	for _, prof := range benchProfiles {
		b.Run(prof.name, func(b *testing.B) {
			c := mustNew(b, testSecret, prof.p)
			b.SetBytes(benchSize)
			for b.Loop() {
				for d := benchData(); len(d) > 0; {
					d = d[cutOneLane(c, d):]
				}
			}
		})
	}
}

// cutOneLane is Cut with a single hash chain.
func cutOneLane(c *Chunker, data []byte) int {
	n := len(data)
	if n <= c.min {
		return n
	}
	n = min(n, c.max)
	var h uint64
	for _, x := range data[c.min-windowSize+1 : c.min-1] {
		h = h<<1 + c.gear[x]
	}
	normal := min(c.avg-1, n)
	if i := scan1(&c.gear, data[c.min-1:normal], h, c.maskS); i >= 0 {
		return c.min + i
	}
	for _, x := range data[normal-windowSize+1 : normal] {
		h = h<<1 + c.gear[x]
	}
	if i := scan1(&c.gear, data[normal:n], h, c.maskL); i >= 0 {
		return normal + i + 1
	}
	return n
}

var sink uint64

// sum64 adds up data as little-endian 64-bit words: a plain read of every
// byte with next to no work per byte.
func sum64(data []byte) uint64 {
	var s0, s1 uint64
	for len(data) >= 16 {
		s0 += binary.LittleEndian.Uint64(data)
		s1 += binary.LittleEndian.Uint64(data[8:])
		data = data[16:]
	}
	return s0 + s1
}

// BenchmarkCeiling measures what this machine does with the same 64 MiB
// in the simplest loops, as a yardstick for the chunker.
func BenchmarkCeiling(b *testing.B) {
	src := benchData()
	dst := make([]byte, benchSize)
	b.Run("memmove", func(b *testing.B) {
		b.SetBytes(benchSize)
		for b.Loop() {
			copy(dst, src)
		}
	})
	b.Run("bytes.Equal", func(b *testing.B) {
		copy(dst, src)
		b.SetBytes(benchSize)
		for b.Loop() {
			if !bytes.Equal(dst, src) {
				b.Fatal("differ")
			}
		}
	})
	b.Run("sum64", func(b *testing.B) {
		b.SetBytes(benchSize)
		for b.Loop() {
			sink += sum64(src)
		}
	})
	b.Run("sha256", func(b *testing.B) {
		b.SetBytes(benchSize)
		for b.Loop() {
			sum := sha256.Sum256(src)
			sink += uint64(sum[0])
		}
	})
}

func ExampleChunker_Split() {
	var secret [SecretSize]byte // from the repository key
	c, err := New(secret, SmallParams)
	if err != nil {
		panic(err)
	}
	data := randomBytes(1<<20, 1)
	n := 0
	err = c.Split(bytes.NewReader(data), nil, func(chunk []byte) error {
		n++ // store the chunk; it is only valid during this call
		return nil
	})
	fmt.Println(n > 1, err)
	// Output: true <nil>
}
