package cli

import (
	"bytes"
	"crypto/sha256"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// entryState is what a test sees of one entry of a target tree.
type entryState struct {
	typ          fs.FileMode
	mode         uint32
	size         int64
	ino          uint64
	mtime, ctime syscall.Timespec
	sum          [32]byte // content of a regular file, or a symlink's target
}

// treeState records every entry below root (root itself as "."), or nil
// when root does not exist.
func treeState(t *testing.T, root string) map[string]entryState {
	t.Helper()
	if _, err := os.Lstat(root); os.IsNotExist(err) {
		return nil
	}
	out := map[string]entryState{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		e := entryState{typ: d.Type(), mode: st.Mode, size: st.Size, ino: st.Ino, mtime: st.Mtim, ctime: st.Ctim}
		switch d.Type() {
		case 0:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e.sum = sha256.Sum256(b)
		case fs.ModeSymlink:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			e.sum = sha256.Sum256([]byte(l))
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// observedChanges is what a restore did to the tree, in the actions of
// restore --dry-run: by path below the target, the sorted actions. An
// entry that is there before and after, the same, is "unchanged": either
// the restore left it alone or it did not concern the restore.
func observedChanges(before, after map[string]entryState) map[string][]string {
	out := map[string][]string{}
	add := func(p, a string) { out[p] = append(out[p], a) }
	for p, b := range before {
		a, ok := after[p]
		switch {
		case !ok:
			add(p, "remove")
		case a.typ != b.typ:
			add(p, "remove")
			add(p, "new")
		case a.ino != b.ino, a.sum != b.sum:
			add(p, "rewrite")
		default:
			add(p, "unchanged")
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			add(p, "new")
		}
	}
	for _, a := range out {
		slices.Sort(a)
	}
	return out
}

// dryRun runs restore --dry-run --json with args and returns its
// decisions by path below the target (base is the snapshot path that the
// target stands for), and its summaries.
func dryRun(t *testing.T, e *env, base string, code int, args ...string) (map[string][]string, []jsonRestoreSummary) {
	t.Helper()
	r := e.expectCode(code, append([]string{"restore", "--json", "--dry-run"}, args...)...)
	plan := map[string][]string{}
	var sums []jsonRestoreSummary
	for _, l := range jsonLines(t, r) {
		switch l.obj["message_type"] {
		case "dry_run":
			var d jsonRestoreDryRun
			checkDoc(t, "restore.dryrun", l.raw, &d)
			rel := strings.TrimPrefix(strings.TrimPrefix(d.Path, base), "/")
			if rel == "" {
				rel = "."
			}
			plan[rel] = append(plan[rel], d.Action)
			slices.Sort(plan[rel])
		case "summary":
			var s jsonRestoreSummary
			checkDoc(t, "restore.summary", l.raw, &s)
			if !s.DryRun || s.BytesPerSecond != 0 {
				t.Errorf("dry-run summary without dry_run, or with a throughput: %s", l.raw)
			}
			sums = append(sums, s)
		case "status":
		default:
			t.Errorf("restore --dry-run --json: undocumented line %s", l.raw)
		}
	}
	if len(sums) == 0 {
		t.Fatalf("restore --dry-run printed no summary: %v", r)
	}
	return plan, sums
}

// sameCounts compares what a dry run predicted with what the restore did.
func sameCounts(t *testing.T, what string, dry, real []jsonRestoreSummary) {
	t.Helper()
	type counts struct{ files, dirs, other, bytes, unchanged, removed, errors int64 }
	sum := func(ss []jsonRestoreSummary) (c counts) {
		for _, s := range ss {
			c.files += s.FilesRestored
			c.dirs += s.DirsRestored
			c.other += s.OtherRestored
			c.bytes += s.BytesRestored
			c.unchanged += s.FilesUnchanged
			c.removed += s.EntriesRemoved
			c.errors += int64(len(s.Errors))
		}
		return c
	}
	if d, r := sum(dry), sum(real); d != r {
		t.Errorf("%s: dry run predicted %+v, the restore did %+v", what, d, r)
	}
	for _, s := range real {
		if s.DryRun {
			t.Errorf("%s: a real restore's summary says dry_run", what)
		}
	}
}

// restoreSummaries runs a real restore --json and returns its summaries.
func restoreSummaries(t *testing.T, e *env, code int, args ...string) []jsonRestoreSummary {
	t.Helper()
	var out []jsonRestoreSummary
	for _, l := range jsonLines(t, e.expectCode(code, append([]string{"restore", "--json"}, args...)...)) {
		if l.obj["message_type"] == "summary" {
			var s jsonRestoreSummary
			checkDoc(t, "restore.summary", l.raw, &s)
			out = append(out, s)
		}
	}
	return out
}

// predictExactly runs restore --dry-run with args into target, checks
// that it changed nothing, then runs the restore and checks that the dry
// run named exactly what it changed, with the same counts and exit status
// (code).
func predictExactly(t *testing.T, e *env, what, base, target string, code int, args ...string) map[string][]string {
	t.Helper()
	args = append(args, "--target", target)
	before := treeState(t, target)
	plan, dry := dryRun(t, e, base, code, args...)
	if after := treeState(t, target); !maps.Equal(before, after) {
		t.Fatalf("%s: the dry run changed the target:\nbefore %v\nafter  %v", what, before, after)
	}
	real := restoreSummaries(t, e, code, args...)
	sameCounts(t, what, dry, real)
	got := observedChanges(before, treeState(t, target))
	paths := slices.Sorted(maps.Keys(got))
	for p := range plan {
		if _, ok := got[p]; !ok {
			paths = append(paths, p)
		}
	}
	for _, p := range paths {
		if _, ok := plan[p]; !ok && slices.Equal(got[p], []string{"unchanged"}) {
			continue // not the restore's concern, and left alone
		}
		if slices.Equal(plan[p], []string{"not_backed_up"}) && (got[p] == nil || slices.Equal(got[p], []string{"unchanged"})) {
			continue // nothing written, and what was there left alone
		}
		if e, ok := before[p]; ok && e.typ != 0 && !e.typ.IsDir() && slices.Equal(got[p], []string{"unchanged"}) && slices.Equal(plan[p], []string{"rewrite"}) {
			// A symlink or FIFO is made anew; the filesystem may give the
			// new one the inode number the old one just freed, and then
			// nothing shows that it was replaced.
			continue
		}
		if !slices.Equal(plan[p], got[p]) {
			t.Errorf("%s: %s: dry run said %v, the restore did %v", what, p, plan[p], got[p])
		}
	}
	return plan
}

// expectPlan checks some decisions of a dry run, so that a dry run and
// a restore that both did nothing cannot pass.
func expectPlan(t *testing.T, what string, plan map[string][]string, want map[string]string) {
	t.Helper()
	for p, acts := range want {
		if got := strings.Join(plan[p], " "); got != acts {
			t.Errorf("%s: %s: dry run said %q, want %q", what, p, got, acts)
		}
	}
}

// TestRestoreDryRunPredicts: restore --dry-run changes nothing in the
// target (names, types, sizes, times, inodes, content), and names exactly
// what the restore that follows does, entry by entry and in its counts:
// into a missing target; over a target with files to keep, files to
// rewrite, entries of another type in the way, and extra entries with
// --delete; without PATH for restore --at.
func TestRestoreDryRunPredicts(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 0)
	src := e.path("src")
	big := randomBytes(31, 300<<10)
	writeFiles(t, src, map[string][]byte{
		"keep.txt":        []byte("the same on both sides\n"),
		"big.bin":         big,
		"grow.txt":        []byte("longer in the snapshot than in the target\n"),
		"tree/a/one.txt":  []byte("one\n"),
		"tree/a/two.txt":  []byte("two\n"),
		"tree/b/deep.txt": []byte("deep\n"),
		"wasdir":          []byte("a file where the target has a directory\n"),
		"fresh/new.txt":   []byte("nothing like it in the target\n"),
		"same/kept.txt":   []byte("a directory that exists with its file\n"),
		"linked/first":    []byte("one inode, two names\n"),
	})
	if err := os.Link(filepath.Join(src, "linked", "first"), filepath.Join(src, "linked", "second")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("keep.txt", filepath.Join(src, "to-keep")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(src, "pipe"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.mustRun("backup", src)
	at := time.Now().UTC().Format(time.RFC3339Nano)
	snap := "latest:" + src

	// A target that does not exist: everything is new, and the target
	// itself would be created.
	plan := predictExactly(t, e, "missing target", src, e.path("t", "missing"), 0, snap)
	expectPlan(t, "missing target", plan, map[string]string{
		".": "new", "tree/b": "new", "tree/b/deep.txt": "new", "big.bin": "new", "linked/second": "new", "pipe": "new",
	})

	// A target holding something of everything.
	target := e.path("t", "over")
	changed := append([]byte(nil), big...)
	changed[200<<10] ^= 0xff
	writeFiles(t, target, map[string][]byte{
		"keep.txt":            []byte("the same on both sides\n"),
		"big.bin":             changed,
		"grow.txt":            []byte("shorter\n"),
		"tree":                []byte("a file where the snapshot has a directory with content\n"),
		"wasdir/inside.txt":   []byte("below a directory where the snapshot has a file\n"),
		"wasdir/sub/more.txt": []byte("deeper\n"),
		"same/kept.txt":       []byte("a directory that exists with its file\n"),
		"same/extra.txt":      []byte("not in the snapshot\n"),
		"gone/x":              []byte("a directory the snapshot lacks\n"),
		"gone.txt":            []byte("a file the snapshot lacks\n"),
		"pipe/f":              []byte("a directory where the snapshot has a FIFO\n"),
		"kept/note":           []byte("beside a socket, which --delete leaves alone with its directory\n"),
	})
	if err := os.Symlink("elsewhere", filepath.Join(target, "to-keep")); err != nil {
		t.Fatal(err)
	}
	// A symlink where the snapshot has a directory: removed, not followed.
	if err := os.Symlink(e.path("t"), filepath.Join(target, "fresh")); err != nil {
		t.Fatal(err)
	}
	bindSocket(t, filepath.Join(target, "kept", "sock"))
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	for _, p := range []string{"big.bin", "grow.txt"} {
		if err := os.Chtimes(filepath.Join(target, p), old, old); err != nil {
			t.Fatal(err)
		}
	}
	// Without --overwrite, the dry run refuses as the restore does, and
	// still changes nothing.
	before := treeState(t, target)
	e.expectCode(ExitFatal, "restore", "--dry-run", snap, "--target", target)
	if !maps.Equal(before, treeState(t, target)) {
		t.Fatal("a refused dry run changed the target")
	}
	plan = predictExactly(t, e, "overwrite", src, target, 0, snap, "--overwrite")
	expectPlan(t, "overwrite", plan, map[string]string{
		"keep.txt": "unchanged", "big.bin": "rewrite", "grow.txt": "rewrite", "same": "unchanged",
		"tree": "new remove", "tree/a/one.txt": "new",
		"wasdir": "new remove", "wasdir/sub": "remove", "wasdir/sub/more.txt": "remove",
		"to-keep": "rewrite", "gone.txt": "", "same/extra.txt": "",
		"pipe": "new remove", "pipe/f": "remove", "fresh": "new remove", "fresh/new.txt": "new",
	})
	// Now only what the snapshot lacks differs: --delete removes it.
	writeFiles(t, target, map[string][]byte{"late/extra": []byte("x\n")})
	plan = predictExactly(t, e, "delete", src, target, 0, snap, "--delete")
	expectPlan(t, "delete", plan, map[string]string{
		"gone": "remove", "gone/x": "remove", "gone.txt": "remove", "same/extra.txt": "remove", "late/extra": "remove",
		"keep.txt": "unchanged", "big.bin": "unchanged", "tree": "unchanged",
		"kept": "", "kept/note": "remove", "kept/sock": "",
	})
	if _, err := os.Lstat(filepath.Join(target, "kept", "sock")); err != nil {
		t.Errorf("--delete removed a socket: %v", err)
	}
	// And a second time, everything is up to date; what is always made
	// anew (symlinks, FIFOs, both names of a hard-linked file, which is
	// replaced rather than written into) is rewritten.
	plan = predictExactly(t, e, "up to date", src, target, 0, snap, "--delete")
	for p, acts := range plan {
		want := "unchanged"
		if p == "to-keep" || p == "pipe" || strings.HasPrefix(p, "linked/") {
			want = "rewrite"
		}
		if strings.Join(acts, " ") != want {
			t.Errorf("a target restored already: %s: %v, want %s", p, acts, want)
		}
	}

	// restore --at without PATH: the snapshot's paths, absolute below a
	// missing target, and then over a target that has some of them.
	inAt := strings.TrimPrefix(src, "/")
	plan = predictExactly(t, e, "--at into a missing target", "/", e.path("t", "at"), 0, "--at", at)
	expectPlan(t, "--at into a missing target", plan, map[string]string{".": "new", inAt: "new", inAt + "/keep.txt": "new"})
	writeFiles(t, e.path("t", "at", src), map[string][]byte{"keep.txt": []byte("changed since\n"), "extra": []byte("x\n")})
	plan = predictExactly(t, e, "--at with --delete", "/", e.path("t", "at"), 0, "--at", at, "--delete")
	expectPlan(t, "--at with --delete", plan, map[string]string{inAt + "/keep.txt": "rewrite", inAt + "/extra": "remove", inAt + "/big.bin": "unchanged"})
}

// TestRestoreDryRunNotBackedUp: files the backup could not read are
// listed as not backed up by the dry run, which exits 3 as the restore
// does, into a new target and over one that holds other content at their
// paths (left alone by both). The -v listing marks them with "!".
func TestRestoreDryRunNotBackedUp(t *testing.T) {
	e := newRepo(t, 0)
	src := e.path("src")
	locked := unreadableSource(t, src)
	if r := asNobody(t, e, "backup", src); r.code != ExitPartial {
		t.Fatalf("backup as nobody: want exit 3, got %v", r)
	}
	snap := "latest:" + src
	plan := predictExactly(t, e, "new target", src, e.path("t", "new"), ExitPartial, snap)
	want := map[string]string{"open/plain.txt": "new", "deep/a/b/c": "new"}
	for _, name := range locked {
		want[name] = "not_backed_up"
	}
	expectPlan(t, "new target", plan, want)

	over := e.path("t", "over")
	writeFiles(t, over, map[string][]byte{"locked/small": []byte("what the target holds\n"), "deep/a/b/c/secret": nil})
	plan = predictExactly(t, e, "over a target", src, over, ExitPartial, snap, "--delete")
	want["deep/a/b/c"] = "unchanged"
	expectPlan(t, "over a target", plan, want)

	r := e.expectCode(ExitPartial, "restore", "-n", "-v", snap, "--target", e.path("t", "listed"))
	for _, name := range locked {
		if !bytes.Contains(r.stdout, []byte("! "+filepath.Join(src, name)+"\n")) {
			t.Errorf("restore -n -v does not mark %s as not backed up:\n%s", name, r.stdout)
		}
	}
	if _, err := os.Lstat(e.path("t", "listed")); !os.IsNotExist(err) {
		t.Errorf("restore -n created its target: %v", err)
	}
}

// bindSocket leaves a Unix socket at p.
func bindSocket(t *testing.T, p string) {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: p}); err != nil {
		t.Fatal(err)
	}
}
