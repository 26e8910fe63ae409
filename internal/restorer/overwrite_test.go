package restorer_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rewind-backup/rewind/internal/restorer"
)

// overwriteSource fills src with the files the overwrite and verify tests
// restore, and returns the names of its regular files.
func overwriteSource(t *testing.T, src string) []string {
	t.Helper()
	files := map[string][]byte{
		"same.txt":        []byte("same content"),
		"big-same":        randomBytes(3, 1500<<10),
		"empty":           nil,
		"sub/nested.txt":  []byte("nested"),
		"changed.txt":     []byte("original content A"),
		"shrunk.txt":      randomBytes(4, 100<<10),
		"grown.txt":       []byte("short"),
		"linked.txt":      []byte("snapshot version"),
		"symlinked.txt":   []byte("a real file"),
		"sub/replaced.sh": []byte("#!/bin/sh\n"),
	}
	var names []string
	for name, data := range files {
		writeFile(t, filepath.Join(src, name), data)
		names = append(names, name)
	}
	// Sparse, past the 1 MiB from which the archiver records holes.
	f, err := os.Create(filepath.Join(src, "sparse"))
	must(t, err)
	_, err = f.WriteAt(randomBytes(5, 8192), 0)
	must(t, err)
	_, err = f.WriteAt(randomBytes(6, 8192), 2<<20)
	must(t, err)
	must(t, f.Truncate(3<<20))
	must(t, f.Close())
	names = append(names, "sparse")
	must(t, os.Symlink("same.txt", filepath.Join(src, "link")))
	slices.Sort(names)
	return names
}

// TestRestoreOverwrite restores into a folder that already holds a
// restore of the same snapshot, partly altered. Without Overwrite nothing
// may be touched. With it, files already right are left alone (no write
// reaches them: inotify sees no IN_MODIFY, and inode and mtime are
// unchanged); changed ones get the snapshot's content; a file with a hard
// link outside the target and a symlink in a file's place are replaced,
// never written through.
func TestRestoreOverwrite(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "src")
	files := overwriteSource(t, src)
	r := newTestRepo(t)
	sn, _ := backup(t, r, src)
	target := filepath.Join(base, "target")
	if st, err := restore(t, r, sn, src, restorer.Options{Target: target}); err != nil {
		t.Fatalf("first restore: %v\n%s", err, errorsText(st))
	}

	// Not empty, no Overwrite: refused before anything is written, which
	// would show in some entry's ctime.
	before := captureTree(t, target)
	_, err := restore(t, r, sn, src, restorer.Options{Target: target})
	if !errors.Is(err, restorer.ErrTargetNotEmpty) {
		t.Fatalf("restore into a non-empty folder: %v, want ErrTargetNotEmpty", err)
	}
	after := captureTree(t, target)
	for p, b := range before {
		a := after[p]
		if a == nil || a.st.Ino != b.st.Ino || a.st.Ctim != b.st.Ctim || a.st.Mtim != b.st.Mtim || !bytes.Equal(a.data, b.data) {
			t.Errorf("refused restore changed %q", p)
		}
	}
	if len(after) != len(before) {
		t.Errorf("refused restore changed the number of entries: %d, then %d", len(before), len(after))
	}

	// Alter the restored tree.
	tp := func(name string) string { return filepath.Join(target, name) }
	outside := filepath.Join(base, "outside")
	must(t, os.Mkdir(outside, 0o755))
	must(t, os.WriteFile(tp("changed.txt"), []byte("tampered content B"), 0o644))
	must(t, os.Truncate(tp("shrunk.txt"), 10<<10))
	appendFile(t, tp("grown.txt"), []byte(" and longer"))
	elsewhere := filepath.Join(outside, "linked-elsewhere")
	must(t, os.Link(tp("linked.txt"), elsewhere))
	must(t, os.WriteFile(elsewhere, []byte("edited through the other link"), 0o644))
	victim := filepath.Join(outside, "victim")
	must(t, os.WriteFile(victim, []byte("victim"), 0o644))
	must(t, os.Remove(tp("symlinked.txt")))
	must(t, os.Symlink(victim, tp("symlinked.txt")))
	must(t, os.Remove(tp("link")))
	must(t, os.WriteFile(tp("link"), []byte("not a symlink"), 0o644))
	must(t, os.Remove(tp("sub/replaced.sh")))
	must(t, unix.Mkfifo(tp("sub/replaced.sh"), 0o644))
	identical := []string{"same.txt", "big-same", "empty", "sparse", "sub/nested.txt"}
	rewritten := []string{"changed.txt", "shrunk.txt", "grown.txt", "linked.txt", "symlinked.txt", "sub/replaced.sh"}
	before = captureTree(t, target)

	w := watchModify(t, target, tp("sub"), outside)
	st, err := restore(t, r, sn, src, restorer.Options{Target: target, Overwrite: true})
	if err != nil {
		t.Fatalf("restore with Overwrite: %v\n%s", err, errorsText(st))
	}
	modified := w.modified(t)

	if st.FilesSkipped != int64(len(identical)) || st.Files != int64(len(rewritten)) {
		t.Errorf("%d files skipped and %d restored, want %d and %d", st.FilesSkipped, st.Files, len(identical), len(rewritten))
	}
	after = captureTree(t, target)
	for _, name := range identical {
		b, a := before[name], after[name]
		if a.st.Ino != b.st.Ino || a.st.Mtim != b.st.Mtim {
			t.Errorf("%s: identical file replaced or its mtime changed", name)
		}
		if modified[tp(name)] {
			t.Errorf("%s: identical file was written to", name)
		}
	}
	want := captureTree(t, src)
	for _, name := range files {
		if a := after[name]; a == nil || a.typ() != unix.S_IFREG || !bytes.Equal(a.data, want[name].data) {
			t.Errorf("%s does not hold the snapshot's content after the restore", name)
		}
	}
	if a, o := after["linked.txt"], capture(t, elsewhere); a.st.Ino == o.st.Ino || a.st.Nlink != 1 ||
		string(o.data) != "edited through the other link" || modified[elsewhere] {
		t.Errorf("file with a link outside the target was written into: outside it now holds %q", o.data)
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "victim" || modified[victim] {
		t.Errorf("file behind a symlink in the target was written: %q, %v", b, err)
	}
	if l, err := os.Readlink(tp("link")); err != nil || l != "same.txt" {
		t.Errorf("link: %q, %v; want the symlink back", l, err)
	}
}

// TestRestoreVerify restores with Verify: every regular file is read back
// and checked, those already right under Overwrite included.
func TestRestoreVerify(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "src")
	files := overwriteSource(t, src)
	r := newTestRepo(t)
	sn, _ := backup(t, r, src)
	target := filepath.Join(base, "target")
	for _, overwrite := range []bool{false, true} {
		st, err := restore(t, r, sn, src, restorer.Options{Target: target, Verify: true, Overwrite: overwrite})
		if err != nil {
			t.Fatalf("overwrite=%v: restore with Verify: %v\n%s", overwrite, err, errorsText(st))
		}
		if st.Verified != int64(len(files)) || st.Files+st.FilesSkipped != int64(len(files)) {
			t.Errorf("overwrite=%v: %d files verified, %d restored, %d skipped; want %d verified",
				overwrite, st.Verified, st.Files, st.FilesSkipped, len(files))
		}
	}
}

func appendFile(t *testing.T, p string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	_, err = f.Write(data)
	must(t, err)
	must(t, f.Close())
}

// modifyWatch collects inotify IN_MODIFY events (write, truncate,
// fallocate) for the entries of some folders.
type modifyWatch struct {
	fd   int
	dirs map[int]string // watch descriptor → folder
}

func watchModify(t *testing.T, dirs ...string) *modifyWatch {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	must(t, err)
	t.Cleanup(func() { unix.Close(fd) })
	w := &modifyWatch{fd: fd, dirs: map[int]string{}}
	for _, d := range dirs {
		wd, err := unix.InotifyAddWatch(fd, d, unix.IN_MODIFY)
		must(t, err)
		w.dirs[wd] = d
	}
	return w
}

// modified returns the paths modified since the watch began.
func (w *modifyWatch) modified(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(w.fd, buf)
		if errors.Is(err, unix.EAGAIN) {
			return out
		}
		must(t, err)
		for b := buf[:n]; len(b) >= unix.SizeofInotifyEvent; {
			wd := int(int32(binary.NativeEndian.Uint32(b[0:4])))
			l := int(binary.NativeEndian.Uint32(b[12:16]))
			name := string(bytes.TrimRight(b[unix.SizeofInotifyEvent:unix.SizeofInotifyEvent+l], "\x00"))
			out[filepath.Join(w.dirs[wd], name)] = true
			b = b[unix.SizeofInotifyEvent+l:]
		}
	}
}
