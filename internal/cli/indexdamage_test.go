package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// storedNames lists the names below dir (recursively for data/), sorted.
func storedNames(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			out = append(out, filepath.Base(p))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// damageFile rewrites a stored (read-only) file as a failing disk would.
func damageFile(t *testing.T, path string, change func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, change(b), 0o400); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedIndexCLI damages one index file among several in each way a
// disk can, and runs what a user would: check names the file and says to
// run repair index (and fails until it has run), restores of every
// snapshot come back byte for byte with a warning, a backup goes on
// without counting on what it cannot find, prune refuses and deletes
// nothing, and repair index makes the repository whole.
func TestDamagedIndexCLI(t *testing.T) {
	damages := []struct {
		name   string
		change func([]byte) []byte
	}{
		{"truncated", func(b []byte) []byte { return b[:len(b)/2] }},
		{"bit flipped", func(b []byte) []byte { c := slices.Clone(b); c[len(c)/3] ^= 0x10; return c }},
		{"zero length", func([]byte) []byte { return nil }},
		{"garbage", func(b []byte) []byte { return randomBytes(99, len(b)) }},
	}
	for n, dm := range damages {
		t.Run(dm.name, func(t *testing.T) {
			t.Parallel()
			e := newRepo(t, 0)
			idxDir := e.path("repo", "index")
			var srcs []string
			var snaps []string
			var victim string
			for k := range 3 {
				src := e.path(fmt.Sprintf("src%d", k))
				writeFiles(t, src, map[string][]byte{
					"own.bin":        randomBytes(uint64(100*n+k), 300<<10+k*4099),
					"shared/s.bin":   randomBytes(uint64(1000+k), 90<<10),
					"notes/k.txt":    []byte(strings.Repeat(fmt.Sprintf("line of source %d\n", k), 200)),
					"empty/.keep":    nil,
					"deep/a/b/c.bin": randomBytes(uint64(2000+k), 5<<10),
				})
				before := storedNames(t, idxDir)
				r := e.mustRun("backup", "--json", src)
				var sum jsonBackupSummary
				decodeStrict(t, jsonLines(t, r)[len(jsonLines(t, r))-1].raw, &sum)
				srcs, snaps = append(srcs, src), append(snaps, sum.SnapshotID)
				if k == 1 {
					for _, name := range storedNames(t, idxDir) {
						if !slices.Contains(before, name) {
							victim = name
						}
					}
				}
			}
			if victim == "" || len(storedNames(t, idxDir)) < 3 {
				t.Fatalf("setup: index files %v, victim %q", storedNames(t, idxDir), victim)
			}
			damageFile(t, filepath.Join(idxDir, victim), dm.change)
			packsBefore := storedNames(t, e.path("repo", "data"))

			for _, args := range [][]string{{"check"}, {"check", "--read-data"}} {
				r := e.expectCode(ExitFatal, args...)
				out := string(r.stdout)
				if !strings.Contains(out, "index/"+victim) || !strings.Contains(out, "rewind repair index") {
					t.Fatalf("%v does not name the damaged file and repair index: %v", args, r)
				}
				if strings.Count(out, "error:") != 1 {
					t.Errorf("%v: want exactly the damaged index file as a problem: %v", args, r)
				}
			}
			r := e.expectCode(ExitFatal, "check", "--json")
			var cs jsonCheckSummary
			decodeStrict(t, jsonLines(t, r)[0].raw, &cs)
			if len(cs.Problems) != 1 || cs.Problems[0].Object != "index/"+victim {
				t.Errorf("check --json problems %+v, want index/%s", cs.Problems, victim)
			}

			for k, sn := range snaps {
				target := e.path(fmt.Sprintf("restore-%d", k))
				r := e.mustRun("restore", sn, "--target", target)
				if !strings.Contains(string(r.stderr), "index/"+victim) || !strings.Contains(string(r.stderr), "rewind repair index") {
					t.Errorf("restore gives no warning about the damaged index file: %v", r)
				}
				sameFiles(t, srcs[k], target+srcs[k])
			}

			r = e.expectCode(ExitFatal, "prune")
			if !strings.Contains(string(r.stderr), "index/"+victim) || !strings.Contains(string(r.stderr), "rewind repair index") {
				t.Errorf("prune does not say why it refuses: %v", r)
			}
			if got := storedNames(t, e.path("repo", "data")); !slices.Equal(got, packsBefore) {
				t.Fatalf("prune changed the packs with a damaged index file")
			}

			// A backup of data the damaged file listed (and new data).
			src3 := e.path("src3")
			writeFiles(t, src3, map[string][]byte{
				"again.bin": randomBytes(uint64(100*n+1), 300<<10+4099),
				"new.bin":   randomBytes(uint64(5000+n), 200<<10),
			})
			r = e.mustRun("backup", "--json", src3)
			lines := jsonLines(t, r)
			var sum jsonBackupSummary
			decodeStrict(t, lines[len(lines)-1].raw, &sum)

			r = e.mustRun("repair", "index")
			e.mustRun("check", "--read-data")
			for k, sn := range append(snaps, sum.SnapshotID) {
				src := append(srcs, src3)[k]
				target := e.path(fmt.Sprintf("after-%d", k))
				r := e.mustRun("restore", sn, "--target", target)
				if strings.Contains(string(r.stderr), "repair index") {
					t.Errorf("warning after repair index: %v", r)
				}
				sameFiles(t, src, target+src)
			}
			e.mustRun("prune")
			e.mustRun("check", "--read-data")
		})
	}
}

// TestDamagedIndexAndLostPack: with a damaged index file and a pack lost
// that an intact one lists, check reports each once: the damaged file
// (with repair index), the lost pack, and the snapshot that needs it;
// restoring the snapshot the damaged file covered still works.
func TestDamagedIndexAndLostPack(t *testing.T) {
	e := newRepo(t, 0)
	idxDir, dataDir := e.path("repo", "index"), e.path("repo", "data")
	var srcs, snaps, newIndex, newPacks []string
	for k := range 2 {
		src := e.path(fmt.Sprintf("src%d", k))
		writeFiles(t, src, map[string][]byte{"f.bin": randomBytes(uint64(700+k), 64<<10)})
		idxBefore, packsBefore := storedNames(t, idxDir), storedNames(t, dataDir)
		r := e.mustRun("backup", "--json", src)
		lines := jsonLines(t, r)
		var sum jsonBackupSummary
		decodeStrict(t, lines[len(lines)-1].raw, &sum)
		srcs, snaps = append(srcs, src), append(snaps, sum.SnapshotID)
		for _, n := range storedNames(t, idxDir) {
			if !slices.Contains(idxBefore, n) {
				newIndex = append(newIndex, n)
			}
		}
		newPacks = newPacks[:0]
		for _, n := range storedNames(t, dataDir) {
			if !slices.Contains(packsBefore, n) {
				newPacks = append(newPacks, n)
			}
		}
	}
	damaged := newIndex[0]
	damageFile(t, filepath.Join(idxDir, damaged), func(b []byte) []byte { return b[:len(b)-1] })
	lost := newPacks[0]
	if err := os.Remove(filepath.Join(dataDir, lost[:2], lost)); err != nil {
		t.Fatal(err)
	}
	r := e.expectCode(ExitFatal, "check", "--json")
	var cs jsonCheckSummary
	decodeStrict(t, jsonLines(t, r)[0].raw, &cs)
	count := map[string]int{}
	for _, p := range cs.Problems {
		count[p.Object]++
	}
	if count["index/"+damaged] != 1 || count["data/"+lost] == 0 {
		t.Fatalf("problems %+v: want index/%s once and data/%s", cs.Problems, damaged, lost)
	}
	target := e.path("restore")
	e.mustRun("restore", snaps[0], "--target", target)
	sameFiles(t, srcs[0], target+srcs[0])
}
