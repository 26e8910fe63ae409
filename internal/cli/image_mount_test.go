package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rewind-backup/rewind/internal/testutil"
)

// imageRun is a run of data written into a sparse image file.
type imageRun struct {
	off  int64
	seed uint64
	n    int
}

// writeImage makes (or changes) a sparse image file of size bytes with
// the given runs of data, and returns its content.
func writeImage(t *testing.T, p string, size int64, runs []imageRun) []byte {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		if _, err := f.WriteAt(randomBytes(r.seed, r.n), r.off); err != nil {
			t.Fatal(err)
		}
	}
	return mustRead(t, p)
}

// seekWhere returns lseek(p, off, whence), or -1 for ENXIO.
func seekWhere(t *testing.T, p string, off int64, whence int) int64 {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := unix.Seek(int(f.Fd()), off, whence)
	if err == unix.ENXIO {
		return -1
	}
	if err != nil {
		t.Fatalf("lseek %s %d %d: %v", p, off, whence, err)
	}
	return got
}

// TestImageSnapshotEverywhere: an image snapshot is a snapshot like any
// other to snapshots, ls, mount (its image one file, at its path, of the
// image's size, readable at any offset, its holes seen by SEEK_HOLE), copy,
// check, forget and prune; and restore --image refuses a snapshot of
// paths.
func TestImageSnapshotEverywhere(t *testing.T) {
	testutil.RequireFUSE(t)
	e := newRepo(t, 0)
	img := e.path("vm", "disk.img")
	if err := os.Mkdir(filepath.Dir(img), 0o755); err != nil {
		t.Fatal(err)
	}
	const size = 40<<20 + 4321
	// Blocks are 64 KiB: data in [1 MiB, 1 MiB+200 KiB) fills blocks up to
	// 1 MiB+256 KiB; the first hole after it starts there.
	v1 := writeImage(t, img, size, []imageRun{{1 << 20, 1, 200 << 10}, {20 << 20, 2, 1 << 20}, {size - 3000, 3, 3000}})
	var b1, b2 imageBackup
	imageSummaryLine(t, e.mustRun("backup", "--json", "--image", img).stdout, &b1)
	v2 := writeImage(t, img, size, []imageRun{{20<<20 + 64<<10, 4, 64 << 10}, {30 << 20, 5, 100 << 10}})
	imageSummaryLine(t, e.mustRun("backup", "--json", "--image", img).stdout, &b2)
	if b2.Image.BlocksChanged != 3 {
		t.Errorf("incremental: %d blocks changed, want 3 (one rewritten, two new)", b2.Image.BlocksChanged)
	}

	// snapshots: both, with the image's size; ls: one file of its size.
	var sns []jsonSnapshot
	decodeStrict(t, e.mustRun("snapshots", "--json", "--tag", "image").stdout, &sns)
	if len(sns) != 2 || sns[1].Image == nil || sns[1].Image.Size != size || sns[1].Paths[0] != img {
		t.Fatalf("snapshots --tag image: %+v", sns)
	}
	if out := string(e.mustRun("ls", "-l", b2.SnapshotID+":"+filepath.Dir(img)).stdout); !strings.Contains(out, "disk.img") || !strings.Contains(out, " "+strconv.Itoa(size)+" ") {
		t.Errorf("ls -l does not show disk.img of %d bytes:\n%s", size, out)
	}

	// mount: ids/ID/PATH is the image file of each snapshot.
	mnt := e.path("mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	startMount(t, e, mnt)
	for _, c := range []struct {
		p    string
		want []byte
	}{
		{filepath.Join(mnt, "ids", b1.SnapshotID[:8], img), v1},
		{filepath.Join(mnt, "ids", b2.SnapshotID[:8], img), v2},
		{filepath.Join(mnt, "latest", hostname(t), img), v2},
	} {
		fi, err := os.Stat(c.p)
		if err != nil {
			t.Fatal(err)
		}
		if !fi.Mode().IsRegular() || fi.Size() != size {
			t.Errorf("%s: mode %v size %d, want a file of %d bytes", c.p, fi.Mode(), fi.Size(), size)
		}
		if got := mustRead(t, c.p); !bytes.Equal(got, c.want) {
			t.Errorf("%s: content differs from the image at its backup", c.p)
		}
		// Reads at any offset, across block ends, in a new open each.
		f, err := os.Open(c.p)
		if err != nil {
			t.Fatal(err)
		}
		for _, off := range []int64{size - 1, 20<<20 + 64<<10 - 7, 3, 1<<20 + 200<<10 - 5, 30<<20 + 1} {
			buf := make([]byte, 10)
			n, _ := f.ReadAt(buf, off)
			if !bytes.Equal(buf[:n], c.want[off:min(off+10, size)]) {
				t.Errorf("%s: read at %d differs", c.p, off)
			}
		}
		f.Close()
	}
	p2 := filepath.Join(mnt, "ids", b2.SnapshotID[:8], img)
	for _, c := range []struct {
		off    int64
		whence int
		want   int64
	}{
		{0, unix.SEEK_DATA, 1 << 20},
		{1 << 20, unix.SEEK_HOLE, 1<<20 + 256<<10},
		{2 << 20, unix.SEEK_DATA, 20 << 20},
		{20 << 20, unix.SEEK_HOLE, 21 << 20},
		{21 << 20, unix.SEEK_DATA, 30 << 20},
		{30 << 20, unix.SEEK_HOLE, 30<<20 + 128<<10},
		{31 << 20, unix.SEEK_DATA, size - 3000 - (size-3000)%(64<<10)},
		{size - 1, unix.SEEK_HOLE, size},
		{size, unix.SEEK_DATA, -1},
	} {
		if got := seekWhere(t, p2, c.off, c.whence); got != c.want {
			t.Errorf("lseek(%d, whence %d) = %d, want %d", c.off, c.whence, got, c.want)
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(p2, &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks*512 > 24*64<<10 {
		t.Errorf("the mounted image counts %d bytes of blocks; its data fits in 24 blocks of 64 KiB", st.Blocks*512)
	}
	for _, d := range []string{filepath.Join("tags", "image"), filepath.Join("hosts", hostname(t))} {
		ents, err := os.ReadDir(filepath.Join(mnt, d))
		if err != nil || len(ents) != 2 {
			t.Errorf("%s: %d entries (%v), want the two image snapshots", d, len(ents), err)
		}
	}

	// copy: into another repository, where it restores bit-identical.
	dst := e.with("REWIND_REPOSITORY", e.path("dst-repo"), "REWIND_FROM_REPOSITORY", e.path("repo"), "REWIND_FROM_PASSWORD", testPassword)
	initRepo(t, e.path("dst-repo"), testPassword, 0)
	if _, sum := copyJSON(t, dst.mustRun("copy", "--json")); sum.SnapshotsCopied != 2 {
		t.Errorf("copy: %+v, want 2 snapshots copied", sum)
	}
	var copied []jsonSnapshot
	decodeStrict(t, dst.mustRun("snapshots", "--json", "--tag", "image").stdout, &copied)
	if len(copied) != 2 || copied[1].Image == nil || copied[1].Image.BlocksChanged != 3 {
		t.Fatalf("copied snapshots: %+v", copied)
	}
	out := e.path("from-copy.img")
	dst.mustRun("restore", copied[0].ID, "--image", out, "--verify")
	if !bytes.Equal(mustRead(t, out), v1) {
		t.Error("the copied first snapshot restores a different image")
	}
	dst.mustRun("check", "--read-data")

	// check, then forget and prune the first: the second still restores.
	e.mustRun("check", "--read-data")
	e.mustRun("forget", "--prune", b1.SnapshotID)
	decodeStrict(t, e.mustRun("snapshots", "--json", "--tag", "image").stdout, &sns)
	if len(sns) != 1 || sns[0].ID != b2.SnapshotID {
		t.Errorf("after forget: %+v", sns)
	}
	e.mustRun("check", "--read-data")
	if !bytes.Equal(e.mustRun("dump", b2.SnapshotID+":"+img).stdout, v2) {
		t.Error("after forget and prune, the second snapshot dumps a different image")
	}

	// Bad input: restore --image and --device of a snapshot of paths.
	dir := e.path("files")
	writeFiles(t, dir, map[string][]byte{"x": []byte("x")})
	var pb struct {
		SnapshotID string `json:"snapshot_id"`
	}
	imageSummaryLine(t, e.mustRun("backup", "--json", dir).stdout, &pb)
	for _, flag := range []string{"--image", "--device"} {
		target := e.path("never.img")
		if flag == "--device" {
			target = "/dev/null"
		}
		r := e.expectCode(ExitFatal, "restore", pb.SnapshotID, flag, target)
		if !strings.Contains(string(r.stderr), "not a device or image backup") {
			t.Errorf("restore %s of a snapshot of paths: %s", flag, r.stderr)
		}
	}
	if _, err := os.Stat(e.path("never.img")); err == nil {
		t.Error("a refused restore --image created its file")
	}
}
