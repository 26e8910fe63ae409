package checker

import (
	"context"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/mem"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/repository"
)

// newPackedRepo returns a repository in memory holding about want packs
// of random data blobs, with its index loaded, and its backend.
func newPackedRepo(t *testing.T, want int) (*repository.Repository, *mem.Backend) {
	t.Helper()
	ctx := context.Background()
	be := mem.New()
	r, err := repository.Init(ctx, be, []byte("pw"), repository.InitOptions{KDF: crypto.TestKDFParams, PackSize: 1 << 20, Compression: "none"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	rng := rand.New(rand.NewPCG(1, 2))
	r.StartWriting(ctx)
	buf := make([]byte, 256<<10)
	for range want * 4 {
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		if _, _, err := r.SaveBlob(ctx, pack.DataBlob, buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	return r, be
}

func listPacks(t *testing.T, r *repository.Repository) []id.ID {
	t.Helper()
	ps, err := r.List(context.Background(), backend.PackFile)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func runCheck(t *testing.T, r *repository.Repository, opt Options) *Result {
	t.Helper()
	res, err := Check(context.Background(), r, opt)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func mustSubset(t *testing.T, s string) *Subset {
	t.Helper()
	sub, err := ParseSubset(s)
	if err != nil {
		t.Fatal(err)
	}
	return &sub
}

func TestParseSubset(t *testing.T) {
	good := map[string]Subset{
		"1/3":  {N: 1, M: 3},
		"3/3":  {N: 3, M: 3},
		"1/1":  {N: 1, M: 1},
		"5%":   {Percent: 5},
		"2.5%": {Percent: 2.5},
		"100%": {Percent: 100},
	}
	for s, want := range good {
		got, err := ParseSubset(s)
		if err != nil || got != want {
			t.Errorf("ParseSubset(%q) = %+v, %v; want %+v", s, got, err, want)
		}
		if got.String() != s {
			t.Errorf("%+v.String() = %q, want %q", got, got.String(), s)
		}
	}
	for _, s := range []string{"0/3", "4/3", "0%", "101%", "abc", "", "1/0", "-1/3", "x/3", "%", "-5%", "NaN%", "1/3/4"} {
		if _, err := ParseSubset(s); err == nil {
			t.Errorf("ParseSubset(%q) succeeded", s)
		} else if !strings.Contains(err.Error(), "invalid subset") {
			t.Errorf("ParseSubset(%q): unclear error %v", s, err)
		}
	}
}

// A rotating 25% subset reads every pack exactly once in 4 runs, and
// twice in 8.
func TestSubsetPercentRotates(t *testing.T) {
	r, _ := newPackedRepo(t, 20)
	packs := listPacks(t, r)
	if len(packs) < 16 {
		t.Fatalf("only %d packs", len(packs))
	}
	n := len(packs)
	// With ceil-sized windows every pack is read at least once per 4 runs,
	// and exactly once when 4 divides the pack count.
	pct := "25%"
	t.Logf("%d packs", n)
	dir := t.TempDir()
	var warned []string
	opt := Options{Subset: mustSubset(t, pct), StateDir: dir, Warn: func(m string) { warned = append(warned, m) }}
	count := map[id.ID]int{}
	for run := 1; run <= 8; run++ {
		res := runCheck(t, r, opt)
		if len(res.Problems) != 0 {
			t.Fatalf("run %d: problems %v", run, res.Problems)
		}
		if res.Packs != n || res.PacksRead != (n+3)/4 || len(res.read) != res.PacksRead {
			t.Fatalf("run %d: packs %d read %d (%d), want %d of %d", run, res.Packs, res.PacksRead, len(res.read), (n+3)/4, n)
		}
		if res.Subset != pct {
			t.Errorf("subset %q", res.Subset)
		}
		for _, p := range res.read {
			count[p]++
		}
		if run%4 == 0 {
			round := run / 4
			for _, p := range packs {
				c := count[p]
				if c < round || (n%4 == 0 && c != round) {
					t.Errorf("after %d runs pack %s read %d times, want %d", run, p.Short(), c, round)
				}
			}
		}
	}
	if len(warned) != 0 {
		t.Errorf("warnings: %q", warned)
	}
}

// Without a usable position the window starts at random, and says so.
func TestSubsetNoStateDir(t *testing.T) {
	r, _ := newPackedRepo(t, 4)
	var warned []string
	res := runCheck(t, r, Options{Subset: mustSubset(t, "50%"), Warn: func(m string) { warned = append(warned, m) }})
	if res.PacksRead == 0 || len(res.Problems) != 0 {
		t.Fatalf("read %d, problems %v", res.PacksRead, res.Problems)
	}
	if len(warned) == 0 {
		t.Error("no warning without a state directory")
	}
}

// The slices 1/3, 2/3 and 3/3 partition the packs.
func TestSubsetPartition(t *testing.T) {
	r, _ := newPackedRepo(t, 20)
	packs := listPacks(t, r)
	seen := map[id.ID]string{}
	total := 0
	for _, s := range []string{"1/3", "2/3", "3/3"} {
		res := runCheck(t, r, Options{Subset: mustSubset(t, s)})
		if len(res.Problems) != 0 {
			t.Fatalf("%s: problems %v", s, res.Problems)
		}
		total += res.PacksRead
		for _, p := range res.read {
			if prev, ok := seen[p]; ok {
				t.Errorf("pack %s read by %s and %s", p.Short(), prev, s)
			}
			seen[p] = s
		}
		// Stable: the same slice again reads the same packs.
		again := runCheck(t, r, Options{Subset: mustSubset(t, s)})
		a, b := slices.Clone(res.read), slices.Clone(again.read)
		slices.SortFunc(a, cmpID)
		slices.SortFunc(b, cmpID)
		if !slices.Equal(a, b) {
			t.Errorf("%s read different packs on a second run", s)
		}
	}
	if total != len(packs) || len(seen) != len(packs) {
		t.Errorf("slices read %d packs (%d distinct), want %d", total, len(seen), len(packs))
	}
	// Without read-data or a subset nothing is read.
	if res := runCheck(t, r, Options{}); res.PacksRead != 0 {
		t.Errorf("plain check read %d packs", res.PacksRead)
	}
	if res := runCheck(t, r, Options{ReadData: true}); res.PacksRead != len(packs) {
		t.Errorf("read-data read %d packs, want %d", res.PacksRead, len(packs))
	}
}

func cmpID(a, b id.ID) int { return strings.Compare(a.String(), b.String()) }

// A corrupted pack is found by the slice that holds it, and only by it.
func TestSubsetFindsCorruption(t *testing.T) {
	ctx := context.Background()
	r, be := newPackedRepo(t, 9)
	packs := listPacks(t, r)
	victim := packs[len(packs)/2]
	h := backend.Handle{Type: backend.PackFile, Name: victim.String()}
	var data []byte
	if err := be.Load(ctx, h, 0, 0, func(rd io.Reader) error {
		var err error
		data, err = io.ReadAll(rd)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	data[10] ^= 0x55 // inside the first blob, not the header
	if err := be.Remove(ctx, h); err != nil {
		t.Fatal(err)
	}
	if err := be.Save(ctx, h, backend.NewByteReader(data)); err != nil {
		t.Fatal(err)
	}
	if res := runCheck(t, r, Options{}); len(res.Problems) != 0 {
		t.Fatalf("structure check sees data damage: %v", res.Problems)
	}
	found := 0
	for _, s := range []string{"1/3", "2/3", "3/3"} {
		sub := mustSubset(t, s)
		res := runCheck(t, r, Options{Subset: sub})
		if sub.inSlice(victim) {
			found++
			if len(res.Problems) == 0 {
				t.Errorf("%s holds the damaged pack but found nothing", s)
			}
			for _, p := range res.Problems {
				if p.Object != "data/"+victim.String() {
					t.Errorf("%s: problem with %s, want only the damaged pack: %s", s, p.Object, p.Error)
				}
			}
		} else if len(res.Problems) != 0 {
			t.Errorf("%s does not hold the damaged pack but found %v", s, res.Problems)
		}
	}
	if found != 1 {
		t.Errorf("the damaged pack is in %d slices", found)
	}
	// A rotating 50% finds it in one of two runs.
	dir := t.TempDir()
	hits := 0
	for range 2 {
		if res := runCheck(t, r, Options{Subset: mustSubset(t, "50%"), StateDir: dir}); len(res.Problems) != 0 {
			hits++
		}
	}
	if hits == 0 {
		t.Error("two 50% runs missed the damaged pack")
	}
}
