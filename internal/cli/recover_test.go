package cli

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/inventory"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/testutil"
	"golang.org/x/sys/unix"
)

// jsonRecoverReport is what `recover --json` prints (strict copy).
type jsonRecoverReport struct {
	Hostname   string    `json:"hostname"`
	SnapshotID string    `json:"snapshot_id"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	Plan       struct {
		Hostname string `json:"hostname"`
		BootMode string `json:"boot_mode"`
		Disks    []struct {
			Source     string         `json:"source"`
			Target     string         `json:"target"`
			SourceSize int64          `json:"source_size_bytes"`
			TargetSize int64          `json:"target_size_bytes"`
			Table      map[string]any `json:"partition_table"`
			Resized    string         `json:"resized"`
			OldLen     int64          `json:"old_partition_bytes"`
			NewLen     int64          `json:"new_partition_bytes"`
		} `json:"disks"`
		Filesystems []struct {
			Source     string            `json:"source"`
			Device     string            `json:"device"`
			Type       string            `json:"type"`
			UUID       string            `json:"uuid"`
			Label      string            `json:"label"`
			SizeBytes  int64             `json:"size_bytes"`
			UsedBytes  int64             `json:"used_bytes"`
			Features   []string          `json:"features"`
			Params     map[string]string `json:"params"`
			Subvolumes []map[string]any  `json:"subvolumes"`
		} `json:"filesystems"`
		Mounts []struct {
			Target  string `json:"target"`
			Device  string `json:"device"`
			Type    string `json:"type"`
			Options string `json:"options"`
		} `json:"mounts"`
		Warnings []string `json:"warnings"`
	} `json:"plan"`
	Phases []struct {
		Name     string `json:"name"`
		Duration int64  `json:"duration_ns"`
	} `json:"phases"`
	Fixed    []string `json:"fixed"`
	Warnings []string `json:"warnings"`
	Files    int64    `json:"files_restored"`
	Bytes    int64    `json:"bytes_restored"`
	DryRun   bool     `json:"dry_run"`
}

func init() {
	schemaTypes["recover.report"] = reflect.TypeFor[jsonRecoverReport]()
}

func recTool(t *testing.T, stdin, name string, args ...string) string {
	t.Helper()
	c := exec.Command(testutil.RequireTool(t, name), args...)
	c.Stdin = strings.NewReader(stdin)
	out, err := c.Output()
	if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return string(out)
}

// recoverSource makes a BIOS machine without a boot loader on a loop
// disk (ext4 root, swap), stores its inventory and a snapshot of its root
// in e's repository, and returns the snapshot and the path of the root
// in it.
func recoverSource(t *testing.T, e *env) (snapID, root string) {
	for _, n := range []string{"sfdisk", "partx", "mkfs.ext4", "mkswap", "blkid", "dumpe2fs"} {
		testutil.RequireTool(t, n)
	}
	ctx := context.Background()
	dev := testutil.LoopDisk(t, 96<<20)
	recTool(t, "label: dos\nsize=48MiB, type=83, bootable\ntype=82\n", "sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", dev)
	recTool(t, "", "partx", "-u", dev)
	recTool(t, "", "mkfs.ext4", "-q", "-F", "-L", "cli-root", dev+"p1")
	recTool(t, "", "mkswap", "-L", "cli-swap", dev+"p2")
	root = filepath.Join(t.TempDir(), "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(dev+"p1", root, "ext4", 0, ""); err != nil {
		t.Fatal(err)
	}
	mounted := true
	t.Cleanup(func() {
		if mounted {
			_ = unix.Unmount(root, 0)
		}
	})
	writeFiles(t, root, map[string][]byte{
		"etc/fstab":    []byte("LABEL=cli-root / ext4 defaults 0 1\n" + dev + "p2 none swap sw 0 0\n"),
		"etc/hostname": []byte("cli-src\n"),
		"srv/data.txt": []byte("recovered by the command line\n"),
	})
	doc, err := inventory.Collect(ctx, inventory.Sources{Disks: []string{dev}, Root: root}, "cli-src")
	if err != nil {
		t.Fatal(err)
	}
	for i := range doc.Filesystems {
		for j := range doc.Filesystems[i].Mounts {
			doc.Filesystems[i].Mounts[j].Target = "/"
		}
	}
	doc.Boot = inventory.Boot{Mode: "bios", Loaders: []string{}}
	r := openTestRepo(t, e)
	invID, err := inventory.Save(ctx, r, doc)
	if err != nil {
		t.Fatal(err)
	}
	a, err := archiver.New(r, archiver.Options{Hostname: "cli-src", BeforeSave: func(_ context.Context, sn *snapshot.Snapshot) error {
		sn.Inventory = &invID
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	sn, err := a.Snapshot(ctx, []string{root})
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Unmount(root, 0); err != nil {
		t.Fatal(err)
	}
	mounted = false
	return sn.ID.String(), root
}

// TestRecoverCommand: recover --dry-run --json prints the plan and leaves
// the target as it was; recover --yes rebuilds it and stores the report
// as an event; --config runs unattended onto a smaller disk; a snapshot
// without an inventory is refused naming backup --system-root.
func TestRecoverCommand(t *testing.T) {
	if !testutil.IsRoot() {
		t.Skip("needs root")
	}
	e := newRepo(t, 0)
	img := e.path("blank.img")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, e.path("plain"), map[string][]byte{"a": []byte("a")})
	plain := backupID(t, e, "--no-inventory", e.path("plain"))
	r := e.expectCode(ExitFatal, "recover", "--snapshot", plain, "--disk", img)
	if !strings.Contains(string(r.stderr), "--system-root") {
		t.Errorf("no inventory: %s", r.stderr)
	}

	id, root := recoverSource(t, e)
	target := testutil.LoopDisk(t, 128<<20)
	before := testutil.ContentSum(t, target)
	r = e.mustRun("recover", "--snapshot", id[:8], "--root", root, "--disk", target, "--dry-run", "--json")
	var rep jsonRecoverReport
	decodeStrict(t, r.stdout, &rep)
	if !rep.DryRun || rep.Hostname != "cli-src" || len(rep.Plan.Disks) != 1 || rep.Plan.Disks[0].Target != target || len(rep.Phases) != 1 {
		t.Errorf("dry run report %+v", rep)
	}
	if testutil.ContentSum(t, target) != before {
		t.Fatal("--dry-run changed the target")
	}
	text := e.mustRun("recover", "--snapshot", id[:8], "--root", root, "--disk", target, "--dry-run")
	t.Logf("recover --dry-run:\n%s%s", text.stdout, text.stderr)
	for _, want := range []string{"recover cli-src from snapshot " + id[:8] + ", bios boot", target + "p1", "Filesystems", "cli-root", "on /", "dry run: nothing was written"} {
		if !strings.Contains(string(text.stdout), want) {
			t.Errorf("dry run text lacks %q", want)
		}
	}
	// Without --yes and without a terminal, nothing is written.
	r = e.expectCode(ExitFatal, "recover", "--snapshot", id, "--root", root, "--disk", target)
	if !strings.Contains(string(r.stderr), "--yes") || testutil.ContentSum(t, target) != before {
		t.Errorf("unconfirmed: %s", r.stderr)
	}

	r = e.mustRun("recover", "--snapshot", id, "--root", root, "--disk", target, "--yes", "--json")
	rep = jsonRecoverReport{}
	decodeStrict(t, r.stdout, &rep)
	if len(rep.Phases) != 5 || rep.Files < 3 || len(rep.Fixed) != 1 || !strings.Contains(rep.Fixed[0], "/etc/fstab") {
		t.Errorf("report %+v", rep)
	}
	if got := recTool(t, "", "blkid", "-p", "-o", "value", "-s", "LABEL", target+"p1"); strings.TrimSpace(got) != "cli-root" {
		t.Errorf("label of the new root: %q", got)
	}
	ev := e.mustRun("events", "--repo", e.vars["REWIND_REPOSITORY"], "--json")
	var runs []map[string]any
	if err := json.Unmarshal(ev.stdout, &runs); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, run := range runs {
		if run["kind"] == "recover" && run["result"] == "success" && run["report"] != nil && len(run["phases"].([]any)) == 5 {
			found = true
		}
	}
	if !found {
		t.Errorf("no recover event: %s", ev.stdout)
	}

	// Unattended onto a smaller disk: the configuration names everything.
	small := testutil.LoopDisk(t, 64<<20)
	pw := e.path("pw")
	if err := os.WriteFile(pw, []byte(testPassword), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := e.path("recover.yaml")
	if err := os.WriteFile(cfg, []byte("repository: "+e.vars["REWIND_REPOSITORY"]+"\npassword-file: "+pw+"\nhost: cli-src\ndisks: ["+small+"]\nroot: "+root+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = e.without("REWIND_REPOSITORY", "REWIND_PASSWORD").mustRun("recover", "--config", cfg)
	if !strings.Contains(string(r.stdout), "recovered cli-src onto 1 disk") {
		t.Errorf("config run: %s", r.stdout)
	}
}
