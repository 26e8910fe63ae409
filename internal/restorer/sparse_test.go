package restorer_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rewind-backup/rewind/internal/restorer"
	"github.com/rewind-backup/rewind/internal/testutil"
)

// sparseFile is a file of size bytes holding data only in regions
// (offset, length); the rest is hole.
type sparseFile struct {
	name    string
	size    int64
	regions [][2]int64
}

// sparseFiles are shaped so that a writer extending the file as it goes
// would leave XFS's speculative preallocation inside it: data followed by
// a long hole, islands of data, data that ends the file, no data at all.
var sparseFiles = []sparseFile{
	{"head-then-hole", 6 << 20, [][2]int64{{0, 1 << 20}}},
	{"island", 5 << 20, [][2]int64{{2 << 20, 300 << 10}}},
	{"archipelago", 8 << 20, [][2]int64{{0, 64 << 10}, {1 << 20, 64 << 10}, {3 << 20, 200 << 10}, {7 << 20, 64 << 10}}},
	{"dense", 1536 << 10, [][2]int64{{0, 1536 << 10}}},
	{"ends-in-data", 3<<20 + 200<<10, [][2]int64{{3 << 20, 200 << 10}}},
	{"all-hole", 4 << 20, nil},
	{"small-then-hole", 2 << 20, [][2]int64{{0, 5000}}},
}

// writeSparse writes f carefully into dir: the size is set first, so that
// no write extends the file and nothing is allocated but the data.
func writeSparse(t *testing.T, dir string, f sparseFile, seed uint64) {
	t.Helper()
	out, err := os.OpenFile(filepath.Join(dir, f.name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	must(t, err)
	defer out.Close()
	must(t, out.Truncate(f.size))
	for i, r := range f.regions {
		_, err := out.WriteAt(randomBytes(seed+uint64(i), int(r[1])), r[0])
		must(t, err)
	}
	must(t, out.Sync())
}

// allocation is what the filesystem reports of a file's space: its data
// runs (SEEK_DATA/SEEK_HOLE) and allocated 512-byte blocks.
type allocation struct {
	regions [][2]int64
	blocks  int64
}

func allocationOf(t *testing.T, p string) allocation {
	t.Helper()
	f, err := os.Open(p)
	must(t, err)
	defer f.Close()
	// Flush delayed allocation, so st_blocks counts what is really
	// allocated rather than reservations.
	must(t, f.Sync())
	var st unix.Stat_t
	must(t, unix.Fstat(int(f.Fd()), &st))
	return allocation{dataRegions(t, f, st.Size), st.Blocks}
}

// TestRestoreSparseOnXFS restores sparse files onto XFS and checks each
// takes exactly the space of a careful copy, fresh and with --overwrite
// over shorter and longer older versions: a restore that extends the file
// after writing its data leaves XFS's speculative preallocation past the
// data as an unwritten extent inside the file.
func TestRestoreSparseOnXFS(t *testing.T) {
	mnt := testutil.XFS(t)
	src := filepath.Join(mnt, "src")
	must(t, os.Mkdir(src, 0o755))
	for i, f := range sparseFiles {
		writeSparse(t, src, f, uint64(100*i))
	}
	r := newTestRepo(t)
	sn, _ := backup(t, r, src)

	check := func(t *testing.T, target string) {
		t.Helper()
		for _, f := range sparseFiles {
			want := allocationOf(t, filepath.Join(src, f.name))
			got := allocationOf(t, filepath.Join(target, f.name))
			if !slices.Equal(got.regions, want.regions) || got.blocks != want.blocks {
				t.Errorf("%s: restored with data %v and %d KiB allocated, careful copy has %v and %d KiB",
					f.name, got.regions, got.blocks/2, want.regions, want.blocks/2)
			}
		}
	}
	t.Run("fresh", func(t *testing.T) {
		target := filepath.Join(mnt, "fresh")
		if st, err := restore(t, r, sn, src, restorer.Options{Target: target}); err != nil {
			t.Fatalf("restore: %v\n%s", err, errorsText(st))
		}
		check(t, target)
	})
	t.Run("overwrite", func(t *testing.T) {
		target := filepath.Join(mnt, "overwrite")
		must(t, os.Mkdir(target, 0o755))
		for i, f := range sparseFiles {
			// Older versions: half as long for some, twice for others,
			// with data of their own where the snapshot has holes.
			old := sparseFile{name: f.name, size: f.size / 2, regions: [][2]int64{{0, 4096}}}
			if i%2 == 1 {
				old.size = 2 * f.size
				old.regions = append(old.regions, [2]int64{f.size + 4096, 8192})
			}
			writeSparse(t, target, old, uint64(7+i))
		}
		if st, err := restore(t, r, sn, src, restorer.Options{Target: target, Overwrite: true}); err != nil {
			t.Fatalf("restore --overwrite: %v\n%s", err, errorsText(st))
		}
		check(t, target)
	})
}
