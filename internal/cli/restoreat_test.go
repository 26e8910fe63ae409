package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// moment is a state of a source directory and a time at which the
// repository's newest snapshot holds it.
type moment struct {
	at    time.Time
	files map[string][]byte
}

// backupMoment backs up dir, records the moment, and waits until the next
// whole second, so that a time written to the second (which covers the
// whole second) names this state alone.
func backupMoment(t *testing.T, e *env, dir string) moment {
	t.Helper()
	e.mustRun("backup", dir)
	m := moment{at: time.Now(), files: readFiles(t, dir)}
	time.Sleep(time.Until(m.at.Truncate(time.Second).Add(time.Second + 20*time.Millisecond)))
	return m
}

// sameAsMoment fails the test unless dir holds exactly the regular files
// of want, byte for byte.
func sameAsMoment(t *testing.T, what string, want map[string][]byte, dir string) {
	t.Helper()
	got := readFiles(t, dir)
	for name, data := range want {
		if g, ok := got[name]; !ok {
			t.Errorf("%s: %s is missing", what, name)
		} else if !bytes.Equal(g, data) {
			t.Errorf("%s: %s differs (%d bytes, want %d)", what, name, len(g), len(data))
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: %s should not be there", what, name)
		}
	}
}

func removeAll(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRestoreAtEveryVersion: every version is retrievable at its time.
// Files are created, changed, renamed and deleted across real backups;
// then each recorded moment is restored with --at, as an exact RFC 3339
// time and as a local time to the second, and compared bit for bit.
func TestRestoreAtEveryVersion(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 0)
	src := e.path("src")
	var moments []moment

	writeFiles(t, src, map[string][]byte{
		"a.txt": []byte("first\n"), "dir/b.bin": randomBytes(1, 200<<10), "c.txt": []byte("c\n"),
	})
	moments = append(moments, backupMoment(t, e, src))

	writeFiles(t, src, map[string][]byte{"a.txt": []byte("second\n"), "dir/b.bin": append(randomBytes(1, 200<<10), randomBytes(2, 10<<10)...)})
	moments = append(moments, backupMoment(t, e, src))

	if err := os.Rename(filepath.Join(src, "c.txt"), filepath.Join(src, "dir", "c-renamed.txt")); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, src, map[string][]byte{"d.txt": []byte("new\n")})
	moments = append(moments, backupMoment(t, e, src))

	removeAll(t, filepath.Join(src, "dir", "b.bin"), filepath.Join(src, "a.txt"))
	moments = append(moments, backupMoment(t, e, src))

	writeFiles(t, src, map[string][]byte{"a.txt": []byte("third, after being deleted\n")})
	moments = append(moments, backupMoment(t, e, src))
	// The live directory moves on; restores must not see it.
	writeFiles(t, src, map[string][]byte{"a.txt": []byte("not backed up\n")})

	for i, m := range moments {
		for _, at := range []string{m.at.UTC().Format(time.RFC3339Nano), m.at.UTC().Format("2006-01-02 15:04:05")} {
			target := e.path("restore", strings.NewReplacer(" ", "_", ":", "-").Replace(at))
			r := e.mustRun("restore", "--at", at, src, "--target", target)
			if !strings.Contains(string(r.stderr), src+" at ") {
				t.Errorf("restore --at does not say which snapshot it used: %v", r)
			}
			sameAsMoment(t, "moment "+string(rune('0'+i))+" at "+at, m.files, target)
		}
	}

	// One file, and whole snapshots (no PATH).
	target := e.path("one-file")
	e.mustRun("restore", "--at", moments[1].at.Format(time.RFC3339Nano), filepath.Join(src, "a.txt"), "--target", target)
	if b, err := os.ReadFile(filepath.Join(target, "a.txt")); err != nil || string(b) != "second\n" {
		t.Errorf("one file restored --at: %q, %v", b, err)
	}
	target = e.path("whole")
	e.mustRun("restore", "--at", moments[2].at.Format(time.RFC3339Nano), "--target", target)
	sameAsMoment(t, "whole snapshot", moments[2].files, target+src)

	// A relative time: -0s is now, the newest state.
	target = e.path("relative")
	e.mustRun("restore", "--at", "-0s", src, "--target", target)
	sameAsMoment(t, "-0s", moments[len(moments)-1].files, target)

	// A file deleted at the time; a time before every snapshot; a host
	// without snapshots.
	r := e.expectCode(ExitFatal, "restore", "--at", moments[3].at.Format(time.RFC3339Nano), filepath.Join(src, "a.txt"), "--target", e.path("x1"))
	if !strings.Contains(string(r.stderr), "did not exist at") {
		t.Errorf("restore of a deleted file: %v", r)
	}
	r = e.expectCode(ExitFatal, "restore", "--at", "-1h", src, "--target", e.path("x2"))
	if !strings.Contains(string(r.stderr), "had finished by") || !strings.Contains(string(r.stderr), "the oldest shows things as of") {
		t.Errorf("restore before the first snapshot: %v", r)
	}
	r = e.expectCode(ExitFatal, "restore", "--at", "-0s", "--host", "elsewhere", src, "--target", e.path("x3"))
	if !strings.Contains(string(r.stderr), "on host elsewhere") {
		t.Errorf("restore --at of another host: %v", r)
	}
	r = e.expectCode(ExitFatal, "restore", "--at", "last tuesday", src, "--target", e.path("x4"))
	if !strings.Contains(string(r.stderr), "not a time") {
		t.Errorf("restore --at with a bad time: %v", r)
	}
	e.expectCode(ExitFatal, "restore", "--target", e.path("x5"))
	for _, x := range []string{"x1", "x2", "x3", "x4", "x5"} {
		if _, err := os.Stat(e.path(x)); !os.IsNotExist(err) {
			t.Errorf("a failed restore created its target %s", x)
		}
	}
}

// TestDiffAt: diff PATH --at shows the changed lines of a text file and
// the changed entries of a directory, between two moments or against the
// disk.
func TestDiffAt(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 0)
	src := e.path("src")
	conf, dir := filepath.Join(src, "conf.txt"), filepath.Join(src, "dir")
	writeFiles(t, src, map[string][]byte{"conf.txt": []byte("a\nb\nc\n"), "dir/x": []byte("x"), "dir/y": []byte("y")})
	e.mustRun("backup", src)
	m1 := time.Now().Format(time.RFC3339Nano)
	writeFiles(t, src, map[string][]byte{"conf.txt": []byte("a\nB\nc\nd\n"), "dir/y": []byte("yy"), "dir/z": []byte("z")})
	removeAll(t, filepath.Join(dir, "x"))
	e.mustRun("backup", src)
	m2 := time.Now().Format(time.RFC3339Nano)
	writeFiles(t, src, map[string][]byte{"conf.txt": []byte("a\nB\nc\nd\ne\n"), "dir/w": []byte("w")})

	out := string(e.mustRun("diff", conf, "--at", m1, "--at", m2).stdout)
	if !strings.HasPrefix(out, "--- "+conf+"\t") || !strings.Contains(out, "\n+++ "+conf+"\t") ||
		!strings.HasSuffix(out, "@@ -1,3 +1,4 @@\n a\n-b\n+B\n c\n+d\n") {
		t.Errorf("diff of a file between two moments:\n%s", out)
	}
	out = string(e.mustRun("diff", conf, "--at", m2).stdout)
	if !strings.Contains(out, "+++ "+conf+"\tnow (on disk)\n") || !strings.HasSuffix(out, "@@ -2,3 +2,4 @@\n B\n c\n d\n+e\n") {
		t.Errorf("diff of a file with the disk:\n%s", out)
	}

	got := lines(e.mustRun("diff", dir, "--at", m1, "--at", m2).stdout)
	want := []string{"-  " + dir + "/x", "M  " + dir + "/y", "+  " + dir + "/z", "1 added, 1 removed, 1 changed, 0 metadata only"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("diff of a directory between two moments:\n%q\nwant\n%q", got, want)
	}
	got = lines(e.mustRun("diff", dir, "--at", m2).stdout)
	want = []string{"+  " + dir + "/w", "1 added, 0 removed, 0 changed, 0 metadata only"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("diff of a directory with the disk:\n%q\nwant\n%q", got, want)
	}

	// --json gives the change events of the schema, for files too.
	mods := map[string]string{}
	for _, l := range jsonLines(t, e.mustRun("diff", "--json", dir, "--at", m1, "--at", m2)) {
		switch l.obj["message_type"] {
		case "change":
			var c jsonChange
			checkDoc(t, "diff.change", l.raw, &c)
			mods[c.Path] = c.Modifier
		case "statistics":
			var s jsonDiffStatistics
			checkDoc(t, "diff.statistics", l.raw, &s)
		}
	}
	if mods[dir+"/x"] != "-" || mods[dir+"/y"] != "M" || mods[dir+"/z"] != "+" {
		t.Errorf("diff --json: %v", mods)
	}
	jl := jsonLines(t, e.mustRun("diff", "--json", conf, "--at", m1))
	if len(jl) != 2 || jl[0].obj["modifier"] != "M" || jl[0].obj["path"] != conf {
		t.Errorf("diff --json of a file: %s", e.mustRun("diff", "--json", conf, "--at", m1).stdout)
	}

	// A moment before the file existed: everything is added.
	writeFiles(t, src, map[string][]byte{"late.txt": []byte("l1\nl2\n")})
	e.mustRun("backup", src)
	out = string(e.mustRun("diff", filepath.Join(src, "late.txt"), "--at", m1, "--at", "now").stdout)
	if !strings.HasPrefix(out, "--- /dev/null\n") || !strings.HasSuffix(out, "@@ -0,0 +1,2 @@\n+l1\n+l2\n") {
		t.Errorf("diff of a file that did not exist at the first moment:\n%s", out)
	}

	// The snapshot form still works, and the forms do not mix.
	var sns []jsonSnapshot
	decodeStrict(t, e.mustRun("snapshots", "--json").stdout, &sns)
	got = lines(e.mustRun("diff", sns[0].ShortID+":"+dir, sns[1].ShortID+":"+dir).stdout)
	if len(got) != 4 || got[0] != "-  "+dir+"/x" {
		t.Errorf("diff SNAPSHOT SNAPSHOT: %q", got)
	}
	e.expectCode(ExitFatal, "diff", sns[0].ShortID, sns[1].ShortID, "--at", m1)
	e.expectCode(ExitFatal, "diff", conf, "--at", m1, "--at", m2, "--at", m2)
	e.expectCode(ExitFatal, "diff", conf)
}
