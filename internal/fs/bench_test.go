package fs

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rewind-backup/rewind/internal/testutil"
)

// benchFiles is the size of the tree the metadata walk benchmark stats.
const benchFiles = 10000

// BenchmarkMetadataWalk measures the per-file cost of an unchanged backup:
// lstat, NodeFromStat, ReadXattrs and the owner names, over 10,000 files
// in 100 directories, with and without an attribute on every file, on the
// temporary directory's filesystem and (as root) on a fresh ext4.
func BenchmarkMetadataWalk(b *testing.B) {
	fss := []struct {
		name string
		dir  func(testing.TB) string
	}{
		{"tmpdir", func(t testing.TB) string { return t.TempDir() }},
		{"ext4", testutil.Ext4},
	}
	names, err := LoadIDNames()
	if err != nil {
		b.Fatal(err)
	}
	for _, fsys := range fss {
		for _, withXattr := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/xattr=%v", fsys.name, withXattr), func(b *testing.B) {
				paths := makeBenchTree(b, fsys.dir(b), withXattr)
				b.ReportAllocs()
				for b.Loop() {
					for _, p := range paths {
						var st unix.Stat_t
						if err := unix.Lstat(p, &st); err != nil {
							b.Fatal(err)
						}
						n := NodeFromStat(filepath.Base(p), &st)
						names.SetNames(&n)
						if n.Xattrs, err = ReadXattrs(p); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(paths)), "ns/file")
			})
		}
	}
}

func makeBenchTree(b *testing.B, dir string, withXattr bool) []string {
	b.Helper()
	paths := make([]string, 0, benchFiles)
	for i := range benchFiles {
		sub := filepath.Join(dir, fmt.Sprintf("d%02d", i%100))
		if i < 100 {
			must(b, os.Mkdir(sub, 0o755))
		}
		p := filepath.Join(sub, fmt.Sprintf("file-%05d.dat", i))
		must(b, os.WriteFile(p, nil, 0o644))
		if withXattr {
			if err := unix.Lsetxattr(p, "user.rewind", []byte("benchmark"), 0); err != nil {
				b.Skipf("user xattrs: %v", err)
			}
		}
		paths = append(paths, p)
	}
	return paths
}
