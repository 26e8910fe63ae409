package retention

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/mem"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// lockStore holds retention dates as COMPLIANCE does: they only move
// forward. It counts the requests.
type lockStore struct {
	mu              sync.Mutex
	until           map[backend.Handle]time.Time
	lookups, extend int
}

func (s *lockStore) Retention(_ context.Context, h backend.Handle) (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lookups++
	return s.until[h], nil
}

func (s *lockStore) ExtendRetention(_ context.Context, h backend.Handle, t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.extend++
	if t.Before(s.until[h]) {
		return fmt.Errorf("%v: cannot shorten the retention from %v to %v", h, s.until[h], t)
	}
	s.until[h] = t
	return nil
}

// lockNew gives every stored file the store does not know yet the date a
// locked upload at t would get.
func (s *lockStore) lockNew(t *testing.T, be backend.Backend, at time.Time, d time.Duration) {
	t.Helper()
	for _, ft := range []backend.FileType{backend.ConfigFile, backend.KeyFile, backend.PackFile, backend.IndexFile, backend.SnapshotFile} {
		err := be.List(context.Background(), ft, func(fi backend.FileInfo) error {
			h := backend.Handle{Type: ft, Name: fi.Name}
			if _, ok := s.until[h]; !ok {
				s.until[h] = at.Add(d + d/4)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func (s *lockStore) reset() (lookups, extend int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	lookups, extend = s.lookups, s.extend
	s.lookups, s.extend = 0, 0
	return lookups, extend
}

func writeFile(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func randomData(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// packsOf returns the packs holding the data of the file at path in sn.
func packsOf(t *testing.T, r *repository.Repository, sn *snapshot.Snapshot, path string) map[id.ID]bool {
	t.Helper()
	n, err := snapshot.Lookup(context.Background(), r, sn, path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[id.ID]bool{}
	for _, c := range n.Content {
		loc, ok := r.Index().Lookup(c.ID)
		if !ok {
			t.Fatalf("%s: chunk %s not indexed", path, c.ID)
		}
		out[loc.Pack] = true
	}
	return out
}

// TestExtend, with a clock of its own: files that a recent snapshot shares
// with an old one are extended to D + D/4 after the recent snapshot, files
// only an old snapshot needs are not, a snapshot dated in the future locks
// nothing beyond D + D/4 from now, and the cache spares every request of a
// run that follows.
func TestExtend(t *testing.T) {
	ctx := context.Background()
	const d = time.Hour
	be := mem.New()
	r, err := repository.Init(ctx, be, []byte("pw"), repository.InitOptions{KDF: crypto.TestKDFParams, PackSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "kept.bin"), randomData(1, 3<<20))
	writeFile(t, filepath.Join(src, "gone.bin"), randomData(2, 3<<20))
	backup := func() *snapshot.Snapshot {
		t.Helper()
		a, err := archiver.New(r, archiver.Options{})
		if err != nil {
			t.Fatal(err)
		}
		sn, err := a.Snapshot(ctx, []string{src})
		if err != nil {
			t.Fatal(err)
		}
		return sn
	}
	st := &lockStore{until: map[backend.Handle]time.Time{}}
	first := backup()
	t0 := first.Time
	st.lockNew(t, be, t0, d)
	kept, gone := packsOf(t, r, first, filepath.Join(src, "kept.bin")), packsOf(t, r, first, filepath.Join(src, "gone.bin"))

	// Two hours later, gone.bin is gone and another backup shares
	// kept.bin's packs with the first one, which is older than D by now.
	if err := os.Remove(filepath.Join(src, "gone.bin")); err != nil {
		t.Fatal(err)
	}
	second := backup()
	second.Time = t0.Add(2 * time.Hour)
	if err := snapshot.Save(ctx, r, second); err != nil {
		t.Fatal(err)
	}
	st.lockNew(t, be, second.Time, d)
	now := second.Time.Add(time.Minute)
	cache := NewCache()
	opt := Options{Retention: d, Now: func() time.Time { return now }, Cache: cache}
	res, err := Extend(ctx, r, st, opt)
	if err != nil {
		t.Fatal(err)
	}
	lookups, extended := st.reset()
	t.Logf("%+v", res)
	// Only the second snapshot, as dated, is younger than D (the copy the
	// archiver stored carries the real time, like the first one).
	if res.Snapshots != 1 || res.Extended != extended || res.Lookups != lookups || res.Failed != 0 {
		t.Errorf("result %+v, store saw %d lookups and %d extensions", res, lookups, extended)
	}
	want := second.Time.Add(d + d/4)
	for p := range kept {
		if u := st.until[backend.Handle{Type: backend.PackFile, Name: p.String()}]; !u.Equal(want) {
			t.Errorf("shared pack %s locked until %v, want %v", p.Short(), u, want)
		}
	}
	for p := range gone {
		if kept[p] {
			continue
		}
		if u := st.until[backend.Handle{Type: backend.PackFile, Name: p.String()}]; !u.Equal(t0.Add(d + d/4)) {
			t.Errorf("pack %s only the old snapshot needs was changed to %v", p.Short(), u)
		}
	}
	for _, h := range []backend.Handle{{Type: backend.ConfigFile}, {Type: backend.SnapshotFile, Name: second.ID.String()}} {
		if u := st.until[h]; u.Before(second.Time.Add(d)) {
			t.Errorf("%v locked until %v only", h, u)
		}
	}
	if u := st.until[backend.Handle{Type: backend.SnapshotFile, Name: first.ID.String()}]; !u.Equal(t0.Add(d + d/4)) {
		t.Errorf("the old snapshot's file was changed to %v", u)
	}

	// Right after, through the cache file: no request at all.
	file := filepath.Join(t.TempDir(), "sub", "retention")
	if err := cache.Save(file, now); err != nil {
		t.Fatal(err)
	}
	if opt.Cache, err = LoadCache(file); err != nil {
		t.Fatal(err)
	}
	res, err = Extend(ctx, r, st, opt)
	if err != nil {
		t.Fatal(err)
	}
	if lookups, extended := st.reset(); lookups+extended != 0 || res.Done != res.Snapshots {
		t.Errorf("second run: %+v; %d lookups, %d extensions", res, lookups, extended)
	}

	// A cache that knows an early date extends at once; when another host
	// has extended further, the store refuses to shorten, and the date is
	// looked up instead of failing.
	h := backend.Handle{Type: backend.ConfigFile}
	stale := NewCache()
	stale.set(h, t0)
	st.until[h] = now.Add(10 * d)
	opt.Cache = stale
	if _, err := Extend(ctx, r, st, opt); err != nil {
		t.Errorf("with a stale cache: %v", err)
	}
	if u := st.until[h]; !u.Equal(now.Add(10 * d)) {
		t.Errorf("config retention moved to %v", u)
	}
	st.reset()

	// Half an hour on, a snapshot dated years ahead locks until D + D/4
	// from now, no more.
	now = now.Add(30 * time.Minute)
	future := *second
	future.Time = now.Add(10 * 365 * 24 * time.Hour)
	if err := snapshot.Save(ctx, r, &future); err != nil {
		t.Fatal(err)
	}
	st.lockNew(t, be, now, d)
	before := map[backend.Handle]time.Time{}
	for h, u := range st.until {
		before[h] = u
	}
	opt.Cache = NewCache()
	if _, err := Extend(ctx, r, st, opt); err != nil {
		t.Fatal(err)
	}
	moved := 0
	for h, u := range st.until {
		if u.Equal(before[h]) {
			continue
		}
		moved++
		if u.After(now.Add(d + d/4)) {
			t.Errorf("%v locked until %v, beyond D + D/4 from now", h, u)
		}
	}
	if moved == 0 {
		t.Error("a snapshot dated in the future extended nothing")
	}
}
