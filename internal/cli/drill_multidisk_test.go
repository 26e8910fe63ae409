package cli

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/loopdev"
	"github.com/rewind-backup/rewind/internal/testutil"
)

// attachForTest attaches file as a loop device with its partitions,
// detached when the test ends (or earlier by the returned func).
func attachForTest(t *testing.T, file string) (dev string, detach func()) {
	t.Helper()
	ctx := context.Background()
	dev, err := loopdev.Attach(ctx, file)
	if err != nil {
		t.Fatal(err)
	}
	done := false
	detach = func() {
		if !done {
			done = true
			if err := loopdev.Detach(ctx, dev); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(detach)
	return dev, detach
}

// mountForTest mounts dev at dir, unmounted when the test ends (or
// earlier by the returned func).
func mountForTest(t *testing.T, dev, dir string) (umount func()) {
	t.Helper()
	if out, err := exec.Command("mount", "-t", "ext4", dev, dir).CombinedOutput(); err != nil {
		t.Fatalf("mount %s %s: %v: %s", dev, dir, err, out)
	}
	done := false
	umount = func() {
		if !done {
			done = true
			if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v: %s", dir, err, out)
			}
		}
	}
	t.Cleanup(umount)
	return umount
}

// TestExportVMAndDrillTwoDisks: the test server with a data disk (ext4
// at /srv/data, mounted by fstab's UUID=, holding the file httpd serves
// as /data.txt), backed up as a system that is not running from two loop
// devices. export --vm refuses three sizes for two disks and leaves
// nothing; it writes two qcow2 files, the boot disk as OUT and the data
// disk as OUT-2 with its recorded size, its partition table, UUIDs and
// label and the file restored. A drill boots the machine with both disks
// attached and its HTTP probe reads the file from the data disk: the
// data disk was rebuilt, attached and mounted by fstab. One boot.
func TestExportVMAndDrillTwoDisks(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireQEMU(t)
	const token, dataToken = "two-disk-token-91c0", "data-disk-token-3e7d"
	const dataBytes = 64 << 20
	d := testutil.BuildServerDisk(t, testutil.ServerOptions{Mode: "bios", Token: token, DataDiskBytes: dataBytes, DataToken: dataToken})

	// Back it up: root at DIR, the data disk at DIR/srv/data.
	sysDev, detachSys := attachForTest(t, d.Path)
	dataDev, detachData := attachForTest(t, d.DataPath)
	root := filepath.Join(t.TempDir(), "srv")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	umountRoot := mountForTest(t, loopdev.PartitionPath(sysDev, 4), root)
	umountData := mountForTest(t, loopdev.PartitionPath(dataDev, 1), filepath.Join(root, testutil.ServerDataMount))
	e := newRepo(t, 0)
	lines := jsonLines(t, e.mustRun("backup", "--json", "--system-root", root, "--disks", sysDev+","+dataDev))
	id := lines[len(lines)-1].obj["snapshot_id"].(string)
	umountData()
	umountRoot()
	detachData()
	detachSys()

	// More sizes than disks: refused, nothing made.
	x := e.path("x.qcow2")
	r := e.expectCode(1, "export", "--vm", x, "--size", "512M", "--size", "64M", "--size", "64M", id)
	if !strings.Contains(string(r.stderr), "3 sizes for 2 disks") || !strings.Contains(string(r.stderr), sysDev+", "+dataDev) {
		t.Errorf("three sizes for two disks: %s", r.stderr)
	}
	if ents, _ := filepath.Glob(e.path("x*.qcow2*")); len(ents) > 0 {
		t.Errorf("a refused export --vm left %v", ents)
	}

	// export --vm: two qcow2 files, the boot disk first.
	out := e.path("web.qcow2")
	var sum jsonExport
	decodeStrict(t, e.mustRun("export", "--json", "--vm", out, id).stdout, &sum)
	want := []struct {
		file, recorded string
		size           int64
	}{{out, sysDev, testutil.ServerDefaultSize}, {e.path("web-2.qcow2"), dataDev, dataBytes}}
	if len(sum.Disks) != 2 || sum.Target != out || sum.Size != testutil.ServerDefaultSize {
		b, _ := json.Marshal(sum)
		t.Fatalf("export --vm summary: %s", b)
	}
	for i, w := range want {
		g := sum.Disks[i]
		if g.Target != w.file || g.RecordedDisk != w.recorded || g.Size != w.size || g.BytesWritten <= 0 {
			t.Errorf("disk %d: %+v, want %s of %s, %d bytes", i, g, w.file, w.recorded, w.size)
		}
		info, err := exec.Command("qemu-img", "info", "--output=json", w.file).Output()
		var qi struct {
			Format      string `json:"format"`
			VirtualSize int64  `json:"virtual-size"`
		}
		if err != nil || json.Unmarshal(info, &qi) != nil || qi.Format != "qcow2" || qi.VirtualSize != w.size {
			t.Errorf("qemu-img info %s: %v: %s", w.file, err, info)
		}
	}
	if ents, _ := filepath.Glob(e.path("*rewind-work*")); len(ents) > 0 {
		t.Errorf("work files left: %v", ents)
	}

	// The data disk as recorded: its table, filesystem and file.
	raw := e.path("data.raw")
	if o, err := exec.Command("qemu-img", "convert", "-O", "raw", want[1].file, raw).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v: %s", err, o)
	}
	rawDev, detachRaw := attachForTest(t, raw)
	dump, err := exec.Command("sfdisk", "--dump", rawDev).Output()
	ld := strings.ToLower(string(dump))
	if err != nil || strings.Count(ld, "start=") != 1 || !strings.Contains(ld, "label-id: "+testutil.ServerDataDiskGUID) ||
		!strings.Contains(ld, "uuid="+testutil.ServerDataPartUUID) {
		t.Errorf("the data disk's table: %v:\n%s", err, dump)
	}
	blk, err := exec.Command("blkid", "-p", "-o", "export", loopdev.PartitionPath(rawDev, 1)).Output()
	if err != nil || !strings.Contains(string(blk), "UUID="+testutil.ServerDataUUID) || !strings.Contains(string(blk), "LABEL="+testutil.ServerDataLabel) {
		t.Errorf("the data filesystem: %v: %s", err, blk)
	}
	if got, err := exec.Command("debugfs", "-R", "cat /data.txt", loopdev.PartitionPath(rawDev, 1)).Output(); err != nil || string(got) != dataToken {
		t.Errorf("data.txt on the exported data disk: %q, %v", got, err)
	}
	detachRaw()
	e.expectCode(1, "export", "--vm", out, id) // OUT exists: never overwritten

	// The drill boots both disks; /data.txt comes from the data disk.
	t0 := time.Now()
	r = e.mustRun("drill", "--json", "--host", testutil.ServerHostname, "--timeout", "5m",
		"--probe", "marker "+testutil.ServerReady, "--probe", "http "+testutil.ServerDataFile+" 80 "+dataToken, "--probe", "http / 80 "+token)
	var dr jsonDrill
	decodeStrict(t, r.stdout, &dr)
	if dr.Result != "success" || dr.SnapshotID != id || len(dr.Probes) != 3 {
		t.Fatalf("drill of two disks: %s", r.stdout)
	}
	t.Logf("drill of the two-disk server (%s): RTO %.1f s, the drill command %.1f s", dr.Accel, dr.RTOSeconds, time.Since(t0).Seconds())
}
