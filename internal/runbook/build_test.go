package runbook

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/inventory"
	"github.com/rewind-backup/rewind/internal/plan"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func mustID(t *testing.T, s string) id.ID {
	t.Helper()
	i, err := id.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// serverInput is the test server of issue 15 (hostname rewind-srv, GPT
// with a BIOS-boot partition, an ESP, the ext4 root srv-root and swap),
// backed up with a PostgreSQL cluster and a SQLite database, drilled once.
func serverInput(t *testing.T) Input {
	t0 := time.Date(2026, 12, 7, 2, 0, 0, 0, time.UTC)
	inv := &inventory.Document{
		Version: 1, Host: "rewind-srv", Time: t0.Add(-time.Hour),
		Disks: []inventory.Disk{{Name: "vda", Path: "/dev/vda", SizeBytes: 256 << 20, LogicalSectorSize: 512, PhysicalSectorSize: 512,
			Table: &inventory.PartitionTable{Type: "gpt", ID: "5B1C2D3E-0000-4000-8000-000000000001", SectorSize: 512, FirstLBA: 34, LastLBA: 524254,
				Partitions: []inventory.Partition{
					{Number: 1, Path: "/dev/vda1", Start: 2048, Size: 2048, Type: "21686148-6449-6E6F-744E-656564454649", Name: "bios"},
					{Number: 2, Path: "/dev/vda2", Start: 4096, Size: 65536, Type: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", Name: "esp"},
					{Number: 3, Path: "/dev/vda3", Start: 69632, Size: 32768, Type: "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", Name: "swap"},
					{Number: 4, Path: "/dev/vda4", Start: 102400, Size: 421888, Type: "0FC63DAF-8483-4772-8E79-3D69D8477DE4", Name: "root"},
				}}}},
		Filesystems: []inventory.Filesystem{
			{Device: "/dev/vda2", Type: "vfat", UUID: "1234-ABCD", Label: "ESP", SizeBytes: 32 << 20, UsedBytes: 3 << 20, Mounts: []inventory.Mount{{Target: "/boot/efi", Root: "/"}}},
			{Device: "/dev/vda3", Type: "swap", UUID: "0b3e8f7e-3c55-4d0c-9c36-b3e1a0b5d001", SizeBytes: 16 << 20},
			{Device: "/dev/vda4", Type: "ext4", UUID: "6f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0", Label: "srv-root", SizeBytes: 206 << 20, UsedBytes: 41 << 20, Mounts: []inventory.Mount{{Target: "/", Root: "/"}}},
		},
		Fstab:  &inventory.TextFile{Path: "/etc/fstab", Content: "LABEL=srv-root / ext4 defaults 0 1\nUUID=1234-ABCD /boot/efi vfat umask=0077 0 2\n/dev/vda3 none swap sw 0 0\n"},
		Boot:   inventory.Boot{Mode: "uefi", Loaders: []string{"grub"}},
		Kernel: inventory.Kernel{Release: "6.1.0-28-amd64", Installed: []string{"6.1.0-27-amd64", "6.1.0-28-amd64"}},
		OS:     map[string]string{"PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)"},
		Network: inventory.Network{
			Interfaces: []inventory.Interface{
				{Name: "lo", Type: "loopback", MTU: 65536, Addresses: []inventory.Address{{Family: "inet", CIDR: "127.0.0.1/8"}}},
				{Name: "eth0", Type: "ether", MAC: "52:54:00:12:34:56", MTU: 1500, Addresses: []inventory.Address{{Family: "inet", CIDR: "10.0.2.15/24"}, {Family: "inet6", CIDR: "fe80::5054:ff:fe12:3456/64"}}},
			},
			Routes: []inventory.Route{{Family: "inet", Dst: "default", Gateway: "10.0.2.2", Dev: "eth0"}},
		},
		Units: []inventory.Unit{
			{Name: "ssh.service", By: "multi-user.target", Kind: "wants"},
			{Name: "httpd.service", By: "multi-user.target", Kind: "wants"},
			{Name: "remote-fs.target", By: "multi-user.target", Kind: "wants"},
			{Name: "httpd.service", By: "default.target", Kind: "wants"},
		},
		Warnings: []string{"efibootmgr: not installed"},
	}
	sn := &snapshot.Snapshot{Time: t0, Hostname: "rewind-srv", Paths: []string{"/"},
		ID: mustID(t, "4f2a91c3e0b7d5a6c8f1e2d3b4a59687706f1e2d3c4b5a69788796a5b4c3d2e1")}
	pgOld := &snapshot.Snapshot{Time: t0.Add(-48 * time.Hour), Hostname: "rewind-srv",
		ID:       mustID(t, "1111111111111111111111111111111111111111111111111111111111111111"),
		Postgres: &snapshot.PGInfo{DataDir: "/var/lib/postgresql/15/main", VersionText: "15.10"}}
	pg := &snapshot.Snapshot{Time: t0.Add(-2 * time.Hour), Hostname: "rewind-srv",
		ID:       mustID(t, "2222222222222222222222222222222222222222222222222222222222222222"),
		Postgres: &snapshot.PGInfo{DataDir: "/var/lib/postgresql/15/main", VersionText: "15.10"}}
	lite := &snapshot.Snapshot{Time: t0.Add(-time.Hour), Hostname: "rewind-srv",
		ID:     mustID(t, "3333333333333333333333333333333333333333333333333333333333333333"),
		SQLite: []snapshot.SQLiteCapture{{Path: "/srv/app/db.sqlite3"}}}
	other := &snapshot.Snapshot{Time: t0, Hostname: "other",
		ID:    mustID(t, "5555555555555555555555555555555555555555555555555555555555555555"),
		MySQL: &snapshot.MySQLInfo{DataDir: "/var/lib/mysql"}}
	drill := &event.Stored{Run: event.Run{Host: "rewind-srv", Job: "drill", Kind: "drill", Start: t0.Add(3 * time.Hour), End: t0.Add(3*time.Hour + 95*time.Second),
		Result: event.ResultSuccess, Snapshot: sn.ID.String(),
		Phases: []event.Phase{{Name: "restore", Duration: 41200 * time.Millisecond}, {Name: "boot", Duration: 14800 * time.Millisecond}, {Name: "probes", Duration: 1234 * time.Millisecond}}}}
	pl := &plan.Plan{
		Repositories: map[string]*plan.Repository{"main": {Location: "rest:https://backup:s3cret@backup.example.net:8000/srv", PasswordFile: "/etc/rewind/main.password"}},
		Jobs: map[string]*plan.Job{
			"files": {Kind: plan.KindFiles, Paths: []string{"/"}, Schedule: "daily"},
			"drill": {Kind: "drill", Schedule: "weekly"},
		},
	}
	return Input{Snapshot: sn, Inventory: inv, Snapshots: []*snapshot.Snapshot{pgOld, pg, lite, other, sn},
		Repository: "rest:https://backup:xxxxx@backup.example.net:8000/srv", PasswordFrom: "--password-file /etc/rewind/main.password",
		Plan: pl, PlanPath: "/etc/rewind/rewind.yaml", Drill: drill}
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (go test ./internal/runbook -run TestGolden -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test ./internal/runbook -run TestGolden -update rewrites it after review):\n--- got\n%s", p, got)
	}
}

// TestGoldenRunbook: the runbook of the test server, in both formats, is
// exactly the reviewed one, and building it twice gives the same bytes.
func TestGoldenRunbook(t *testing.T) {
	in := serverInput(t)
	d, f, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	if f.RTO != 57234*time.Millisecond || f.BootMode != "uefi" || f.Host != "rewind-srv" {
		t.Errorf("facts %+v", f)
	}
	md := d.Markdown()
	checkGolden(t, "rewind-srv.md", md)
	h, err := d.HTML()
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "rewind-srv.html", h)
	d2, _, _ := Build(in)
	if !bytes.Equal(d2.Markdown(), md) {
		t.Error("two builds of the same facts differ")
	}
	for _, want := range []string{
		"rewind recover --snapshot 4f2a91c3 --disk /dev/NEW1 --dry-run",
		"rewind pg restore --latest --host rewind-srv --target /var/lib/postgresql/15/main",
		"Newest backup: `22222222`",
		"rewind restore 33333333 --include /srv/app/db.sqlite3 --target / --overwrite",
		"systemctl is-active httpd.service ssh.service",
		"| total | 57.2s |",
	} {
		if !bytes.Contains(md, []byte(want)) {
			t.Errorf("the runbook lacks %q", want)
		}
	}
	for _, bad := range []string{"s3cret", "/var/lib/mysql", "remote-fs.target"} {
		if bytes.Contains(md, []byte(bad)) || bytes.Contains(h, []byte(bad)) {
			t.Errorf("the runbook shows %q", bad)
		}
	}
}

// TestNoDrill: without a drill, the summary says how to run one.
func TestNoDrill(t *testing.T) {
	in := serverInput(t)
	in.Drill, in.Plan = nil, nil
	d, f, err := Build(in)
	if err != nil || f.RTO != 0 {
		t.Fatal(err, f)
	}
	md := d.Markdown()
	for _, want := range []string{"no drill yet: run `rewind drill --host rewind-srv`", "`--plan FILE`"} {
		if !bytes.Contains(md, []byte(want)) {
			t.Errorf("the runbook lacks %q:\n%s", want, md)
		}
	}
}

// TestHostileNames: a host name, label, unit or path holding markup or
// script is shown as text in both formats and quoted in commands.
func TestHostileNames(t *testing.T) {
	in := serverInput(t)
	evil := "<script>alert(1)</script>"
	in.Snapshot.Hostname = "srv" + evil
	in.Inventory.Filesystems[2].Label = "x`|" + evil
	in.Inventory.Units = append(in.Inventory.Units, inventory.Unit{Name: "a;rm -rf /.service"})
	in.Inventory.Fstab.Content += "# " + evil + "\n```\n"
	in.Inventory.OS["PRETTY_NAME"] = evil
	d, _, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	h, err := d.HTML()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(h, []byte("<script>")) {
		t.Errorf("the HTML runbook holds a script element:\n%s", h)
	}
	if !bytes.Contains(h, []byte("&lt;script&gt;alert(1)&lt;/script&gt;")) {
		t.Error("the HTML runbook does not show the hostile name escaped")
	}
	md := string(d.Markdown())
	for _, line := range strings.Split(md, "\n") {
		if strings.Contains(line, "<script>") && !strings.HasPrefix(strings.TrimSpace(line), "rewind ") &&
			!strings.Contains(line, "'") && !strings.HasPrefix(line, "# <") && !strings.Contains(line, "`") {
			t.Errorf("markdown line shows raw markup outside code: %q", line)
		}
	}
	for _, want := range []string{
		"# Recovery runbook of `srv<script>alert(1)</script>`",
		"rewind snapshots --host 'srv<script>alert(1)</script>'",
		"'a;rm -rf /.service'",
		"Operating system: \\<script\\>alert(1)\\</script\\>\n",
		"````\n", // the fstab's ``` does not close its fence
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
}

func TestMarkdownInline(t *testing.T) {
	for in, want := range map[string]string{
		"a <b> & c":              `a \<b\> \& c`,
		"- item":                 `\- item`,
		C("x`y"):                 "``x`y``",
		"see " + C("|") + " end": "see `|` end",
		C("`a"):                  "`` `a ``",
		"line\nbreak":            "line break",
	} {
		if got := mdInline(in, false); got != want {
			t.Errorf("mdInline(%q) = %q, want %q", in, got, want)
		}
	}
	if got := mdInline(C("a|b"), true); got != "`a\\|b`" {
		t.Errorf("cell code = %q", got)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/dev/sda": "/dev/sda", "": "''", "a b": "'a b'", "it's": `'it'\''s'`, "$(x)": "'$(x)'",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"rest:https://u:pw@h:8000/x": "rest:https://u:xxxxx@h:8000/x",
		"rest:https://h/x@y":         "rest:https://h/x@y",
		"/srv/repo":                  "/srv/repo",
		"s3:https://h/b":             "s3:https://h/b",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMinSize(t *testing.T) {
	in := serverInput(t)
	fsOf := map[string]inventory.Filesystem{}
	for _, fs := range in.Inventory.Filesystems {
		fsOf[fs.Device] = fs
	}
	got, ok := minSize(in.Inventory.Disks[0], fsOf)
	if want := int64(102400*512 + 41<<20 + 2<<20); !ok || got != want {
		t.Errorf("minSize = %d, %v; want %d", got, ok, want)
	}
	// Without UsedBytes the last partition is needed whole.
	fsOf["/dev/vda4"] = inventory.Filesystem{Device: "/dev/vda4", Type: "ext4"}
	if got, _ := minSize(in.Inventory.Disks[0], fsOf); got != (102400+421888)*512+2<<20 {
		t.Errorf("minSize without used bytes = %d", got)
	}
}

// TestFailedDrill: the RTO comes from the last successful drill, and a
// drill that failed after it is a warning naming its error.
func TestFailedDrill(t *testing.T) {
	in := serverInput(t)
	ok := *in.Drill
	bad := ok
	bad.Start, bad.Result, bad.Error, bad.Phases = ok.Start.Add(time.Hour), event.ResultFailed, "the boot marker never came", nil
	rec := event.Stored{Run: event.Run{Kind: "recover", Start: ok.Start, Result: event.ResultSuccess}}
	d, failed, r := lastRuns([]event.Stored{ok, rec, bad})
	if d == nil || d.Start != ok.Start || failed == nil || failed.Error != bad.Error || r == nil || r.Kind != "recover" {
		t.Fatalf("lastRuns: %v %v %v", d, failed, r)
	}
	if _, failed, _ := lastRuns([]event.Stored{bad, ok}); failed != nil {
		t.Error("a drill that failed before the last success is still reported")
	}
	in.Drill, in.FailedDrill = d, failed
	doc, facts, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	md := string(doc.Markdown())
	if facts.RTO != Total(ok.Phases) || !strings.Contains(md, "failed: the boot marker never came") {
		t.Errorf("RTO %v; runbook:\n%s", facts.RTO, md)
	}
}
