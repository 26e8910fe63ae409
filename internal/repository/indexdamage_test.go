package repository

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/mem"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/index"
	"github.com/rewind-backup/rewind/internal/pack"
)

// indexDamages are the ways an index file is damaged at rest. Each returns
// the new content of the stored file.
var indexDamages = []struct {
	name   string
	damage func(r *Repository, stored []byte) []byte
}{
	{"truncated", func(_ *Repository, b []byte) []byte { return b[:len(b)*2/3] }},
	{"bit flipped", func(_ *Repository, b []byte) []byte { return flipBit(b, len(b)/2) }},
	{"zero length", func(_ *Repository, _ []byte) []byte { return nil }},
	{"garbage", func(_ *Repository, b []byte) []byte { return noise("garbage", len(b)) }},
	{"one byte added", func(_ *Repository, b []byte) []byte { return append(slices.Clone(b), 0) }},
}

// damageRepo is a repository with several index files, each listing one
// pack of its own blobs.
type damageRepo struct {
	be      backend.Backend
	replace func(h backend.Handle, data []byte)
	blobs   map[id.ID][]byte
	files   []id.ID           // index files, in the order written
	packsOf map[id.ID][]id.ID // packs listed by each index file
	blobIn  map[id.ID]pack.Blob
	packOf  map[id.ID]id.ID
}

// newDamageRepo writes sessions write sessions on a local folder or in
// memory, and returns what it stored.
func newDamageRepo(t *testing.T, kind string, sessions int) *damageRepo {
	t.Helper()
	d := &damageRepo{blobs: map[id.ID][]byte{}, packsOf: map[id.ID][]id.ID{}, blobIn: map[id.ID]pack.Blob{}, packOf: map[id.ID]id.ID{}}
	var r *Repository
	switch kind {
	case "local":
		var dir string
		r, dir = newLocalRepo(t)
		d.be = r.Backend()
		d.replace = func(h backend.Handle, data []byte) {
			rewrite(t, localFile(dir, h), func([]byte) []byte { return data })
		}
	case "mem":
		var be *mem.Backend
		r, be = newMemRepo(t)
		d.be = be
		d.replace = func(h backend.Handle, data []byte) { memReplace(t, be, h, data) }
	}
	for s := range sessions {
		before := names(t, d.be, backend.IndexFile)
		var blobs []testBlob
		for k := range 3 {
			blobs = append(blobs, testBlob{pack.DataBlob, noise(fmt.Sprintf("%s %d %d", kind, s, k), 40<<10+k*7919)})
		}
		blobs = append(blobs, testBlob{pack.TreeBlob, text(fmt.Sprintf("tree %d", s), 3000)})
		ids := saveAll(t, r, blobs)
		for k, i := range ids {
			d.blobs[i] = blobs[k].data
		}
		for _, n := range names(t, d.be, backend.IndexFile) {
			if slices.Contains(before, n) {
				continue
			}
			i, err := id.Parse(n)
			if err != nil {
				t.Fatal(err)
			}
			f, err := r.LoadIndexFile(context.Background(), i)
			if err != nil {
				t.Fatal(err)
			}
			d.files = append(d.files, i)
			for _, p := range f.Packs {
				d.packsOf[i] = append(d.packsOf[i], p.ID)
				for _, b := range p.Blobs {
					d.blobIn[b.ID], d.packOf[b.ID] = b, p.ID
				}
			}
		}
	}
	if len(d.files) != sessions {
		t.Fatalf("setup: %d index files for %d sessions", len(d.files), sessions)
	}
	return d
}

// damage replaces index file f by what change makes of it.
func (d *damageRepo) damage(t *testing.T, r *Repository, f id.ID, change func(*Repository, []byte) []byte) {
	t.Helper()
	h := backend.Handle{Type: backend.IndexFile, Name: f.String()}
	d.replace(h, change(r, memRead(t, d.be, h)))
}

// open opens the repository afresh and loads its index, which must not
// fail.
func (d *damageRepo) open(t *testing.T) *Repository {
	t.Helper()
	r, err := Open(context.Background(), d.be, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeCodecs(r) })
	if err := r.LoadIndex(context.Background()); err != nil {
		t.Fatalf("load index with a damaged index file: %v", err)
	}
	return r
}

// readsAll checks that every blob stored reads back byte for byte, except
// those in the packs of lost.
func (d *damageRepo) readsAll(t *testing.T, r *Repository, lost map[id.ID]bool) {
	t.Helper()
	ctx := context.Background()
	for i, want := range d.blobs {
		got, err := r.LoadBlob(ctx, d.blobIn[i].Type, i, nil)
		l, found := r.Index().Lookup(i)
		switch {
		case found && lost[l.Pack]:
			t.Errorf("blob %s is indexed in pack %s, whose header cannot be read", i.Short(), l.Pack.Short())
		case !found && !lost[d.packOf[i]]:
			t.Errorf("blob %s is not found: %v", i.Short(), err)
		case found && err != nil:
			t.Errorf("blob %s: %v", i.Short(), err)
		case found && !bytes.Equal(got, want):
			t.Errorf("blob %s reads back different bytes", i.Short())
		}
	}
}

// TestDamagedIndexFile damages index files in every way at rest, one among
// several, all of them, and one whose pack is damaged too, on a local
// folder and in memory (the S3 path reaches the same code through the
// backend interface). The index always loads, names the damaged files, and
// every blob whose pack is intact reads back byte for byte; no blob is
// taken for stored that is not.
func TestDamagedIndexFile(t *testing.T) {
	for _, kind := range []string{"local", "mem"} {
		for _, dm := range indexDamages {
			t.Run(kind+"/"+dm.name, func(t *testing.T) {
				d := newDamageRepo(t, kind, 4)
				r := d.open(t)
				if r.IndexDamage() != nil {
					t.Fatal("damage reported before any")
				}
				victim := d.files[2]
				d.damage(t, r, victim, dm.damage)
				r2 := d.open(t)
				dmg := r2.IndexDamage()
				if dmg == nil || len(dmg.Files) != 1 || dmg.Files[0].File != victim {
					t.Fatalf("IndexDamage = %+v, want index/%s", dmg, victim)
				}
				if !errors.Is(dmg.Files[0].Err, ErrCorrupt) {
					t.Errorf("the damage is not corruption: %v", dmg.Files[0].Err)
				}
				if dmg.PacksFromHeaders != len(d.packsOf[victim]) {
					t.Errorf("%d packs indexed from headers, want %d", dmg.PacksFromHeaders, len(d.packsOf[victim]))
				}
				if err := dmg.Err(); !errors.Is(err, ErrIndexDamaged) || !bytes.Contains([]byte(err.Error()), []byte("index/"+victim.String())) ||
					!bytes.Contains([]byte(err.Error()), []byte("rewind repair index")) {
					t.Errorf("Err() = %v: want it to name the file and repair index", err)
				}
				d.readsAll(t, r2, nil)

				// A second damaged file, and the pack of a third one
				// damaged too: its blobs are missing, not assumed.
				second, third := d.files[0], d.files[3]
				d.damage(t, r, second, dm.damage)
				d.damage(t, r, third, indexDamages[2].damage)
				lostPack := d.packsOf[third][0]
				ph := backend.Handle{Type: backend.PackFile, Name: lostPack.String()}
				stored := memRead(t, d.be, ph)
				d.replace(ph, flipBit(stored, len(stored)-pack.TrailerSize-3))
				r3 := d.open(t)
				dmg = r3.IndexDamage()
				if dmg == nil || len(dmg.Files) != 3 {
					t.Fatalf("IndexDamage = %+v, want three files", dmg)
				}
				if len(dmg.UnreadablePacks) != 1 || dmg.UnreadablePacks[0].Pack != lostPack {
					t.Errorf("unreadable packs %v, want data/%s", dmg.UnreadablePacks, lostPack)
				}
				d.readsAll(t, r3, map[id.ID]bool{lostPack: true})

				// A backup saving the blobs again stores those of the
				// unreadable pack, and only those: nothing it cannot
				// find is taken for stored, nothing found is stored
				// twice.
				ctx := context.Background()
				r3.StartWriting(ctx)
				for i, data := range d.blobs {
					added, err := r3.SaveBlobID(ctx, d.blobIn[i].Type, i, data)
					if err != nil {
						t.Fatal(err)
					}
					if added != (d.packOf[i] == lostPack) {
						t.Errorf("blob %s of pack %s: stored again %v", i.Short(), d.packOf[i].Short(), added)
					}
				}
				if err := r3.Flush(ctx); err != nil {
					t.Fatal(err)
				}
				d.readsAll(t, d.open(t), nil)

				// repair index makes the stored index whole again.
				if _, err := r3.RebuildIndex(context.Background()); err != nil {
					t.Fatal(err)
				}
				r4 := d.open(t)
				if r4.IndexDamage() != nil {
					t.Errorf("damage after repair index: %+v", r4.IndexDamage())
				}
				d.readsAll(t, r4, map[id.ID]bool{lostPack: true})
			})
		}
	}
}

// TestDamagedIndexFileSuperseded: a damaged index file that an intact one
// supersedes (left when a crash stopped its removal) is no damage.
func TestDamagedIndexFileSuperseded(t *testing.T) {
	d := newDamageRepo(t, "mem", 2)
	r := d.open(t)
	var packs []index.PackEntry
	for _, f := range d.files {
		old, err := r.LoadIndexFile(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		packs = append(packs, old.Packs...)
	}
	if _, err := r.SaveIndexFile(context.Background(), &index.File{Supersedes: d.files, Packs: packs}); err != nil {
		t.Fatal(err)
	}
	d.damage(t, r, d.files[1], indexDamages[1].damage)
	r2 := d.open(t)
	if r2.IndexDamage() != nil {
		t.Fatalf("a superseded damaged file is reported: %+v", r2.IndexDamage())
	}
	d.readsAll(t, r2, nil)
}
