package cli

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

type jsonForgetGroupKey struct {
	Host  string   `json:"hostname"`
	Paths []string `json:"paths"`
	Tags  []string `json:"tags"`
}

type jsonForgetKeep struct {
	ID      string    `json:"id"`
	ShortID string    `json:"short_id"`
	Time    time.Time `json:"time"`
	Reasons []string  `json:"reasons"`
}

type jsonForgetRemove struct {
	ID         string    `json:"id"`
	ShortID    string    `json:"short_id"`
	Time       time.Time `json:"time"`
	Unreadable string    `json:"unreadable"`
}

type jsonForgetGroup struct {
	Group  jsonForgetGroupKey `json:"group"`
	Keep   []jsonForgetKeep   `json:"keep"`
	Remove []jsonForgetRemove `json:"remove"`
}

// The forget schema is registered here, next to its command's test, so
// that TestJSONDocsMatchStrictStructs checks it against docs/JSON.md.
func init() { schemaTypes["forget.group"] = reflect.TypeFor[jsonForgetGroup]() }

// snapshotFiles lists the names in the repository's snapshots folder.
func snapshotFiles(t *testing.T, e *env) []string {
	t.Helper()
	ents, err := os.ReadDir(e.path("repo", "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range ents {
		out = append(out, d.Name())
	}
	slices.Sort(out)
	return out
}

func TestForget(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 0)
	src := e.path("src")
	files := map[string][]byte{"a.txt": []byte("alpha"), "dir/b.bin": randomBytes(1, 100<<10)}
	for i := range 5 {
		files["n.txt"] = []byte(strings.Repeat("x", i+1))
		writeFiles(t, src, files)
		e.mustRun("backup", src)
	}
	var sns []jsonSnapshot
	decodeStrict(t, e.mustRun("snapshots", "--json").stdout, &sns)
	if len(sns) != 5 || len(snapshotFiles(t, e)) != 5 {
		t.Fatalf("%d snapshots listed, %d files", len(sns), len(snapshotFiles(t, e)))
	}
	ids := func(s []jsonSnapshot) []string {
		var out []string
		for _, sn := range s {
			out = append(out, sn.ID)
		}
		return out
	}
	oldest3, newest2 := ids(sns[:3]), ids(sns[3:])

	t.Run("no policy", func(t *testing.T) {
		r := e.expectCode(ExitFatal, "forget")
		if !strings.Contains(string(r.stderr), "refusing to forget everything: give at least one --keep-* option") {
			t.Errorf("no clear message: %v", r)
		}
		r = e.expectCode(ExitFatal, "forget", "--keep-last", "1", sns[0].ShortID)
		if !strings.Contains(string(r.stderr), "not both") {
			t.Errorf("IDs with a policy: %v", r)
		}
		e.expectCode(ExitFatal, "forget", "--keep-within", "6m")
		e.expectCode(ExitFatal, "forget", "--keep-last", "1", "--group-by", "user")
		if n := len(snapshotFiles(t, e)); n != 5 {
			t.Fatalf("%d snapshot files left after refused forgets", n)
		}
	})
	if t.Failed() {
		return
	}

	r := e.mustRun("forget", "--keep-last", "2", "--dry-run", "--json")
	var groups []jsonForgetGroup
	checkDoc(t, "forget.group", r.stdout, &groups)
	if len(groups) != 1 {
		t.Fatalf("dry run: %d groups, want 1:\n%s", len(groups), r.stdout)
	}
	gr := groups[0]
	if gr.Group.Host != sns[0].Hostname || !slices.Equal(gr.Group.Paths, []string{src}) || gr.Group.Tags != nil {
		t.Errorf("group key %+v", gr.Group)
	}
	var kept, removed []string
	for _, k := range gr.Keep {
		kept = append(kept, k.ID)
		if !slices.Equal(k.Reasons, []string{"last snapshot"}) {
			t.Errorf("%s kept for %q", k.ShortID, k.Reasons)
		}
	}
	for _, x := range gr.Remove {
		removed = append(removed, x.ID)
	}
	if !slices.Equal(kept, newest2) || !slices.Equal(removed, oldest3) {
		t.Errorf("dry run keeps %q and removes %q, want %q and %q", kept, removed, newest2, oldest3)
	}
	if n := len(snapshotFiles(t, e)); n != 5 {
		t.Fatalf("the dry run removed snapshots: %d left", n)
	}
	r = e.mustRun("forget", "--keep-last", "2", "--dry-run")
	if out := string(r.stdout); !strings.Contains(out, "would remove 3 snapshots") || !strings.Contains(out, "last snapshot") {
		t.Errorf("dry run output:\n%s", out)
	}

	r = e.mustRun("forget", "--keep-last", "2")
	if out := string(r.stdout); !strings.Contains(out, "removed 3 snapshots") || strings.Contains(out, "would") {
		t.Errorf("forget output:\n%s", out)
	}
	if got, want := snapshotFiles(t, e), slices.Sorted(slices.Values(newest2)); !slices.Equal(got, want) {
		t.Errorf("snapshot files left: %q, want %q", got, want)
	}
	var left []jsonSnapshot
	decodeStrict(t, e.mustRun("snapshots", "--json").stdout, &left)
	if !slices.Equal(ids(left), newest2) {
		t.Errorf("snapshots lists %q, want %q", ids(left), newest2)
	}
	e.mustRun("check")
	target := e.path("restore")
	e.mustRun("restore", "latest", "--target", target)
	sameFiles(t, src, target+src)

	// A second forget with the same policy has nothing left to do.
	r = e.mustRun("forget", "--keep-last", "2", "--json")
	checkDoc(t, "forget.group", r.stdout, &groups)
	if len(groups) != 1 || len(groups[0].Remove) != 0 || len(groups[0].Keep) != 2 {
		t.Errorf("second forget: %s", r.stdout)
	}

	// Snapshots named by ID prefix are removed whatever the policy.
	r = e.mustRun("forget", "--json", left[0].ShortID)
	checkDoc(t, "forget.group", r.stdout, &groups)
	if len(groups) != 1 || len(groups[0].Remove) != 1 || groups[0].Remove[0].ID != left[0].ID || len(groups[0].Keep) != 0 {
		t.Errorf("forget by ID: %s", r.stdout)
	}
	if got := snapshotFiles(t, e); !slices.Equal(got, newest2[1:]) {
		t.Errorf("snapshot files left: %q, want %q", got, newest2[1:])
	}
	e.expectCode(ExitFatal, "forget", "ffffffffffff")
	e.mustRun("check")
}

func TestParseRetention(t *testing.T) {
	t.Parallel()
	const day = 24 * time.Hour
	for in, want := range map[string]time.Duration{
		"7d":     7 * day,
		"2w":     14 * day,
		"1y2m":   365*day + 60*day,
		"1w12h":  7*day + 12*time.Hour,
		"0d6m":   180 * day,
		"36h":    36 * time.Hour,
		"90m0s":  90 * time.Minute,
		"1h30m":  90 * time.Minute,
		"1.5h":   90 * time.Minute,
		"10y10d": 3660 * day,
	} {
		got, err := parseRetention(in)
		if err != nil || got != want {
			t.Errorf("parseRetention(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "6m", "0d", "-1h", "7x", "d", "99999999999y", "1y-2d"} {
		if d, err := parseRetention(in); err == nil {
			t.Errorf("parseRetention(%q) = %v, want an error", in, d)
		}
	}
}
