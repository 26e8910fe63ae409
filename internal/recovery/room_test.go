package recovery

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/inventory"
	"github.com/rewind-backup/rewind/internal/testutil"
)

// TestRoomNeededHoldsTheData makes each filesystem with this machine's
// real mkfs on a file of exactly roomNeeded bytes, as recover would, and
// reads back its free space: the data that was recorded must fit. This
// is what keeps a plan that passes from filling its disk halfway through
// the restore.
func TestRoomNeededHoldsTheData(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		f    inventory.Filesystem
		free func(t *testing.T, file string) int64
	}{
		{inventory.Filesystem{Type: "ext4", UUID: "0e0e0e0e-1111-2222-3333-444444444444", UsedBytes: 100 * MiB,
			Params: map[string]string{"Block size": "4096", "Inode size": "256", "Block count": "262144", "Inode count": "65536"}}, ext4Free},
		{inventory.Filesystem{Type: "ext4", UUID: "0e0e0e0e-1111-2222-3333-444444444445", UsedBytes: 30 * MiB,
			Params: map[string]string{"Block size": "1024", "Inode size": "128", "Block count": "65536", "Inode count": "16384", "Journal size": "4096k"}}, ext4Free},
		{inventory.Filesystem{Type: "xfs", UUID: "0e0e0e0e-1111-2222-3333-444444444446", UsedBytes: 400 * MiB}, xfsFree},
		{inventory.Filesystem{Type: "vfat", UUID: "ABCD-1234", UsedBytes: 40 * MiB}, vfatFree},
	} {
		t.Run(tc.f.Type+"-"+strconv.FormatInt(tc.f.UsedBytes/MiB, 10)+"M", func(t *testing.T) {
			testutil.RequireTool(t, mkfsTool(tc.f.Type))
			size := roomNeeded(tc.f)
			if size < tc.f.UsedBytes {
				t.Fatalf("roomNeeded %d < used %d", size, tc.f.UsedBytes)
			}
			file := filepath.Join(t.TempDir(), "fs.img")
			if err := os.WriteFile(file, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(file, size); err != nil {
				t.Fatal(err)
			}
			fp := FilesystemPlan{Device: file, Type: tc.f.Type, UUID: tc.f.UUID, SizeBytes: size, UsedBytes: tc.f.UsedBytes, Params: tc.f.Params}
			if _, _, err := makeFS(ctx, fp, t.TempDir()); err != nil {
				t.Fatal(err)
			}
			if free := tc.free(t, file); free < tc.f.UsedBytes {
				t.Errorf("%s of %d bytes has %d bytes free: %d bytes short of the %d recorded", tc.f.Type, size, free, tc.f.UsedBytes-free, tc.f.UsedBytes)
			}
		})
	}
	if roomNeeded(inventory.Filesystem{Type: "swap", UsedBytes: MiB}) != 0 || roomNeeded(inventory.Filesystem{Type: "ext4"}) != 0 {
		t.Error("swap or an unknown use needs room")
	}
}

func toolOutput(t *testing.T, name string, args ...string) string {
	out, err := exec.Command(testutil.RequireTool(t, name), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
	return string(out)
}

// fieldAfter is the first number after label in out.
func fieldAfter(t *testing.T, out, label string) int64 {
	i := strings.Index(out, label)
	if i < 0 {
		t.Fatalf("no %q in %s", label, out)
	}
	f := strings.Fields(strings.Trim(out[i+len(label):], ": \t="))
	if len(f) == 0 {
		t.Fatalf("nothing after %q", label)
	}
	n, err := strconv.ParseInt(strings.Trim(f[0], ","), 10, 64)
	if err != nil {
		t.Fatalf("%q: %v", label, err)
	}
	return n
}

func ext4Free(t *testing.T, file string) int64 {
	out := toolOutput(t, "dumpe2fs", "-h", file)
	return fieldAfter(t, out, "Free blocks:") * fieldAfter(t, out, "Block size:")
}

func xfsFree(t *testing.T, file string) int64 {
	out := toolOutput(t, "xfs_db", "-r", "-c", "sb 0", "-c", "p fdblocks blocksize", file)
	return fieldAfter(t, out, "fdblocks") * fieldAfter(t, out, "blocksize")
}

func vfatFree(t *testing.T, file string) int64 {
	out := toolOutput(t, "mdir", "-i", file, "::")
	for _, line := range strings.Split(out, "\n") {
		if n, ok := strings.CutSuffix(strings.TrimSpace(line), "bytes free"); ok {
			free, err := strconv.ParseInt(strings.ReplaceAll(n, " ", ""), 10, 64)
			if err != nil {
				t.Fatalf("mdir free space %q: %v", line, err)
			}
			return free
		}
	}
	t.Fatalf("no free space in mdir's listing: %s", out)
	return 0
}
