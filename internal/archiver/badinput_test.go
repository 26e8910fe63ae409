package archiver

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/restorer"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/testutil"
	"github.com/rewind-backup/rewind/internal/tree"
)

// helperEnv names the source folder when the test binary is re-executed
// as an unprivileged user by TestUnreadableSource.
const helperEnv = "REWIND_TEST_UNREADABLE_SRC"

// nobody is the user the unreadable test runs the backup as when the
// tests run as root, who may read every file.
const nobody = 65534

// TestUnreadableSource backs up a folder holding a file and a directory
// the backing-up user may not read. Permission checks do not apply to
// root, and dropping CAP_DAC_OVERRIDE affects one thread only while the
// archiver reads on many, so as root the backup runs in a copy of this
// test binary started as user nobody, with the repository in a folder
// nobody owns. This test then opens the repository and checks the
// snapshot: it was saved, the errors name both paths, and the file's node
// keeps its metadata with FlagUnreadable and no content.
func TestUnreadableSource(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "src")
	writeFile(t, filepath.Join(src, "ok"), []byte("readable"))
	writeFile(t, filepath.Join(src, "secret"), []byte("not for you"))
	writeFile(t, filepath.Join(src, "locked", "inside"), []byte("hidden"))
	must(t, os.Chmod(filepath.Join(src, "secret"), 0))
	must(t, os.Chmod(filepath.Join(src, "locked"), 0))
	t.Cleanup(func() { os.Chmod(filepath.Join(src, "locked"), 0o700) })
	repoDir := filepath.Join(base, "repo-parent")
	must(t, os.Mkdir(repoDir, 0o755))

	if testutil.IsRoot() {
		runAsNobody(t, base, src, repoDir)
	} else {
		backupUnreadable(t, src, repoDir)
	}

	ctx := context.Background()
	be, err := local.Open(ctx, filepath.Join(repoDir, "repo"))
	must(t, err)
	r, err := repository.Open(ctx, be, []byte(testPassword))
	must(t, err)
	defer r.Close()
	must(t, r.LoadIndex(ctx))
	sns, err := snapshot.List(ctx, r, nil)
	must(t, err)
	if len(sns) != 1 {
		t.Fatalf("%d snapshots saved, want 1", len(sns))
	}
	sn := sns[0]
	secret, locked := filepath.Join(src, "secret"), filepath.Join(src, "locked")
	for _, p := range []string{secret, locked} {
		if !hasError(sn.Summary.Errors, p) {
			t.Errorf("summary errors %v do not name %s", sn.Summary.Errors, p)
		}
	}
	for _, e := range sn.Summary.Errors {
		want := map[string]string{secret: snapshot.KindFile, locked: snapshot.KindDir}[e.Path]
		if e.Kind != want {
			t.Errorf("summary error for %s has kind %q, want %q", e.Path, e.Kind, want)
		}
	}
	if len(sn.Summary.Errors) != 2 {
		t.Errorf("summary lists %d errors, want 2: %v", len(sn.Summary.Errors), sn.Summary.Errors)
	}
	n := lookup(t, r, sn, secret)
	if n.Flags&tree.FlagUnreadable == 0 || n.Error == "" {
		t.Errorf("unreadable file: flags %#x, error %q; want FlagUnreadable and a reason", n.Flags, n.Error)
	}
	if len(n.Content) != 0 || len(n.ContentLists) != 0 || n.Size != uint64(len("not for you")) || n.Mode != 0 {
		t.Errorf("unreadable file: %d chunks, size %d, mode %#o; want no content and its metadata", len(n.Content), n.Size, n.Mode)
	}
	if got := content(t, r, lookup(t, r, sn, filepath.Join(src, "ok"))); string(got) != "readable" {
		t.Errorf("readable file next to it holds %q", got)
	}
	if d := lookup(t, r, sn, locked); d.Type != tree.Dir {
		t.Errorf("unreadable directory recorded as a %v", d.Type)
	}
}

// runAsNobody runs backupUnreadable in a copy of the test binary as user
// nobody. The copy and the folders leading to it are made readable for
// nobody; the repository folder is given to nobody.
func runAsNobody(t *testing.T, base, src, repoDir string) {
	t.Helper()
	exe, err := os.Executable()
	must(t, err)
	bin := filepath.Join(base, "archiver.test")
	copyFile(t, exe, bin, 0o755)
	// t.TempDir's folders are made 0700.
	for _, d := range []string{filepath.Dir(base), base} {
		must(t, os.Chmod(d, 0o755))
	}
	must(t, os.Chown(repoDir, nobody, nobody))
	cmd := exec.Command(bin, "-test.run=^TestUnreadableHelperProcess$", "-test.v")
	cmd.Dir = base
	cmd.Env = append(os.Environ(), helperEnv+"="+src, helperEnv+"_REPO="+repoDir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: TestUnreadableHelperProcess")) {
		t.Fatalf("backup as nobody: %v\n%s", err, out)
	}
}

// TestUnreadableHelperProcess is the backup half of TestUnreadableSource,
// run only in the re-executed binary.
func TestUnreadableHelperProcess(t *testing.T) {
	src := os.Getenv(helperEnv)
	if src == "" {
		t.Skip("helper for TestUnreadableSource, run as another user")
	}
	backupUnreadable(t, src, os.Getenv(helperEnv+"_REPO"))
}

func backupUnreadable(t *testing.T, src, repoDir string) {
	t.Helper()
	r := newTestRepo(t, repoDir)
	sn, _ := backup(t, r, Options{}, src)
	t.Logf("snapshot %s, errors %v", sn.ID.Short(), sn.Summary.Errors)
}

// TestVanishingEntries changes the tree after the walker has listed and
// lstat'ed a folder and before its entries are read: a file, a symlink
// and a subfolder removed, and a file replaced by a FIFO that nobody
// writes to, which must be neither read nor waited on. All are left out
// of the snapshot and counted as vanished, not reported as errors.
func TestVanishingEntries(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	writeFile(t, filepath.Join(src, "keep"), []byte("keep"))
	writeFile(t, filepath.Join(src, "gone"), []byte("gone"))
	writeFile(t, filepath.Join(src, "swapped"), []byte("swapped"))
	writeFile(t, filepath.Join(src, "sub", "x"), []byte("x"))
	must(t, os.Symlink("keep", filepath.Join(src, "link")))
	afterList = func(dir string) {
		if dir != src {
			return
		}
		// The walker's goroutine: report with Error, not Fatal.
		for _, err := range []error{
			os.Remove(filepath.Join(src, "gone")),
			os.Remove(filepath.Join(src, "swapped")),
			unix.Mkfifo(filepath.Join(src, "swapped"), 0o644),
			os.RemoveAll(filepath.Join(src, "sub")),
			os.Remove(filepath.Join(src, "link")),
		} {
			if err != nil {
				t.Error(err)
			}
		}
	}
	defer func() { afterList = nil }()

	r := newTestRepo(t, "")
	sn, a := backupWithin(t, r, Options{}, src)
	afterList = nil
	var names []string
	err := snapshot.EachNode(context.Background(), r, lookup(t, r, sn, src).Subtree, func(n *tree.Node) error {
		names = append(names, n.Name)
		return nil
	})
	must(t, err)
	if want := []string{"keep"}; !slices.Equal(names, want) {
		t.Errorf("snapshot lists %q, want %q", names, want)
	}
	if a.Vanished() != 4 {
		t.Errorf("Vanished() = %d, want 4", a.Vanished())
	}
	s := sn.Summary
	if s.TotalFiles != 1 || s.FilesNew != 1 {
		t.Errorf("counted %d files, %d new; want only keep", s.TotalFiles, s.FilesNew)
	}
	// The folders counted are the target and those above it.
	if dirs := int64(strings.Count(src, "/")); len(s.Errors) != 0 || s.DirsNew != dirs {
		t.Errorf("summary: %d new folders, errors %v; want %d (the target and above) and no errors", s.DirsNew, s.Errors, dirs)
	}
}

// TestGrowingFile appends to a large file for as long as it is backed up.
// The archiver reads it twice at most: the snapshot must then hold a
// prefix of the file, of the size its node records, marked FlagChanged
// unless the second read saw the file hold still.
func TestGrowingFile(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "src")
	p := filepath.Join(src, "growing.log")
	const initial = 4 << 20
	writeFile(t, p, randomBytes(7, initial))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var appended int64
	wg.Go(func() {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		block := randomBytes(8, 16<<10)
		for appended < 256<<20 {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := f.Write(block); err != nil {
				t.Error(err)
				return
			}
			appended += int64(len(block))
			time.Sleep(time.Millisecond)
		}
	})
	r := newTestRepo(t, "")
	sn, _ := backup(t, r, Options{}, src)
	close(stop)
	wg.Wait()

	n := lookup(t, r, sn, p)
	t.Logf("backed up %d bytes, flags %#x; %d bytes appended in all", n.Size, n.Flags, appended)
	if n.Flags&^tree.FlagChanged != 0 || len(sn.Summary.Errors) != 0 {
		t.Errorf("flags %#x, errors %v: want at most FlagChanged", n.Flags, sn.Summary.Errors)
	}
	if n.Size < initial {
		t.Errorf("recorded size %d, less than the %d bytes before the backup", n.Size, initial)
	}
	final, err := os.ReadFile(p)
	must(t, err)

	// Restore it for real and compare with the file as it ended up.
	target := filepath.Join(base, "restored")
	rs, err := restorer.New(r, restorer.Options{Target: target})
	must(t, err)
	if _, err := rs.Restore(context.Background(), sn, p); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(target, "growing.log"))
	must(t, err)
	if uint64(len(got)) != n.Size {
		t.Errorf("restored %d bytes, node records %d", len(got), n.Size)
	}
	if len(got) > len(final) || !bytes.Equal(got, final[:len(got)]) {
		t.Errorf("restored content is not a prefix of the file")
	}
}

// TestFIFOWithoutWriter backs up a FIFO nobody writes to: it is recorded
// and never opened. A hang shows as a failure after a generous delay.
func TestFIFOWithoutWriter(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	must(t, os.Mkdir(src, 0o755))
	must(t, unix.Mkfifo(filepath.Join(src, "pipe"), 0o640))
	r := newTestRepo(t, "")
	sn, _ := backupWithin(t, r, Options{}, src)
	n := lookup(t, r, sn, filepath.Join(src, "pipe"))
	if n.Type != tree.FIFO || n.Mode != 0o640 || len(sn.Summary.Errors) != 0 {
		t.Errorf("FIFO recorded as %v mode %#o, errors %v", n.Type, n.Mode, sn.Summary.Errors)
	}
}

// backupWithin is backup for a test that could hang: it fails the test
// if the backup has not returned after a minute, instead of waiting for
// go test's own timeout.
func backupWithin(t *testing.T, r *repository.Repository, opt Options, paths ...string) (*snapshot.Snapshot, *Archiver) {
	t.Helper()
	a, err := New(r, opt)
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		sn  *snapshot.Snapshot
		err error
	}
	done := make(chan result, 1)
	go func() {
		sn, err := a.Snapshot(ctx, paths)
		done <- result{sn, err}
	}()
	select {
	case res := <-done:
		if res.err != nil {
			t.Fatalf("backup %q: %v", paths, res.err)
		}
		return res.sn, a
	case <-time.After(time.Minute):
		t.Fatalf("backup of %q did not finish: blocked on a special file?", paths)
	}
	return nil, nil
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(from)
	must(t, err)
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	must(t, err)
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		t.Fatal(err)
	}
	must(t, out.Close())
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
