package cli

import (
	"context"
	"encoding/json"
	"time"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

func init() { schemaTypes["stats"] = reflect.TypeFor[jsonStats]() }

type jsonStats struct {
	SnapshotsCount int `json:"snapshots_count"`
	RestoreSize    *struct {
		Files       int64 `json:"files"`
		Dirs        int64 `json:"dirs"`
		Other       int64 `json:"other"`
		Bytes       int64 `json:"bytes"`
		NotBackedUp int64 `json:"not_backed_up"`
	} `json:"restore_size"`
	FilesByContents *struct {
		Contents int64 `json:"contents"`
		Bytes    int64 `json:"bytes"`
	} `json:"files_by_contents"`
	RawData *struct {
		Blobs            int64   `json:"blobs"`
		DataBlobs        int64   `json:"data_blobs"`
		TreeBlobs        int64   `json:"tree_blobs"`
		PlainBytes       int64   `json:"plain_bytes"`
		PackedBytes      int64   `json:"packed_bytes"`
		MissingBlobs     int64   `json:"missing_blobs"`
		CompressionRatio float64 `json:"compression_ratio"`
		DedupRatio       float64 `json:"dedup_ratio"`
	} `json:"raw_data"`
}

// runStatsJSON runs stats --json and checks the document.
func runStatsJSON(t *testing.T, e *env, args ...string) jsonStats {
	t.Helper()
	var out jsonStats
	checkDoc(t, "stats", e.mustRun(append([]string{"stats", "--json"}, args...)...).stdout, &out)
	return out
}

// treeCount is what the test counts itself over a source tree.
type treeCount struct {
	files, dirs, other, bytes int64
	contents                  map[string]int64 // distinct content -> size
}

// countTree walks src with lstat, as a restore of it would write it,
// skipping the files skip names (relative paths) as not backed up. The
// directories above src, which a snapshot holds too, are counted.
func countTree(t *testing.T, src string, skip map[string]bool) treeCount {
	t.Helper()
	c := treeCount{contents: map[string]int64{}}
	seen := map[[2]uint64]bool{}
	c.dirs = int64(len(strings.Split(strings.Trim(src, "/"), "/"))) - 1 // src itself is counted below
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			c.dirs++
		case fi.Mode().IsRegular():
			if skip[rel] {
				return nil
			}
			c.files++
			// A restore writes a hard-linked file once and links the
			// other names to it.
			st := fi.Sys().(*syscall.Stat_t)
			if k := [2]uint64{uint64(st.Dev), st.Ino}; !seen[k] {
				seen[k] = true
				c.bytes += fi.Size()
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			c.contents[string(b)] = fi.Size()
		default:
			c.other++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (c treeCount) uniqueBytes() (n int64) {
	for _, s := range c.contents {
		n += s
	}
	return n
}

// TestStats checks every number of stats against the test's own count of
// the source tree: sizes from lstat, duplicates made on purpose, and a
// file the backup could not read, which has no content to count.
func TestStats(t *testing.T) {
	e := newRepo(t, 0)
	src := e.path("src")
	dup := randomBytes(201, 180<<10)
	writeFiles(t, src, map[string][]byte{
		"a/one.bin":       randomBytes(202, 150<<10),
		"a/dup1.bin":      dup,
		"b/c/d/dup2.bin":  dup,
		"b/c/dup3.bin":    dup,
		"b/empty":         nil,
		"b/small.txt":     []byte("small\n"),
		"locked/secret":   randomBytes(203, 60<<10),
		"locked/note.txt": []byte("readable\n"),
	})
	if err := os.Symlink("../a/one.bin", filepath.Join(src, "b", "link")); err != nil {
		t.Fatal(err)
	}
	// Two names of one file, in different directories: restore writes
	// its content once.
	if err := os.Link(filepath.Join(src, "a", "one.bin"), filepath.Join(src, "b", "c", "hard")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(src, "emptydir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(src, "locked", "secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	for d := src; d != "/" && d != filepath.Dir(filepath.Dir(src)); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	if r := asNobody(t, e, "backup", src); r.code != ExitPartial {
		t.Fatalf("backup as nobody: want exit 3, got %v", r)
	}
	e.mustRun("backup", src)
	sns := listSnapshotsJSON(t, e)
	partial := countTree(t, src, map[string]bool{"locked/secret": true})
	whole := countTree(t, src, nil)
	if int64(len(whole.contents)) != whole.files-3 {
		t.Fatalf("the test tree has %d distinct contents in %d files, want three duplicates", len(whole.contents), whole.files)
	}

	// One snapshot with an unreadable file: it is counted apart and adds
	// no bytes.
	s := runStatsJSON(t, e, sns[0].ShortID)
	rs := s.RestoreSize
	if s.SnapshotsCount != 1 || rs == nil || rs.Files != partial.files || rs.Dirs != partial.dirs || rs.Other != partial.other ||
		rs.Bytes != partial.bytes || rs.NotBackedUp != 1 {
		t.Errorf("restore size of the partial snapshot: %+v, want %d files, %d dirs, %d other, %d bytes and 1 not backed up",
			rs, partial.files, partial.dirs, partial.other, partial.bytes)
	}
	if fc := s.FilesByContents; fc == nil || fc.Contents != int64(len(partial.contents)) || fc.Bytes != partial.uniqueBytes() {
		t.Errorf("files by contents: %+v, want %d contents of %d bytes", fc, len(partial.contents), partial.uniqueBytes())
	}
	out := string(e.mustRun("stats", sns[0].ShortID).stdout)
	if !strings.Contains(out, "not backed up: 1 file ") {
		t.Errorf("stats does not count the unreadable file apart:\n%s", out)
	}

	// Both snapshots: restore sizes add up, contents and blobs count once.
	s = runStatsJSON(t, e)
	rs, fc, rd := s.RestoreSize, s.FilesByContents, s.RawData
	if s.SnapshotsCount != 2 || rs.Files != partial.files+whole.files || rs.Dirs != partial.dirs+whole.dirs ||
		rs.Bytes != partial.bytes+whole.bytes || rs.NotBackedUp != 1 {
		t.Errorf("restore size of both: %+v", rs)
	}
	if fc.Contents != int64(len(whole.contents)) || fc.Bytes != whole.uniqueBytes() {
		t.Errorf("files by contents of both: %+v, want %d contents of %d bytes", fc, len(whole.contents), whole.uniqueBytes())
	}
	// Random content does not compress and chunks of distinct files do
	// not coincide: the data blobs hold each distinct content once.
	stored := storedBlobs(t, e)
	if rd.MissingBlobs != 0 || rd.Blobs != rd.DataBlobs+rd.TreeBlobs || rd.Blobs > int64(len(stored)) || rd.DataBlobs == 0 || rd.TreeBlobs == 0 {
		t.Errorf("raw data blobs: %+v (%d blobs in packs)", rd, len(stored))
	}
	if rd.PackedBytes < whole.uniqueBytes() || rd.PlainBytes < whole.uniqueBytes() {
		t.Errorf("raw data: %+v, want at least %d bytes of data", rd, whole.uniqueBytes())
	}
	want := float64(rs.Bytes) / float64(whole.uniqueBytes())
	if math.Abs(rd.DedupRatio-want) > 1e-9 {
		t.Errorf("dedup ratio %v, want %v", rd.DedupRatio, want)
	}
	if rd.CompressionRatio <= 0.9 || rd.CompressionRatio > 1.01 {
		t.Errorf("compression ratio %v for incompressible data", rd.CompressionRatio)
	}

	// --mode shows one part; a wrong mode is refused.
	s = runStatsJSON(t, e, "--mode", "raw-data", "latest")
	if s.RawData == nil || s.RestoreSize != nil || s.FilesByContents != nil || s.SnapshotsCount != 1 {
		t.Errorf("--mode raw-data: %+v", s)
	}
	e.expectCode(ExitFatal, "stats", "--mode", "everything")
}

// TestStatsCondemnedBlobs: blobs in packs a prune has condemned but not
// yet deleted (a lock was held) are still stored, and readable; a snapshot
// that references them, as one saved by a backup racing the prune does,
// is counted in full, not reported as missing blobs.
func TestStatsCondemnedBlobs(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 0)
	src := e.path("src")
	writeFiles(t, src, map[string][]byte{"gone.bin": randomBytes(301, 120<<10)})
	e.mustRun("backup", src)
	writeFiles(t, src, map[string][]byte{"gone.bin": randomBytes(302, 90<<10)})
	e.mustRun("backup", src)
	sns := listSnapshotsJSON(t, e)
	before := runStatsJSON(t, e, "--mode", "raw-data", sns[0].ID).RawData

	// Keep the snapshot's file, forget it, and prune while a lock is
	// held, so that its packs are condemned and stay.
	ctx := context.Background()
	r := openInProcess(t, e)
	defer r.Close()
	i, err := id.Parse(sns[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	old, err := snapshot.Load(ctx, r, i)
	if err != nil {
		t.Fatal(err)
	}
	l, err := lock.Acquire(ctx, r, lock.Shared, lock.Options{Command: "stats test"})
	if err != nil {
		t.Fatal(err)
	}
	e.mustRun("forget", sns[0].ID)
	var sum struct {
		PacksCondemned int `json:"packs_condemned"`
	}
	if err := json.Unmarshal(lastLine(e.mustRun("prune", "--json").stdout), &sum); err != nil || sum.PacksCondemned == 0 {
		t.Fatalf("prune condemned no pack (%v)", err)
	}
	old.Time = old.Time.Add(time.Second)
	if err := snapshot.Save(ctx, r, old); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	after := runStatsJSON(t, e, "--mode", "raw-data", old.ID.String()).RawData
	if after.MissingBlobs != 0 || *after != *before {
		t.Errorf("stats of a snapshot in condemned packs: %+v, want %+v", after, before)
	}
}

// lastLine returns the last non-empty line of out.
func lastLine(out []byte) []byte {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return []byte(lines[len(lines)-1])
}
