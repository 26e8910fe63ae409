package test

import (
	"context"
	"io"
	"testing"

	"github.com/rewind-backup/rewind/internal/backend"
)

// RunBenchmarks measures Save and Load of small files, 4 KiB ranges of
// large packs (the restore pattern) and whole 16 MiB packs. newBackend must
// return a new, empty backend for each call; RunBenchmarks closes it.
func RunBenchmarks(b *testing.B, newBackend func(b *testing.B) backend.Backend) {
	const small, large = 4 << 10, 16 << 20

	open := func(b *testing.B) backend.Backend {
		be := newBackend(b)
		b.Cleanup(func() {
			if err := be.Close(); err != nil {
				b.Errorf("Close: %v", err)
			}
		})
		return be
	}

	b.Run("Save4KiB", func(b *testing.B) {
		be := open(b)
		rng := newRand(b)
		data := randomData(rng, small)
		b.SetBytes(small)
		for b.Loop() {
			h := backend.Handle{Type: backend.PackFile, Name: randomName(rng)}
			if err := be.Save(context.Background(), h, backend.NewByteReader(data)); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("Save16MiB", func(b *testing.B) {
		be := open(b)
		rng := newRand(b)
		data := randomData(rng, large)
		b.SetBytes(large)
		for b.Loop() {
			h := backend.Handle{Type: backend.PackFile, Name: randomName(rng)}
			if err := be.Save(context.Background(), h, backend.NewByteReader(data)); err != nil {
				b.Fatal(err)
			}
			// Keep the disk use of a long run bounded.
			b.StopTimer()
			if err := be.Remove(context.Background(), h); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})

	// Ranges of a few large packs, picked at random: the pattern of a
	// restore reading blobs.
	b.Run("Load4KiBRange", func(b *testing.B) {
		be := open(b)
		rng := newRand(b)
		packs := make([]backend.Handle, 4)
		for i := range packs {
			packs[i] = backend.Handle{Type: backend.PackFile, Name: randomName(rng)}
			save(b, be, packs[i], randomData(rng, large))
		}
		buf := make([]byte, small)
		read := func(rd io.Reader) error {
			_, err := io.ReadFull(rd, buf)
			return err
		}
		b.SetBytes(small)
		for b.Loop() {
			h := packs[rng.IntN(len(packs))]
			offset := rng.Int64N(large - small)
			if err := be.Load(context.Background(), h, small, offset, read); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("Load4KiBRangeParallel", func(b *testing.B) {
		be := open(b)
		rng := newRand(b)
		packs := make([]backend.Handle, 4)
		for i := range packs {
			packs[i] = backend.Handle{Type: backend.PackFile, Name: randomName(rng)}
			save(b, be, packs[i], randomData(rng, large))
		}
		b.SetBytes(small)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			buf := make([]byte, small)
			read := func(rd io.Reader) error {
				_, err := io.ReadFull(rd, buf)
				return err
			}
			i := 0
			for pb.Next() {
				i++
				h := packs[i%len(packs)]
				offset := int64(i*7919*small) % (large - small)
				if err := be.Load(context.Background(), h, small, offset, read); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})

	b.Run("Load16MiB", func(b *testing.B) {
		be := open(b)
		rng := newRand(b)
		h := backend.Handle{Type: backend.PackFile, Name: randomName(rng)}
		save(b, be, h, randomData(rng, large))
		buf := make([]byte, large)
		read := func(rd io.Reader) error {
			_, err := io.ReadFull(rd, buf)
			return err
		}
		b.SetBytes(large)
		for b.Loop() {
			if err := be.Load(context.Background(), h, 0, 0, read); err != nil {
				b.Fatal(err)
			}
		}
	})
}
