package cli

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rewind-backup/rewind/internal/testutil"
)

// jsonImageSummary is the strict copy of the image part of backup's
// summary (docs/JSON.md).
type jsonImageSummary struct {
	Kind          string `json:"kind"`
	Size          int64  `json:"size"`
	BlockSize     int64  `json:"block_size"`
	Method        string `json:"method"`
	Fallback      string `json:"fallback,omitempty"`
	BytesRead     int64  `json:"bytes_read"`
	BytesFree     int64  `json:"bytes_free"`
	Blocks        int64  `json:"blocks"`
	BlocksHole    int64  `json:"blocks_hole"`
	BlocksChanged int64  `json:"blocks_changed"`
	QEMUDrive     string `json:"qemu_drive,omitempty"`
	DirtyBitmap   string `json:"dirty_bitmap,omitempty"`
	BytesClean    int64  `json:"bytes_clean,omitempty"`
}

// jsonRestoreImage is the strict copy of restore --device/--image's
// JSON line (docs/JSON.md).
type jsonRestoreImage struct {
	MessageType  string `json:"message_type"`
	SnapshotID   string `json:"snapshot_id"`
	Target       string `json:"target"`
	Size         int64  `json:"size"`
	BytesWritten int64  `json:"bytes_written"`
	BytesZeroed  int64  `json:"bytes_zeroed"`
	ZeroMethod   string `json:"zero_method,omitempty"`
	Verified     bool   `json:"verified"`
}

type imageBackup struct {
	SnapshotID string           `json:"snapshot_id"`
	DataAdded  int64            `json:"data_added"`
	Image      jsonImageSummary `json:"image"`
}

func imageSummaryLine(t *testing.T, out []byte, v any) {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if strings.Contains(sc.Text(), `"message_type":"summary"`) {
			if err := json.Unmarshal(sc.Bytes(), v); err != nil {
				t.Fatalf("%v: %s", err, sc.Text())
			}
			return
		}
	}
	t.Fatalf("no summary line in:\n%s", out)
}

func sh(t *testing.T, prog string, args ...string) string {
	t.Helper()
	out, err := exec.Command(prog, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// usedBytes is what dumpe2fs says the ext4 on dev uses: the bound the
// bitmap method must read exactly.
func usedBytes(t *testing.T, dev string) int64 {
	out := sh(t, "dumpe2fs", "-h", dev)
	get := func(name string) int64 {
		m := regexp.MustCompile(`(?m)^` + name + `:\s+(\d+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("dumpe2fs: no %s in\n%s", name, out)
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		return n
	}
	return (get("Block count") - get("Free blocks")) * get("Block size")
}

// fileSums returns the SHA-256 of each regular file below dir.
func fileSums(t *testing.T, dir string) map[string][32]byte {
	out := map[string][32]byte{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = sha256.Sum256(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mountDo(t *testing.T, dev string, ro bool, fn func(mnt string)) {
	t.Helper()
	mnt := t.TempDir()
	opts := "rw"
	if ro {
		opts = "ro"
	}
	sh(t, "mount", "-o", opts, dev, mnt)
	defer sh(t, "umount", mnt)
	fn(mnt)
}

func sameSums(t *testing.T, what string, want, got map[string][32]byte) {
	t.Helper()
	delete(got, "lost+found")
	if len(got) != len(want) {
		t.Errorf("%s: %d files, want %d", what, len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s differs or is missing", what, k)
		}
	}
}

// TestDeviceBackupExt4 backs up an ext4 loop device twice with files
// changed between, and restores both snapshots onto another device.
func TestDeviceBackupExt4(t *testing.T) {
	e := newRepo(t, 0)
	src := testutil.LoopDisk(t, 96<<20)
	dst := testutil.LoopDisk(t, 128<<20)
	small := testutil.LoopDisk(t, 32<<20)
	sh(t, "mkfs.ext4", "-q", "-F", "-b", "4096", "-E", "nodiscard", src)
	var sums1, sums2 map[string][32]byte
	mountDo(t, src, false, func(mnt string) {
		writeFiles(t, mnt, map[string][]byte{
			"a.bin": randomBytes(1, 6<<20), "d/b.bin": randomBytes(2, 3<<20), "d/c.txt": []byte("hello\n"), "gone.bin": randomBytes(3, 2<<20),
		})
		sums1 = fileSums(t, mnt)
	})
	used1 := usedBytes(t, src)
	var b1 imageBackup
	imageSummaryLine(t, e.mustRun("backup", "--json", "--device", src).stdout, &b1)
	if b1.Image.Method != "ext4-bitmap" || b1.Image.Kind != "device" || b1.Image.Size != 96<<20 {
		t.Fatalf("first backup: %+v", b1.Image)
	}
	if b1.Image.BytesRead != used1 {
		t.Errorf("first backup read %d bytes; the ext4 uses %d (dumpe2fs)", b1.Image.BytesRead, used1)
	}

	// Change 1 MiB of a.bin, add 2 MiB, remove 2 MiB.
	mountDo(t, src, false, func(mnt string) {
		f, err := os.OpenFile(filepath.Join(mnt, "a.bin"), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(randomBytes(4, 1<<20), 2<<20); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if err := os.Remove(filepath.Join(mnt, "gone.bin")); err != nil {
			t.Fatal(err)
		}
		writeFiles(t, mnt, map[string][]byte{"new.bin": randomBytes(5, 2<<20)})
		sums2 = fileSums(t, mnt)
	})
	used2 := usedBytes(t, src)
	var b2 imageBackup
	imageSummaryLine(t, e.mustRun("backup", "--json", "--device", src).stdout, &b2)
	if b2.Image.BytesRead != used2 {
		t.Errorf("incremental read %d bytes; the ext4 uses %d (dumpe2fs)", b2.Image.BytesRead, used2)
	}
	// 3 MiB of data changed, 64 KiB-aligned, plus metadata blocks
	// (journal, inode table, bitmaps, directory, superblock): at most
	// 16 blocks of 64 KiB for those.
	if b2.Image.BlockSize != 64<<10 {
		t.Fatalf("block size %d, want 64 KiB for a small device", b2.Image.BlockSize)
	}
	if b2.Image.BlocksChanged > 48+16 || b2.DataAdded > 5<<20 {
		t.Errorf("incremental: %d blocks changed, %d bytes added; want at most 64 blocks, 5 MiB for 3 MiB changed", b2.Image.BlocksChanged, b2.DataAdded)
	}
	if b2.Image.BlocksChanged == 0 {
		t.Errorf("incremental: no block changed")
	}
	t.Logf("device 96 MiB: full %d read, incremental %d read, %d blocks changed, %d bytes added", b1.Image.BytesRead, b2.Image.BytesRead, b2.Image.BlocksChanged, b2.DataAdded)

	for i, c := range []struct {
		id   string
		sums map[string][32]byte
	}{{b1.SnapshotID, sums1}, {b2.SnapshotID, sums2}} {
		var r jsonRestoreImage
		imageSummaryLine(t, e.mustRun("restore", "--json", c.id, "--device", dst, "--verify").stdout, &r)
		if !r.Verified || r.Size != 96<<20 {
			t.Errorf("restore %d: %+v", i+1, r)
		}
		sh(t, "e2fsck", "-fn", dst)
		mountDo(t, dst, true, func(mnt string) { sameSums(t, "snapshot "+strconv.Itoa(i+1), c.sums, fileSums(t, mnt)) })
	}

	// Bad input: a mounted target, a target too small, a snapshot of
	// paths.
	mountDo(t, dst, true, func(string) {
		r := e.expectCode(1, "restore", b2.SnapshotID, "--device", dst)
		if !strings.Contains(string(r.stderr), "is mounted on") {
			t.Errorf("mounted target: %s", r.stderr)
		}
	})
	r := e.expectCode(1, "restore", b2.SnapshotID, "--device", small)
	if !strings.Contains(string(r.stderr), "smaller than the") {
		t.Errorf("small target: %s", r.stderr)
	}
	dir := e.path("files")
	writeFiles(t, dir, map[string][]byte{"x": []byte("x")})
	var pb struct {
		SnapshotID string `json:"snapshot_id"`
	}
	imageSummaryLine(t, e.mustRun("backup", "--json", dir).stdout, &pb)
	r = e.expectCode(1, "restore", pb.SnapshotID, "--device", dst)
	if !strings.Contains(string(r.stderr), "not a device or image backup") {
		t.Errorf("snapshot of paths: %s", r.stderr)
	}
	out := string(e.mustRun("snapshots", "--tag", "device").stdout)
	if !strings.Contains(out, b1.SnapshotID[:8]) || !strings.Contains(out, b2.SnapshotID[:8]) || !strings.Contains(out, src+" (96.00 MiB)") {
		t.Errorf("snapshots --tag device lists:\n%s", out)
	}
	if out := string(e.mustRun("ls", "-l", b2.SnapshotID+":/dev").stdout); !strings.Contains(out, filepath.Base(src)) || !strings.Contains(out, "96 MiB") && !strings.Contains(out, "100663296") {
		t.Errorf("ls does not show %s:\n%s", src, out)
	}
	e.mustRun("check", "--read-data")
}

// TestImageFileRoundTrip backs up a sparse image file and restores it
// bit-identical, with its holes.
func TestImageFileRoundTrip(t *testing.T) {
	e := newRepo(t, 0)
	img := e.path("disk.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	const size = 64<<20 + 12345
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for i, off := range []int64{0, 5 << 20, 5<<20 + 700_000, 40 << 20, size - 5000} {
		if _, err := f.WriteAt(randomBytes(uint64(i+10), 300_000)[:min(300_000, size-off)], off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	var b imageBackup
	imageSummaryLine(t, e.mustRun("backup", "--json", "--image", img).stdout, &b)
	if b.Image.Method != "full" || b.Image.Kind != "image" || b.Image.BytesRead != size {
		t.Errorf("image backup: %+v", b.Image)
	}
	out := e.path("out.img")
	e.mustRun("restore", b.SnapshotID, "--image", out, "--verify")
	sh(t, "cmp", img, out)
	var st unix.Stat_t
	if err := unix.Stat(out, &st); err != nil {
		t.Fatal(err)
	}
	// Five runs of 300,000 bytes, each in at most six 64 KiB blocks.
	if st.Blocks*512 > 30*64<<10 {
		t.Errorf("restored image takes %d bytes on disk; its data fits 30 blocks of 64 KiB", st.Blocks*512)
	}
	r := e.expectCode(1, "restore", b.SnapshotID, "--image", out)
	if !strings.Contains(string(r.stderr), "exists") {
		t.Errorf("existing image file: %s", r.stderr)
	}
	// An image snapshot is a snapshot of one sparse file to every other
	// command.
	dir := e.path("as-files")
	e.mustRun("restore", b.SnapshotID, "--target", dir)
	sh(t, "cmp", img, filepath.Join(dir, img))
	if got := e.mustRun("dump", b.SnapshotID+":"+img).stdout; !bytes.Equal(got, mustRead(t, img)) {
		t.Error("dump of the image differs from it")
	}
	e.mustRun("check", "--read-data")
	e.mustRun("forget", b.SnapshotID)
	r = e.expectCode(1, "backup", "--device", img)
	if !strings.Contains(string(r.stderr), "not a block device") {
		t.Errorf("--device on a file: %s", r.stderr)
	}
}

// TestDeviceBackupXFS backs up an XFS loop device by its free-space
// trees and restores it onto another device, which xfs_repair accepts.
func TestDeviceBackupXFS(t *testing.T) {
	testutil.RequireTool(t, "mkfs.xfs")
	e := newRepo(t, 0)
	const size = 320 << 20
	src := testutil.LoopDisk(t, size)
	dst := testutil.LoopDisk(t, size)
	sh(t, "mkfs.xfs", "-q", "-f", src)
	var sums map[string][32]byte
	mountDo(t, src, false, func(mnt string) {
		writeFiles(t, mnt, map[string][]byte{"a.bin": randomBytes(1, 5<<20), "d/b.txt": []byte("xfs\n")})
		sums = fileSums(t, mnt)
	})
	var b imageBackup
	imageSummaryLine(t, e.mustRun("backup", "--json", "--device", src).stdout, &b)
	if b.Image.Method != "xfs-btree" {
		t.Fatalf("method %q (%s), want xfs-btree", b.Image.Method, b.Image.Fallback)
	}
	// 5 MiB of data, the log (64 MiB: mkfs.xfs's least) and metadata:
	// far less than the device.
	if b.Image.BytesRead > 80<<20 || b.Image.BytesRead < 5<<20 {
		t.Errorf("read %d bytes of the %d-byte device", b.Image.BytesRead, size)
	}
	e.mustRun("restore", b.SnapshotID, "--device", dst, "--verify")
	sh(t, "xfs_repair", "-n", dst)
	mountDo(t, dst, true, func(mnt string) { sameSums(t, "xfs", sums, fileSums(t, mnt)) })
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDeviceBackupPartitioned backs up a GPT disk with two ext4
// partitions: each is read by its bitmaps, and the restored disk's
// partitions pass e2fsck and hold their files.
func TestDeviceBackupPartitioned(t *testing.T) {
	sfdisk := testutil.RequireTool(t, "sfdisk")
	e := newRepo(t, 0)
	const size = 200 << 20
	src := testutil.LoopDisk(t, size)
	dst := testutil.LoopDisk(t, size)
	c := exec.Command(sfdisk, "-q", src)
	c.Stdin = strings.NewReader("label: gpt\nsize=80MiB\nsize=80MiB\n")
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	sh(t, "partx", "-u", src)
	sums := map[string]map[string][32]byte{}
	for i, p := range []string{src + "p1", src + "p2"} {
		sh(t, "mkfs.ext4", "-q", "-F", "-b", "4096", "-E", "nodiscard", p)
		mountDo(t, p, false, func(mnt string) {
			writeFiles(t, mnt, map[string][]byte{"f.bin": randomBytes(uint64(i+1), 4<<20)})
			sums[p] = fileSums(t, mnt)
		})
	}
	var b imageBackup
	imageSummaryLine(t, e.mustRun("backup", "--json", "--device", src).stdout, &b)
	if b.Image.Method != "partitions" {
		t.Fatalf("method %q (%s), want partitions", b.Image.Method, b.Image.Fallback)
	}
	// Two partitions of 80 MiB with 4 MiB of data each, and 40 MiB
	// outside them read whole: well under 80 MiB.
	if b.Image.BytesRead > 80<<20 || b.Image.BytesFree < 100<<20 {
		t.Errorf("read %d bytes, skipped %d as free, of %d", b.Image.BytesRead, b.Image.BytesFree, size)
	}
	e.mustRun("restore", b.SnapshotID, "--device", dst, "--verify")
	sh(t, "partx", "-u", dst)
	for i, p := range []string{dst + "p1", dst + "p2"} {
		sh(t, "e2fsck", "-fn", p)
		mountDo(t, p, true, func(mnt string) {
			sameSums(t, p, sums[src+"p"+strconv.Itoa(i+1)], fileSums(t, mnt))
		})
	}
}
