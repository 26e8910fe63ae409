package fs

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/rewind-backup/rewind/internal/testutil"
)

func TestDataRegions(t *testing.T) {
	fss := []struct {
		name string
		dir  func(testing.TB) string
	}{
		{"ext4", testutil.Ext4},
		{"tmpdir", func(t testing.TB) string { return t.TempDir() }},
	}
	const k64, m1 = 64 << 10, 1 << 20
	tests := []struct {
		name   string
		writes []int64 // 64 KiB of data at each offset
		size   int64   // truncated to
		asked  int64   // size passed to DataRegions
		want   []Region
	}{
		{"empty", nil, 0, 0, nil},
		{"all hole", nil, 4 * m1, 4 * m1, nil},
		{"dense", []int64{0, k64, 2 * k64}, 3 * k64, 3 * k64, []Region{{0, 3 * k64}}},
		{"holes between", []int64{0, m1}, 4 * m1, 4 * m1, []Region{{0, k64}, {m1, k64}}},
		{"leading hole", []int64{m1}, m1 + k64, m1 + k64, []Region{{m1, k64}}},
		{"partial last block", []int64{m1}, m1 + 100, m1 + 100, []Region{{m1, 100}}},
		{"grew since stat", []int64{0, m1}, 2 * m1, m1 / 2, []Region{{0, k64}}},
		{"cut in a region", []int64{0, m1}, 2 * m1, m1 + 10, []Region{{0, k64}, {m1, 10}}},
		{"shrank since stat", []int64{0}, k64, 2 * m1, []Region{{0, k64}}},
	}
	for _, fsys := range fss {
		t.Run(fsys.name, func(t *testing.T) {
			dir := fsys.dir(t)
			for _, tt := range tests {
				f, err := os.Create(filepath.Join(dir, tt.name))
				must(t, err)
				for _, off := range tt.writes {
					_, err := f.WriteAt(make([]byte, k64), off) // zeros, but written
					must(t, err)
				}
				must(t, f.Truncate(tt.size))
				must(t, f.Sync())
				_, err = f.Seek(123, io.SeekStart)
				must(t, err)
				got, err := DataRegions(f, tt.asked)
				must(t, err)
				if !slices.Equal(got, tt.want) {
					t.Errorf("%s: DataRegions = %v, want %v", tt.name, got, tt.want)
				}
				if pos, err := f.Seek(0, io.SeekCurrent); err != nil || pos != 123 {
					t.Errorf("%s: file offset %d after DataRegions, want 123 (%v)", tt.name, pos, err)
				}
				must(t, f.Close())
			}
		})
	}
}

func TestDataRegionsClosed(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	must(t, err)
	must(t, f.Close())
	if _, err := DataRegions(f, 10); err == nil {
		t.Error("DataRegions of a closed file: no error")
	}
}
