package crypto

import (
	"sync"
	"testing"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/zeebo/blake3"
)

// Known answers from the b3sum tool: "abc" hashed unkeyed, and keyed with
// the key bytes 32..63 (testKey(t, 0)'s ID key).
const keyedABC = "768e5224e221766c35f16b73ed98c19c12c9055474c9cfa6879367affe6e530e"

func TestIDKnownAnswers(t *testing.T) {
	if got, want := FileID([]byte("abc")).String(), "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"; got != want {
		t.Errorf("FileID(abc) = %s, want %s", got, want)
	}
	if got, want := testKey(t, 0).BlobID([]byte("abc")).String(), keyedABC; got != want {
		t.Errorf("BlobID(abc) = %s, want %s", got, want)
	}
}

func TestBlobIDMatchesBLAKE3(t *testing.T) {
	k := testKey(t, 7)
	for _, n := range []int{0, 1, 64, 1023, 1024, 1025, 8191, 8192, 8193, 100000, 1 << 20} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i * 7)
		}
		h, err := blake3.NewKeyed(k.idKey())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = h.Write(data)
		want := id.ID(h.Sum(nil))
		// Twice, so the second call uses a pooled, reset hasher.
		for range 2 {
			if got := k.BlobID(data); got != want {
				t.Fatalf("%d bytes: BlobID %s, want %s", n, got, want)
			}
		}
		if got := FileID(data); got != id.ID(blake3.Sum256(data)) {
			t.Fatalf("%d bytes: FileID differs from blake3.Sum256", n)
		}
	}
}

func TestBlobIDKeyed(t *testing.T) {
	data := []byte("some blob")
	a, b := testKey(t, 1).BlobID(data), testKey(t, 2).BlobID(data)
	if a == b {
		t.Error("different keys give the same blob ID")
	}
	if a == FileID(data) {
		t.Error("keyed blob ID equals the unkeyed hash")
	}
}

func TestBlobIDConcurrent(t *testing.T) {
	k := testKey(t, 3)
	data := make([]byte, 20000)
	want := k.BlobID(data)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				n := (g*31 + i*17) % len(data)
				if i%2 == 0 {
					n = len(data)
				}
				got := k.BlobID(data[:n])
				if n == len(data) && got != want {
					t.Errorf("goroutine %d: wrong ID", g)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestBlobIDAllocs(t *testing.T) {
	k := testKey(t, 1)
	data := make([]byte, 4096)
	k.BlobID(data)
	if a := testing.AllocsPerRun(100, func() { k.BlobID(data) }); a != 0 {
		t.Errorf("BlobID: %v allocations", a)
	}
	if a := testing.AllocsPerRun(100, func() { FileID(data) }); a != 0 {
		t.Errorf("FileID: %v allocations", a)
	}
}

// TestBlobHasherMatchesBlobID: the sum after every piece of a growing
// input, cut at odd places and across BLAKE3's 1 KiB chunks, equals the
// one-shot BlobID of the input so far.
func TestBlobHasherMatchesBlobID(t *testing.T) {
	k := testKey(t, 3)
	data := make([]byte, 300000)
	for i := range data {
		data[i] = byte(i*31 + i>>8)
	}
	for _, step := range []int{1, 7, 1000, 1024, 4097, 65536} {
		h := k.NewBlobHasher()
		if got, want := h.Sum(), k.BlobID(nil); got != want {
			t.Fatalf("empty: %s, want %s", got, want)
		}
		for off := 0; off < len(data); {
			n := min(step+off%3, len(data)-off)
			if step == 1 && off > 5000 {
				n = min(9999, len(data)-off)
			}
			h.Write(data[off : off+n])
			off += n
			if got, want := h.Sum(), k.BlobID(data[:off]); got != want {
				t.Fatalf("step %d, %d bytes: %s, want %s", step, off, got, want)
			}
			if h.Len() != int64(off) {
				t.Fatalf("Len %d, want %d", h.Len(), off)
			}
		}
	}
}
