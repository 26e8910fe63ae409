package chunker

import (
	"bytes"
	"crypto/sha256"
	"testing"

	"github.com/zeebo/blake3"
)

func TestParamsValidate(t *testing.T) {
	for _, p := range []Params{DefaultParams, SmallParams, tinyParams, {Min: 64, Avg: 128, Max: 129}, {Min: 1 << 20, Avg: 8 << 20, Max: MaxSizeLimit}} {
		if err := p.Validate(); err != nil {
			t.Errorf("%v: %v", p, err)
		}
	}
	for _, p := range []Params{
		{},
		{Min: 63, Avg: 128, Max: 256},                 // min too small
		{Min: 64, Avg: 64, Max: 256},                  // min == avg
		{Min: 64, Avg: 256, Max: 256},                 // avg == max
		{Min: 64, Avg: 192, Max: 256},                 // avg not a power of two
		{Min: 256, Avg: 128, Max: 1024},               // min > avg
		{Min: 1 << 20, Avg: 8 << 20, Max: 16<<20 + 1}, // max too large
		{Min: 1 << 20, Avg: 16 << 20, Max: 32 << 20},  // max too large
	} {
		if err := p.Validate(); err == nil {
			t.Errorf("%v: no error", p)
		}
		if _, err := New(testSecret, p); err == nil {
			t.Errorf("New(%v): no error", p)
		}
	}
}

// TestMasks pins the masks the package doc gives as an example.
func TestMasks(t *testing.T) {
	s, l := DefaultParams.masks()
	if s != 0xfffffc0000000000 || l != 0xffffc00000000000 {
		t.Errorf("DefaultParams masks = %#x, %#x", s, l)
	}
	s, l = Params{Min: 64, Avg: 128, Max: 256}.masks()
	if s != 0xff80000000000000 || l != 0xf800000000000000 {
		t.Errorf("avg 128 masks = %#x, %#x", s, l)
	}
}

// TestGearTable pins the table derivation: a different derivation would
// silently change every boundary of every repository.
func TestGearTable(t *testing.T) {
	var secret [SecretSize]byte
	for i := range secret {
		secret[i] = byte(i)
	}
	c := mustNew(t, secret, DefaultParams)
	// Checked against b3sum: printf 'rewind chunker gear table v1' |
	// b3sum --keyed -l 2048 with the key bytes 00..1f on standard input.
	want := map[int]uint64{0: 0x74615f015682e29a, 1: 0x87ea20454febe081, 255: 0x644e0636c7bf0c38}
	for i, w := range want {
		if c.gear[i] != w {
			t.Errorf("gear[%d] = %#x, want %#x", i, c.gear[i], w)
		}
	}
}

// TestGoldenBoundaries pins complete boundaries for a fixed secret and
// input, as a vector other implementations can check against: secret
// 00..1f, params 2048/8192/32768, and as data the first 256 KiB of the
// unkeyed BLAKE3 output for "rewind chunker test vector". The lengths
// were also computed by a separate script written from the package doc.
func TestGoldenBoundaries(t *testing.T) {
	var secret [SecretSize]byte
	for i := range secret {
		secret[i] = byte(i)
	}
	h := blake3.New()
	_, _ = h.WriteString("rewind chunker test vector")
	data := make([]byte, 256<<10)
	_, _ = h.Digest().Read(data)
	c := mustNew(t, secret, Params{Min: 2 << 10, Avg: 8 << 10, Max: 32 << 10})
	want := []int{
		9698, 5320, 10319, 4369, 8449, 8135, 9941, 8718, 6999, 8291,
		9009, 10733, 9357, 8540, 9023, 9481, 8704, 9675, 11271, 12550,
		10212, 10761, 10321, 8341, 9832, 9826, 9608, 9062, 5599,
	}
	got := cutLengths(c, data)
	if !equalInts(got, want) {
		t.Errorf("lengths = %#v\nwant %#v", got, want)
	}
}

func TestCutMatchesReference(t *testing.T) {
	for _, p := range []Params{tinyParams, {Min: 64, Avg: 128, Max: 129}, {Min: 1000, Avg: 4096, Max: 20000}, SmallParams} {
		c := mustNew(t, testSecret, p)
		for seed, size := range []int{0, 1, 63, 64, 65, 1000, 4 << 10, 100 << 10, 3 << 20} {
			data := randomBytes(size, uint64(seed))
			got, want := cutLengths(c, data), referenceLengths(c, data)
			if !equalInts(got, want) {
				t.Fatalf("%v, %d bytes: Cut gives %d chunks, reference %d\n%v\n%v", p, size, len(got), len(want), got, want)
			}
		}
	}
}

// TestCutLowEntropy checks zeros and short periods, where every window
// hash is the same and lanes hit together or never.
func TestCutLowEntropy(t *testing.T) {
	for _, p := range []Params{tinyParams, SmallParams} {
		c := mustNew(t, testSecret, p)
		for _, pattern := range [][]byte{{0}, {0xff}, []byte("ab"), []byte("rewind!")} {
			data := bytes.Repeat(pattern, 1<<20/len(pattern))
			got, want := cutLengths(c, data), referenceLengths(c, data)
			if !equalInts(got, want) {
				t.Fatalf("%v, pattern %q: Cut %v, reference %v", p, pattern, got, want)
			}
		}
	}
}

func TestCutShort(t *testing.T) {
	c := mustNew(t, testSecret, DefaultParams)
	data := randomBytes(int(DefaultParams.Min), 1)
	for _, n := range []int{0, 1, 100, len(data)} {
		if got := c.Cut(data[:n]); got != n {
			t.Errorf("Cut(%d bytes) = %d", n, got)
		}
	}
}

func TestDeterministicAndBounded(t *testing.T) {
	for _, p := range []Params{DefaultParams, SmallParams} {
		data := randomBytes(16<<20, 7)
		a := cutLengths(mustNew(t, testSecret, p), data)
		b := cutLengths(mustNew(t, testSecret, p), data)
		if !equalInts(a, b) {
			t.Fatalf("%v: two chunkers disagree", p)
		}
		sum := 0
		for i, n := range a {
			sum += n
			if n > int(p.Max) || (n < int(p.Min) && i != len(a)-1) {
				t.Errorf("%v: chunk %d of %d has %d bytes", p, i, len(a), n)
			}
		}
		if sum != len(data) {
			t.Errorf("%v: chunks sum to %d, want %d", p, sum, len(data))
		}
	}
}

// TestMaxCut checks data without any boundary is cut at Max.
func TestMaxCut(t *testing.T) {
	// Zeros: every window hash is the same; find a secret where it misses.
	data := make([]byte, 10*int(tinyParams.Max)+5)
	for s := 0; s < 256; s++ {
		secret := testSecret
		secret[31] = byte(s)
		c := mustNew(t, secret, tinyParams)
		if got := cutLengths(c, data); len(got) == 11 && got[0] == int(tinyParams.Max) {
			if got[10] != 5 {
				t.Errorf("last chunk %d bytes, want 5", got[10])
			}
			return
		}
	}
	t.Fatal("no secret without a boundary in zeros")
}

func TestSecretsDiffer(t *testing.T) {
	data := randomBytes(16<<20, 3)
	other := testSecret
	other[0] ^= 1
	a := cutLengths(mustNew(t, testSecret, SmallParams), data)
	b := cutLengths(mustNew(t, other, SmallParams), data)
	same := shared(a, b)
	if same > len(a)/10 {
		t.Errorf("secrets differing in one bit share %d of %d boundaries", same, len(a))
	}
}

// shared counts the boundaries (end offsets) a and b have in common.
func shared(a, b []int) int {
	ends := map[int]bool{}
	off := 0
	for _, n := range a {
		off += n
		ends[off] = true
	}
	off, same := 0, 0
	for _, n := range b {
		off += n
		if ends[off] {
			same++
		}
	}
	return same
}

func TestShiftResistance(t *testing.T) {
	data := randomBytes(16<<20, 11)
	c := mustNew(t, testSecret, SmallParams)
	chunks := func(d []byte) map[[32]byte]bool {
		m := map[[32]byte]bool{}
		for _, n := range cutLengths(c, d) {
			m[sha256.Sum256(d[:n])] = true
			d = d[n:]
		}
		return m
	}
	orig := chunks(data)
	for _, insert := range []int{1, 7, 64, 4096, 100000} {
		shifted := append(randomBytes(insert, 99), data...)
		got := chunks(shifted)
		missing := 0
		for h := range orig {
			if !got[h] {
				missing++
			}
		}
		if missing > 3 {
			t.Errorf("insert %d bytes: %d of %d chunks changed", insert, missing, len(orig))
		}
	}
}

func TestAverageSize(t *testing.T) {
	for _, p := range []Params{SmallParams, {Min: 1 << 10, Avg: 4 << 10, Max: 16 << 10}} {
		data := randomBytes(32<<20, 5)
		lens := cutLengths(mustNew(t, testSecret, p), data)
		mean := float64(len(data)) / float64(len(lens))
		// The package doc predicts about 1.14×Avg for Min = Avg/4.
		if r := mean / float64(p.Avg); r < 1.0 || r > 1.3 {
			t.Errorf("%v: mean chunk %.0f bytes = %.2f×avg over %d chunks", p, mean, r, len(lens))
		}
	}
}
