package crypto

import (
	"bytes"
	"errors"
	"testing"
)

// testKey returns a fixed key whose material is the bytes seed, seed+1, ...
func testKey(t testing.TB, seed byte) *Key {
	t.Helper()
	m := make([]byte, MaterialSize)
	for i := range m {
		m[i] = seed + byte(i)
	}
	k, err := KeyFromMaterial(m)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpenRoundtrip(t *testing.T) {
	k, err := NewRandomKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 1, 15, 16, 17, 63, 64, 65, 4096, 1<<20 + 3} {
		pt := bytes.Repeat([]byte{byte(n)}, n)
		prefix := []byte("prefix")
		ct := k.Seal(append([]byte{}, prefix...), pt)
		if len(ct) != len(prefix)+n+Overhead {
			t.Fatalf("%d bytes: sealed length %d", n, len(ct))
		}
		if !bytes.Equal(ct[:len(prefix)], prefix) {
			t.Fatalf("%d bytes: Seal changed dst's prefix", n)
		}
		got, err := k.Open([]byte("x"), ct[len(prefix):])
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if got[0] != 'x' || !bytes.Equal(got[1:], pt) {
			t.Fatalf("%d bytes: wrong plaintext", n)
		}
	}
}

func TestSealFreshNonces(t *testing.T) {
	k := testKey(t, 1)
	a, b := k.Seal(nil, []byte("same")), k.Seal(nil, []byte("same"))
	if bytes.Equal(a[:NonceSize], b[:NonceSize]) || bytes.Equal(a, b) {
		t.Error("two seals of the same plaintext share a nonce")
	}
}

func TestOpenTampered(t *testing.T) {
	k := testKey(t, 1)
	ct := k.Seal(nil, []byte("the quick brown fox jumps over the lazy dog"))
	for i := range ct {
		for _, bit := range []byte{0x01, 0x80} {
			bad := bytes.Clone(ct)
			bad[i] ^= bit
			if out, err := k.Open(nil, bad); !errors.Is(err, ErrUnauthenticated) || out != nil {
				t.Fatalf("flip %#x in byte %d: got %q, %v", bit, i, out, err)
			}
		}
	}
	for n := 0; n < len(ct); n++ {
		if _, err := k.Open(nil, ct[:n]); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("truncated to %d bytes: %v", n, err)
		}
	}
	if _, err := k.Open(nil, append(bytes.Clone(ct), 0)); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("extended by a byte: %v", err)
	}
	if _, err := testKey(t, 2).Open(nil, ct); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("other key: %v", err)
	}
}

func TestKeyFromMaterial(t *testing.T) {
	for _, n := range []int{0, MaterialSize - 1, MaterialSize + 1} {
		if _, err := KeyFromMaterial(make([]byte, n)); err == nil {
			t.Errorf("%d bytes: no error", n)
		}
	}
	k := testKey(t, 0)
	s := k.ChunkerSecret()
	if s[0] != 64 || s[31] != 95 {
		t.Errorf("ChunkerSecret = %x, want bytes 64..95 of the material", s)
	}
}

func TestSealOpenAllocs(t *testing.T) {
	k := testKey(t, 1)
	pt := make([]byte, 4096)
	ct := make([]byte, 0, len(pt)+Overhead)
	out := make([]byte, 0, len(pt))
	if a := testing.AllocsPerRun(100, func() { ct = k.Seal(ct[:0], pt) }); a != 0 {
		t.Errorf("Seal: %v allocations", a)
	}
	if a := testing.AllocsPerRun(100, func() {
		var err error
		if out, err = k.Open(out[:0], ct); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("Open: %v allocations", a)
	}
}
