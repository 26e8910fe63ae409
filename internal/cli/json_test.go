package cli

import (
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/rewind-backup/rewind/internal/repository"
)

// checkBackupJSON checks the output of `backup --json`: status and error
// events, then the summary as the last line. It returns the summary.
func checkBackupJSON(t *testing.T, r result) jsonBackupSummary {
	t.Helper()
	lines := jsonLines(t, r)
	if len(lines) == 0 {
		t.Fatalf("backup --json printed nothing: %v", r)
	}
	for _, l := range lines[:len(lines)-1] {
		switch l.obj["message_type"] {
		case "status":
			var s jsonStatus
			checkDoc(t, "status", l.raw, &s)
			if s.Action != "backup" {
				t.Errorf("backup status with action %q", s.Action)
			}
		case "error":
			checkDoc(t, "backup.error", l.raw, &jsonBackupError{})
		default:
			t.Errorf("backup --json: undocumented line %s", l.raw)
		}
	}
	var s jsonBackupSummary
	checkDoc(t, "backup.summary", lines[len(lines)-1].raw, &s)
	if s.MessageType != "summary" {
		t.Errorf("the last line of backup --json is a %q, want the summary", s.MessageType)
	}
	if s.FilesNew+s.FilesChanged+s.FilesUnchanged != s.TotalFiles {
		t.Errorf("files new %d + changed %d + unchanged %d != total %d", s.FilesNew, s.FilesChanged, s.FilesUnchanged, s.TotalFiles)
	}
	if s.BackupEnd.Before(s.BackupStart) || s.DurationSeconds < 0 {
		t.Errorf("backup ends before it starts: %v .. %v, %v s", s.BackupStart, s.BackupEnd, s.DurationSeconds)
	}
	return s
}

// checkRestoreJSON checks the output of `restore --json` and returns its
// summary.
func checkRestoreJSON(t *testing.T, r result) jsonRestoreSummary {
	t.Helper()
	lines := jsonLines(t, r)
	if len(lines) == 0 {
		t.Fatalf("restore --json printed nothing: %v", r)
	}
	for _, l := range lines[:len(lines)-1] {
		var s jsonStatus
		checkDoc(t, "status", l.raw, &s)
		if s.MessageType != "status" || s.Action != "restore" || s.Scanning {
			t.Errorf("restore --json: unexpected line %s", l.raw)
		}
	}
	var s jsonRestoreSummary
	checkDoc(t, "restore.summary", lines[len(lines)-1].raw, &s)
	if s.MessageType != "summary" {
		t.Errorf("the last line of restore --json is a %q, want the summary", s.MessageType)
	}
	return s
}

// TestJSONOutput runs every command that has --json output and checks it
// against docs/JSON.md and the strict structs, and its values against
// what the test did.
func TestJSONOutput(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 0)
	src := e.path("src")
	big := randomBytes(7, 200<<10)
	writeFiles(t, src, map[string][]byte{
		"a.txt":         []byte("alpha\n"),
		"dir/b.bin":     big,
		"dir/c.txt":     []byte("gamma\n"),
		"remove-me.txt": []byte("going\n"),
		"chmod-me.txt":  []byte("mode\n"),
	})
	if err := os.Symlink("a.txt", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(src, "sock")
	if err := syscall.Mknod(sock, syscall.S_IFSOCK|0o644, 0); err != nil {
		t.Fatal(err)
	}
	total := int64(len("alpha\n") + len(big) + len("gamma\n") + len("going\n") + len("mode\n"))

	// A first backup: everything new, the socket skipped.
	s1 := checkBackupJSON(t, e.mustRun("backup", "--json", "--tag", "first", src))
	if s1.Parent != "" || s1.FilesNew != 5 || s1.FilesChanged != 0 || s1.FilesUnchanged != 0 {
		t.Errorf("first backup: parent %q, files %d new, %d changed, %d unchanged; want none, 5, 0, 0",
			s1.Parent, s1.FilesNew, s1.FilesChanged, s1.FilesUnchanged)
	}
	if s1.TotalBytes != total || s1.BytesRead != total || s1.DataAdded < total || s1.DataAddedPacked <= 0 || s1.DataBlobs == 0 {
		t.Errorf("first backup: %d bytes processed, %d read, %d added (%d packed), %d data blobs; want %d, %d, at least %d",
			s1.TotalBytes, s1.BytesRead, s1.DataAdded, s1.DataAddedPacked, s1.DataBlobs, total, total, total)
	}
	if len(s1.Skipped) != 1 || s1.Skipped[0].Path != sock || len(s1.Errors) != 0 {
		t.Errorf("first backup: skipped %+v, errors %+v; want the socket skipped and no errors", s1.Skipped, s1.Errors)
	}

	// A second backup after adding, removing, changing and chmodding.
	writeFiles(t, src, map[string][]byte{"new.txt": []byte("new\n"), "dir/c.txt": []byte("GAMMA, changed\n")})
	if err := os.Remove(filepath.Join(src, "remove-me.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(src, "chmod-me.txt"), 0o600); err != nil {
		t.Fatal(err)
	}
	s2 := checkBackupJSON(t, e.mustRun("backup", "--json", src))
	if s2.Parent != s1.SnapshotID || s2.FilesNew != 1 || s2.FilesChanged != 2 || s2.FilesUnchanged != 2 {
		t.Errorf("second backup: parent %.8s, files %d new, %d changed, %d unchanged; want %.8s, 1, 2, 2",
			s2.Parent, s2.FilesNew, s2.FilesChanged, s2.FilesUnchanged, s1.SnapshotID)
	}

	// A third backup of an unchanged tree reads no file content.
	s3 := checkBackupJSON(t, e.mustRun("backup", "--json", src))
	if s3.Parent != s2.SnapshotID || s3.FilesUnchanged != 5 || s3.BytesRead != 0 || s3.DataBlobs != 0 {
		t.Errorf("unchanged backup: parent %.8s, %d files unchanged, %d bytes read, %d data blobs; want %.8s, 5, 0, 0",
			s3.Parent, s3.FilesUnchanged, s3.BytesRead, s3.DataBlobs, s2.SnapshotID)
	}

	t.Run("snapshots", func(t *testing.T) {
		var sns []jsonSnapshot
		checkDoc(t, "snapshot", e.mustRun("snapshots", "--json").stdout, &sns)
		if len(sns) != 3 {
			t.Fatalf("want 3 snapshots, got %d", len(sns))
		}
		for i, want := range []jsonBackupSummary{s1, s2, s3} {
			sn := sns[i]
			if sn.ID != want.SnapshotID || sn.ShortID != sn.ID[:8] || sn.Parent != want.Parent {
				t.Errorf("snapshot %d: id %s short %s parent %q; want %s, its first 8 digits, %q", i, sn.ID, sn.ShortID, sn.Parent, want.SnapshotID, want.Parent)
			}
			if !slices.Equal(sn.Paths, []string{src}) || len(sn.Tree) == 0 || sn.ProgramVersion == "" {
				t.Errorf("snapshot %d: paths %v, tree %v, program %q", i, sn.Paths, sn.Tree, sn.ProgramVersion)
			}
			if sn.Summary == nil || sn.Summary.FilesNew != want.FilesNew || sn.Summary.BytesRead != want.BytesRead ||
				sn.Summary.DataAdded != want.DataAdded || !sn.Summary.BackupStart.Equal(want.BackupStart) {
				t.Errorf("snapshot %d: summary %+v does not match the backup's %+v", i, sn.Summary, want)
			}
		}
		if !slices.Equal(sns[0].Tags, []string{"first"}) || sns[1].Tags != nil {
			t.Errorf("tags: %v, %v; want [first], none", sns[0].Tags, sns[1].Tags)
		}
		var tagged []jsonSnapshot
		checkDoc(t, "snapshot", e.mustRun("snapshots", "--json", "--tag", "first").stdout, &tagged)
		if len(tagged) != 1 || tagged[0].ID != s1.SnapshotID {
			t.Errorf("snapshots --tag first: %d snapshots", len(tagged))
		}
		var none []jsonSnapshot
		if r := e.mustRun("snapshots", "--json", "--host", "no-such-host"); string(r.stdout) != "[]\n" {
			t.Errorf("no matching snapshots should print [], got %q", r.stdout)
		}
		checkDoc(t, "snapshot", []byte("[]"), &none)
		var one jsonSnapshot
		checkDoc(t, "snapshot", e.mustRun("cat", "snapshot", "latest").stdout, &one)
		if one.ID != s3.SnapshotID {
			t.Errorf("cat snapshot latest: %s, want %s", one.ID, s3.SnapshotID)
		}
	})

	t.Run("ls", func(t *testing.T) {
		nodes := map[string]jsonNode{}
		for _, l := range jsonLines(t, e.mustRun("ls", "--json", "--recursive", "latest:"+src)) {
			var n jsonNode
			checkDoc(t, "node", l.raw, &n)
			if n.MessageType != "node" || n.SnapshotID != s3.SnapshotID || filepath.Base(n.Path) != n.Name {
				t.Errorf("ls node %+v", n)
			}
			nodes[n.Path] = n
		}
		want := map[string]string{"a.txt": "file", "chmod-me.txt": "file", "dir": "dir", "dir/b.bin": "file", "dir/c.txt": "file", "link": "symlink", "new.txt": "file"}
		if len(nodes) != len(want) {
			t.Errorf("ls --recursive listed %d entries, want %d: %v", len(nodes), len(want), nodes)
		}
		for rel, typ := range want {
			n, ok := nodes[filepath.Join(src, rel)]
			if !ok || n.Type != typ {
				t.Errorf("%s: listed %v as %q, want a %s", rel, ok, n.Type, typ)
			}
		}
		if n := nodes[filepath.Join(src, "link")]; n.LinkTarget != "a.txt" || n.Mode != "Lrwxrwxrwx" {
			t.Errorf("symlink: target %q mode %q", n.LinkTarget, n.Mode)
		}
		if n := nodes[filepath.Join(src, "dir/b.bin")]; n.Size != uint64(len(big)) || n.Mode != "-rw-r--r--" || n.User != "root" && os.Geteuid() == 0 {
			t.Errorf("dir/b.bin: size %d mode %q user %q", n.Size, n.Mode, n.User)
		}
		if n := nodes[filepath.Join(src, "chmod-me.txt")]; n.Mode != "-rw-------" {
			t.Errorf("chmod-me.txt: mode %q, want -rw-------", n.Mode)
		}
		if n := nodes[filepath.Join(src, "dir")]; n.Mode[0] != 'd' {
			t.Errorf("dir: mode %q", n.Mode)
		}
		// Without --recursive only the directory's own entries.
		lines := jsonLines(t, e.mustRun("ls", "--json", "latest:"+src))
		if len(lines) != 5 {
			t.Errorf("ls without --recursive listed %d entries, want 5", len(lines))
		}
	})

	t.Run("find", func(t *testing.T) {
		var ids []string
		for _, l := range jsonLines(t, e.mustRun("find", "--json", "c.txt")) {
			var n jsonNode
			checkDoc(t, "node", l.raw, &n)
			if n.MessageType != "match" || n.Path != filepath.Join(src, "dir", "c.txt") {
				t.Errorf("find match %+v", n)
			}
			ids = append(ids, n.SnapshotID)
		}
		if want := []string{s1.SnapshotID, s2.SnapshotID, s3.SnapshotID}; !slices.Equal(ids, want) {
			t.Errorf("find c.txt matched in snapshots %v, want %v", ids, want)
		}
		if r := e.mustRun("find", "--json", "no-such-name"); len(r.stdout) != 0 {
			t.Errorf("find without matches printed %q", r.stdout)
		}
	})

	t.Run("diff", func(t *testing.T) {
		lines := jsonLines(t, e.mustRun("diff", "--json", s1.SnapshotID[:8], s2.SnapshotID[:8]))
		if len(lines) == 0 {
			t.Fatal("diff --json printed nothing")
		}
		got := map[string]string{}
		count := map[string]int{}
		for _, l := range lines[:len(lines)-1] {
			var c jsonChange
			checkDoc(t, "diff.change", l.raw, &c)
			if c.MessageType != "change" {
				t.Errorf("diff line %s", l.raw)
			}
			got[c.Path] = c.Modifier
			count[c.Modifier]++
		}
		for rel, mod := range map[string]string{"new.txt": "+", "remove-me.txt": "-", "dir/c.txt": "M", "chmod-me.txt": "U"} {
			if got[filepath.Join(src, rel)] != mod {
				t.Errorf("diff: %s is %q, want %q (all: %v)", rel, got[filepath.Join(src, rel)], mod, got)
			}
		}
		for _, rel := range []string{"a.txt", "dir/b.bin", "link"} {
			if m, ok := got[filepath.Join(src, rel)]; ok {
				t.Errorf("diff: unchanged %s listed as %q", rel, m)
			}
		}
		var st jsonDiffStatistics
		checkDoc(t, "diff.statistics", lines[len(lines)-1].raw, &st)
		if st.MessageType != "statistics" || st.Added != count["+"] || st.Removed != count["-"] ||
			st.Changed != count["M"]+count["T"] || st.MetadataOnly != count["U"] {
			t.Errorf("diff statistics %+v do not count the lines %v", st, count)
		}
	})

	t.Run("restore", func(t *testing.T) {
		target := e.path("restore")
		s := checkRestoreJSON(t, e.mustRun("restore", "--json", "latest", "--target", target))
		if s.SnapshotID != s3.SnapshotID || s.FilesRestored != 5 || s.BytesRestored != s3.TotalBytes || len(s.Errors) != 0 || s.OtherRestored != 1 {
			t.Errorf("restore summary %+v", s)
		}
		sameFiles(t, src, filepath.Join(target, src))
		// Again over the restored tree: nothing rewritten, all verified.
		s = checkRestoreJSON(t, e.mustRun("restore", "--json", "latest", "--target", target, "--overwrite", "--verify"))
		if s.FilesUnchanged != 5 || s.FilesRestored != 0 || s.FilesVerified != 5 {
			t.Errorf("restore --overwrite --verify summary %+v; want 5 unchanged, 0 restored, 5 verified", s)
		}
		// Refused without --overwrite: nothing on stdout.
		r := e.expectCode(ExitFatal, "restore", "--json", "latest", "--target", target)
		if len(r.stdout) != 0 {
			t.Errorf("refused restore printed on stdout: %v", r)
		}
	})

	t.Run("check", func(t *testing.T) {
		for _, args := range [][]string{{"check", "--json"}, {"check", "--json", "--read-data"}} {
			lines := jsonLines(t, e.mustRun(args...))
			if len(lines) != 1 {
				t.Fatalf("%v printed %d lines, want 1", args, len(lines))
			}
			var s jsonCheckSummary
			checkDoc(t, "check.summary", lines[0].raw, &s)
			if s.MessageType != "summary" || !s.OK || s.Problems == nil || len(s.Problems) != 0 || s.Snapshots != 3 || s.Packs == 0 {
				t.Errorf("%v: %+v", args, s)
			}
			if read := len(args) == 3; read != (s.BlobsRead > 0) {
				t.Errorf("%v read %d blobs", args, s.BlobsRead)
			}
		}
	})

	t.Run("key list", func(t *testing.T) {
		var keys []jsonKey
		checkDoc(t, "key", e.mustRun("key", "list", "--json").stdout, &keys)
		if len(keys) != 1 || !keys[0].Current || keys[0].Created.IsZero() {
			t.Errorf("key list: %+v", keys)
		}
	})

	t.Run("version", func(t *testing.T) {
		var v jsonVersion
		checkDoc(t, "version", e.mustRun("version", "--json").stdout, &v)
		if v.Version != Version || v.FormatVersion != repository.FormatVersion || v.OS != "linux" || v.Go == "" {
			t.Errorf("version: %+v", v)
		}
	})

	t.Run("init", func(t *testing.T) {
		dir := e.path("new-repo")
		lines := jsonLines(t, e.mustRun("init", "--json", "--repo", dir))
		if len(lines) != 1 {
			t.Fatalf("init --json printed %d lines", len(lines))
		}
		var i jsonInit
		checkDoc(t, "init.initialized", lines[0].raw, &i)
		if i.MessageType != "initialized" || i.Repository != "local:"+dir {
			t.Errorf("init: %+v", i)
		}
	})

	t.Run("quiet commands", func(t *testing.T) {
		// Commands without JSON results print nothing on stdout.
		if r := e.with("REWIND_NEW_PASSWORD", "second password").mustRun("key", "add", "--json"); len(r.stdout) != 0 {
			t.Errorf("key add --json printed %q", r.stdout)
		}
	})
}
