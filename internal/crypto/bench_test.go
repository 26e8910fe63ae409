package crypto

import (
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/zeebo/blake3"
)

var benchSizes = []int{4 << 10, 1 << 20}

func sizeName(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprintf("%dKiB", n>>10)
}

func BenchmarkSeal(b *testing.B) {
	k := testKey(b, 1)
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			pt := make([]byte, n)
			ct := make([]byte, 0, n+Overhead)
			b.SetBytes(int64(n))
			for b.Loop() {
				ct = k.Seal(ct[:0], pt)
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	k := testKey(b, 1)
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			ct := k.Seal(nil, make([]byte, n))
			out := make([]byte, 0, n)
			b.SetBytes(int64(n))
			for b.Loop() {
				var err error
				if out, err = k.Open(out[:0], ct); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

var sinkID id.ID

func BenchmarkBlobID(b *testing.B) {
	k := testKey(b, 1)
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			data := make([]byte, n)
			b.SetBytes(int64(n))
			for b.Loop() {
				sinkID = k.BlobID(data)
			}
		})
	}
}

func BenchmarkFileID(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			data := make([]byte, n)
			b.SetBytes(int64(n))
			for b.Loop() {
				sinkID = FileID(data)
			}
		})
	}
}

// BenchmarkBlobIDStrategies compares ways to reuse a keyed hasher: the
// pool BlobID uses, cloning a keyed prototype per call, and keying a new
// hasher per call.
func BenchmarkBlobIDStrategies(b *testing.B) {
	k := testKey(b, 1)
	for _, n := range benchSizes {
		data := make([]byte, n)
		b.Run("pool/"+sizeName(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				sinkID = k.BlobID(data)
			}
		})
		b.Run("clone/"+sizeName(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				h := k.idProto.Clone()
				_, _ = h.Write(data)
				h.Sum(sinkID[:0])
			}
		})
		b.Run("stackcopy/"+sizeName(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				sinkID = stackCopyID(k, data)
			}
		})
		b.Run("newkeyed/"+sizeName(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				h, _ := blake3.NewKeyed(k.idKey())
				_, _ = h.Write(data)
				h.Sum(sinkID[:0])
			}
		})
	}
}

// BenchmarkCeiling hashes the same sizes with crypto/sha256 (SHA-NI where
// the CPU has it), as a yardstick.
func BenchmarkCeiling(b *testing.B) {
	for _, n := range benchSizes {
		b.Run("sha256/"+sizeName(n), func(b *testing.B) {
			data := make([]byte, n)
			b.SetBytes(int64(n))
			for b.Loop() {
				sinkID = sha256.Sum256(data)
			}
		})
	}
}

// BenchmarkKDF times DefaultKDFParams, what opening a repository costs.
func BenchmarkKDF(b *testing.B) {
	k := testKey(b, 1)
	kf, err := WrapKey(k, []byte("pw"), DefaultKDFParams)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := kf.Unwrap([]byte("pw")); err != nil {
			b.Fatal(err)
		}
	}
}

// stackCopyID copies the keyed prototype by value instead of pooling.
func stackCopyID(k *Key, data []byte) id.ID {
	h := *k.idProto
	_, _ = h.Write(data)
	var out id.ID
	h.Sum(out[:0])
	return out
}
