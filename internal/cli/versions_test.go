package cli

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

type jsonFileVersion struct {
	Time       time.Time   `json:"time"`
	LastSeen   time.Time   `json:"last_seen"`
	SnapshotID string      `json:"snapshot_id"`
	Snapshots  int         `json:"snapshots"`
	State      string      `json:"state"`
	Change     string      `json:"change"`
	Type       string      `json:"type"`
	Size       *uint64     `json:"size"`
	Entries    *int        `json:"entries"`
	MTime      *time.Time  `json:"mtime"`
	Labels     []jsonLabel `json:"labels"`
}

func init() { schemaTypes["versions.version"] = reflect.TypeFor[jsonFileVersion]() }

func versionsJSON(t *testing.T, e *env, p string) []jsonFileVersion {
	t.Helper()
	var vs []jsonFileVersion
	checkDoc(t, "versions.version", e.mustRun("versions", "--json", p).stdout, &vs)
	return vs
}

// TestVersions: versions folds consecutive snapshots in which a file did
// not change, shows the time it was deleted as absent, and shows labels.
func TestVersions(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 0)
	src := e.path("src")
	f := filepath.Join(src, "f.txt")
	writeFiles(t, src, map[string][]byte{"f.txt": []byte("one\n"), "g.txt": []byte("g")})
	for range 3 {
		e.mustRun("backup", src)
	}
	e.mustRun("mark", "before edit", "--note", "about to change f")
	writeFiles(t, src, map[string][]byte{"f.txt": []byte("two, longer\n")})
	e.mustRun("backup", src)
	// A backup of something else says nothing about f.
	writeFiles(t, e.path("other"), map[string][]byte{"f.txt": []byte("other")})
	e.mustRun("backup", e.path("other"))
	removeAll(t, f)
	e.mustRun("backup", src)
	e.mustRun("backup", src)
	writeFiles(t, src, map[string][]byte{"f.txt": []byte("three\n")})
	e.mustRun("backup", src)

	vs := versionsJSON(t, e, f)
	type row struct {
		state, change string
		snapshots     int
		size          uint64
	}
	want := []row{{"present", "first", 3, 4}, {"present", "content", 1, 12}, {"absent", "deleted", 2, 0}, {"present", "created", 1, 6}}
	if len(vs) != len(want) {
		t.Fatalf("%d versions, want %d: %+v", len(vs), len(want), vs)
	}
	var sns []jsonSnapshot
	decodeStrict(t, e.mustRun("snapshots", "--json", "--path", src).stdout, &sns)
	for i, w := range want {
		v := vs[i]
		size := uint64(0)
		if v.Size != nil {
			size = *v.Size
		}
		if v.State != w.state || v.Change != w.change || v.Snapshots != w.snapshots || size != w.size {
			t.Errorf("version %d: %s %s, %d snapshots, %d bytes; want %+v", i, v.State, v.Change, v.Snapshots, size, w)
		}
		if (v.State == "present") != (v.Type == "file" && v.Size != nil && v.MTime != nil) || v.Entries != nil {
			t.Errorf("version %d: type %q, size %v, mtime %v, entries %v", i, v.Type, v.Size, v.MTime, v.Entries)
		}
	}
	if vs[0].SnapshotID != sns[0].ID || !vs[0].Time.Equal(sns[0].Summary.BackupEnd) || !vs[0].LastSeen.Equal(sns[2].Summary.BackupEnd) || vs[2].SnapshotID != sns[4].ID {
		t.Errorf("versions name the wrong snapshots: %+v", vs)
	}
	if l := vs[0].Labels; len(l) != 1 || l[0].Label != "before edit" || l[0].Note != "about to change f" {
		t.Errorf("the label is not on the version in force at its time: %+v", vs)
	}
	for _, v := range vs[1:] {
		if len(v.Labels) != 0 {
			t.Errorf("label on the wrong version: %+v", v)
		}
	}

	out := string(e.mustRun("versions", f).stdout)
	for _, s := range []string{f + " on host ", "4 versions in 7 snapshots", "first", ": about to change f"} {
		if !strings.Contains(out, s) {
			t.Errorf("versions output lacks %q:\n%s", s, out)
		}
	}
	for _, re := range []string{`(?m)^\S+ \S+  [0-9a-f]{8}  deleted +absent +\d+`, `(?m) 3  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d`, `(?m)^\S+ \S+ +label +"before edit": about`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("versions output does not match %s:\n%s", re, out)
		}
	}

	// The directory: f's changes are its changes; entries are counted.
	dvs := versionsJSON(t, e, src)
	if len(dvs) != 4 || dvs[0].Entries == nil || *dvs[0].Entries != 2 || *dvs[2].Entries != 1 || dvs[0].Type != "dir" || dvs[0].Size != nil {
		t.Errorf("versions of the directory: %+v", dvs)
	}

	// A relative PATH is taken from the working directory.
	c := e.cmd("versions", "--json", "f.txt")
	c.Dir = src
	var rel []jsonFileVersion
	checkDoc(t, "versions.version", e.exec(c).stdout, &rel)
	if len(rel) != 4 {
		t.Errorf("versions of a relative path: %d versions", len(rel))
	}

	r := e.expectCode(ExitFatal, "versions", filepath.Join(e.dir, "never"))
	if !strings.Contains(string(r.stderr), "no snapshot holds") {
		t.Errorf("versions of a path never backed up: %v", r)
	}
	if _, err := os.Stat(f); err != nil {
		t.Fatal(err)
	}
}
