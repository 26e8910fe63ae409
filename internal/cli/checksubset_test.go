package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckReadDataSubset damages every data pack, then checks that two
// runs of check --read-data-subset 50% between them read every pack and
// name every damaged one, and that bad subsets are refused.
func TestCheckReadDataSubset(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 1<<20)
	e = e.with("XDG_CACHE_HOME", e.path("cache"))
	files := map[string][]byte{}
	for i := range 8 {
		files[fmt.Sprintf("f%d", i)] = randomBytes(uint64(300+i), 300<<10)
	}
	src := e.path("src")
	writeFiles(t, src, files)
	e.mustRun("backup", src)

	l := readLayout(t, e.path("repo"))
	if len(l.dataPacks) < 2 {
		t.Fatalf("want at least 2 data packs, got %d", len(l.dataPacks))
	}
	// Flip a byte inside the first blob of every data pack: the headers
	// and the index stay intact, so only reading the data finds it.
	damaged := map[string]bool{}
	for _, p := range l.dataPacks {
		f := e.path("repo", "data", p.String()[:2], p.String())
		if err := os.Chmod(f, 0o600); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b[l.blobsIn(p)[0].Offset+16] ^= 0xff
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		damaged["data/"+p.String()] = true
	}
	e.mustRun("check") // the structure is sound

	found := map[string]bool{}
	packs, read := 0, 0
	for run := 1; run <= 2; run++ {
		r := e.run("check", "--read-data-subset", "50%", "--json")
		if r.code != ExitOK && r.code != ExitFatal {
			t.Fatalf("run %d: %v", run, r)
		}
		lines := jsonLines(t, r)
		if len(lines) != 1 {
			t.Fatalf("run %d: %d JSON lines: %v", run, len(lines), r)
		}
		var cs jsonCheckSummary
		checkDoc(t, "check.summary", lines[0].raw, &cs)
		if cs.Subset != "50%" || cs.OK != (len(cs.Problems) == 0) || (r.code == ExitOK) != cs.OK {
			t.Errorf("run %d: subset %q ok %v exit %d problems %v", run, cs.Subset, cs.OK, r.code, cs.Problems)
		}
		packs = cs.Packs
		if want := (cs.Packs + 1) / 2; cs.PacksRead != want {
			t.Errorf("run %d: read %d packs of %d, want %d", run, cs.PacksRead, cs.Packs, want)
		}
		read += cs.PacksRead
		for _, p := range cs.Problems {
			if !damaged[p.Object] {
				t.Errorf("run %d: problem with intact %s: %s", run, p.Object, p.Error)
			}
			found[p.Object] = true
		}
	}
	if read < packs {
		t.Errorf("two runs read %d packs of %d", read, packs)
	}
	for p := range damaged {
		if !found[p] {
			t.Errorf("two 50%% runs never read the damaged %s", p)
		}
	}
	// The position is kept in the cache, not the repository.
	pos, err := filepath.Glob(e.path("cache", "rewind", "*", "check-position"))
	if err != nil || len(pos) != 1 {
		t.Errorf("position files %v, %v", pos, err)
	}

	// N/M human output names the slice.
	r := e.run("check", "--read-data-subset", "1/1")
	if r.code != ExitFatal || !strings.Contains(string(r.stdout), "subset 1/1") {
		t.Errorf("check --read-data-subset 1/1: %v", r)
	}

	for _, bad := range []string{"0/3", "4/3", "0%", "101%", "abc"} {
		r := e.expectCode(ExitFatal, "check", "--read-data-subset", bad)
		if !strings.Contains(string(r.stderr), "invalid subset") || len(r.stdout) != 0 {
			t.Errorf("--read-data-subset %s: unclear error: %v", bad, r)
		}
	}
	e.expectCode(ExitFatal, "check", "--read-data", "--read-data-subset", "1/2")
}
