package drill

import (
	"context"
	"net/http"
	"net/http/httptest"

	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/rewind-backup/rewind/internal/plan"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/inventory"
	"github.com/rewind-backup/rewind/internal/qemu"
	"github.com/rewind-backup/rewind/internal/recovery"
)

func drillEvent(host, snap, result string, start time.Time, restore, boot, probes time.Duration) event.Stored {
	return event.Stored{Run: event.Run{Host: host, Job: "drill", Kind: Kind, Start: start, End: start.Add(restore + boot + probes),
		Result: result, Snapshot: snap, Phases: []event.Phase{{Name: PhaseRestore, Duration: restore}, {Name: PhaseBoot, Duration: boot}, {Name: PhaseProbes, Duration: probes}}}}
}

// TestTrend: each successful drill is compared with the previous one of
// its host and the median of those before it; failed drills and other
// kinds are not counted; Verified keeps the newest success.
func TestTrend(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	s := time.Second
	rs := []event.Stored{
		drillEvent("a", "s1", event.ResultSuccess, t0, 10*s, 20*s, 2*s), // 32
		{Run: event.Run{Host: "a", Job: "nightly", Kind: "files", Start: t0.Add(time.Hour), Result: event.ResultSuccess, Snapshot: "s2"}},
		drillEvent("a", "s2", event.ResultFailed, t0.Add(2*time.Hour), 10*s, 90*s, 0),    // not counted
		drillEvent("b", "s3", event.ResultSuccess, t0.Add(3*time.Hour), 1*s, 1*s, 1*s),   // other host
		drillEvent("a", "s2", event.ResultSuccess, t0.Add(4*time.Hour), 12*s, 20*s, 4*s), // 36
		drillEvent("a", "s4", event.ResultSuccess, t0.Add(5*time.Hour), 10*s, 15*s, 1*s), // 26
	}
	// Run by an agent on "agent1": the report names the host drilled.
	rs[3].Host, rs[3].Report = "agent1", []byte(`{"hostname":"b"}`)
	if only := Trend(rs, "b"); len(only) != 1 || only[0].Snapshot != "s3" {
		t.Errorf("drills of b: %+v", only)
	}
	rows := Trend(rs, "")
	if len(rows) != 5 {
		t.Fatalf("%d rows, want 5 drills: %+v", len(rows), rows)
	}
	if rows[0].RTO != 32 || rows[0].PrevChange != nil || rows[0].Boot != 20 {
		t.Errorf("first drill: %+v", rows[0])
	}
	if rows[1].Result != event.ResultFailed || rows[1].PrevChange != nil {
		t.Errorf("failed drill: %+v", rows[1])
	}
	if rows[2].Host != "b" || rows[2].PrevChange != nil {
		t.Errorf("first drill of b: %+v", rows[2])
	}
	if r := rows[3]; r.PrevChange == nil || *r.PrevChange != 4 || *r.MedianChange != 4 {
		t.Errorf("second success of a: %+v", r)
	}
	if r := rows[4]; r.PrevChange == nil || *r.PrevChange != -10 || *r.MedianChange != 26-34 {
		t.Errorf("third success of a: change %v, median change %v; want -10, -8", *r.PrevChange, *r.MedianChange)
	}
	v := Verified(append(rs, drillEvent("a", "s5", event.ResultFailed, t0.Add(6*time.Hour), s, s, s)))
	if len(v) != 4 || v["s2"] != rs[4].End || !v["s3"].Equal(rs[3].End) {
		t.Errorf("verified %v", v)
	}
	if m := Median([]float64{3, 1, 2, 10}); m != 2.5 {
		t.Errorf("median %v", m)
	}
}

// TestQEMUArgsIsolated: the guest's network is restricted and only the
// probed ports are forwarded, from 127.0.0.1.
func TestQEMUArgsIsolated(t *testing.T) {
	args := strings.Join(qemuArgs(BootOptions{Disk: "/d.qcow2", MemoryMiB: 256}, "tcg", map[int]int{80: 4000, 22: 4001}, "/s.log", "/q.sock", []string{"-drive", "if=pflash,format=raw,unit=1,file=/vars.fd"}), " ")
	for _, want := range []string{
		"-netdev user,id=rewind-net,restrict=on,hostfwd=tcp:127.0.0.1:4001-:22,hostfwd=tcp:127.0.0.1:4000-:80 ",
		"-serial file:/s.log", "file=/d.qcow2,format=qcow2,if=none", "if=pflash,format=raw,unit=1,file=/vars.fd",
		"name=org.qemu.guest_agent.0", "-accel tcg",
	} {
		if !strings.Contains(args, want) {
			t.Errorf("QEMU args lack %q:\n%s", want, args)
		}
	}
}

// TestQEMUArgsSeveralDisks: every disk of the machine is attached on
// virtio-blk, only the boot disk with a boot index.
func TestQEMUArgsSeveralDisks(t *testing.T) {
	args := strings.Join(qemuArgs(BootOptions{Disk: "/d.qcow2", More: []string{"/d-2.qcow2", "/d-3.qcow2"}, MemoryMiB: 256}, "tcg", nil, "/s.log", "/q.sock", nil), " ")
	for _, want := range []string{
		"-drive file=/d.qcow2,format=qcow2,if=none,id=rewind-disk -device virtio-blk-pci,drive=rewind-disk,bootindex=0 ",
		"-drive file=/d-2.qcow2,format=qcow2,if=none,id=rewind-disk2 -device virtio-blk-pci,drive=rewind-disk2 ",
		"-drive file=/d-3.qcow2,format=qcow2,if=none,id=rewind-disk3 -device virtio-blk-pci,drive=rewind-disk3 ",
	} {
		if !strings.Contains(args, want) {
			t.Errorf("QEMU args lack %q:\n%s", want, args)
		}
	}
	if strings.Count(args, "bootindex") != 1 {
		t.Errorf("more than one boot index:\n%s", args)
	}
}

// fakeAgent answers like qemu-ga: guest-sync, guest-exec and
// guest-exec-status of `systemctl is-active` (active for "up.service").
func fakeAgent(t *testing.T, sock string) {
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				var unit string
				c.Write([]byte("{\"return\": 7}\n")) // a stale reply
				for sc.Scan() {
					var req struct {
						Execute   string          `json:"execute"`
						Arguments json.RawMessage `json:"arguments"`
					}
					json.Unmarshal(sc.Bytes(), &req)
					var ret any
					switch req.Execute {
					case "guest-sync":
						var a struct{ ID int64 }
						json.Unmarshal(req.Arguments, &a)
						ret = a.ID
					case "guest-exec":
						var a struct {
							Path string
							Arg  []string
						}
						json.Unmarshal(req.Arguments, &a)
						unit = a.Arg[len(a.Arg)-1]
						ret = map[string]int{"pid": 42}
					case "guest-exec-status":
						state, code := "inactive\n", 3
						if unit == "up.service" {
							state, code = "active\n", 0
						}
						ret = map[string]any{"exited": true, "exitcode": code, "out-data": base64.StdEncoding.EncodeToString([]byte(state))}
					}
					b, _ := json.Marshal(map[string]any{"return": ret})
					c.Write(append([]byte("\xff"), append(b, '\n')...))
				}
			}()
		}
	}()
}

func TestGuestAgentUnit(t *testing.T) {
	dir, err := os.MkdirTemp("", "rw-qga-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "qga.sock")
	fakeAgent(t, sock)
	a, err := dialAgent(t.Context(), sock, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.UnitActive(t.Context(), "up.service"); err != nil {
		t.Errorf("active unit: %v", err)
	}
	if err := a.UnitActive(t.Context(), "down.service"); err == nil || !strings.Contains(err.Error(), "down.service is inactive") {
		t.Errorf("inactive unit: %v", err)
	}

	// A guest without qemu-ga: the channel is open, nothing answers.
	silent := filepath.Join(dir, "silent.sock")
	l, err := net.Listen("unix", silent)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			defer c.Close()
			time.Sleep(3 * time.Second)
		}
	}()
	if _, err := dialAgent(t.Context(), silent, 300*time.Millisecond); !errors.Is(err, ErrNoAgent) || !strings.Contains(err.Error(), "need qemu-guest-agent") {
		t.Errorf("silent guest: %v", err)
	}
}

func TestWorkDirKeep(t *testing.T) {
	d := t.TempDir()
	os.WriteFile(filepath.Join(d, "x"), nil, 0o600)
	if _, err := workDir(d); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("non-empty keep folder: %v", err)
	}
	k, err := workDir(filepath.Join(d, "new"))
	if err != nil || filepath.Base(k) != "new" {
		t.Errorf("new keep folder: %q %v", k, err)
	}
}

// fakeVM is a VM without QEMU: a serial log the test writes and guest
// ports forwarded to servers of the test.
func fakeVM(t *testing.T, fwd map[int]int) *VM {
	dir, err := os.MkdirTemp("", "rw-fvm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	vm := &VM{Serial: filepath.Join(dir, "serial.log"), Agent: filepath.Join(dir, "qga.sock"), Forwarded: fwd, exited: make(chan struct{}), stderr: &qemu.Tail{Max: 100}}
	os.WriteFile(vm.Serial, []byte("GRUB\nREWIND-SERVER-UP rewind-srv\n"), 0o600)
	return vm
}

// TestProbes: each kind of probe passes against a service that answers
// right and fails with a message that says what was wrong, after its
// retries, against one that does not.
func TestProbes(t *testing.T) {
	mismatchWait, agentWait = 300*time.Millisecond, 300*time.Millisecond
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("token-42\n"))
	}))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	closed, _ := freePort() // nothing listens there
	vm := fakeVM(t, map[int]int{80: port, 22: closed})
	silent, err := net.Listen("unix", vm.Agent) // a channel without qemu-ga
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for _, s := range []string{"marker REWIND-SERVER-UP", "tcp 80", "http / 80", "http / 80 token-42", "http /missing 80 404"} {
		p, _ := plan.ParseProbe(s)
		if err := runProbe(ctx, vm, p); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	for s, want := range map[string]string{
		"http / 80 other-token": `without "other-token" in its body`,
		"http /missing 80":      "404 Not Found, want a 2xx status",
		"http / 80 500":         "200 OK, want 500",
		"unit nginx.service":    "need qemu-guest-agent",
		"http / 8080":           "guest port 8080 is not forwarded",
	} {
		p, _ := plan.ParseProbe(s)
		pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
		err := runProbe(pctx, vm, p)
		pcancel()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error with %q", s, err, want)
		}
	}
	// A port nothing listens on, or a marker never printed: retried
	// until the time is up.
	for s, want := range map[string]string{"tcp 22": "connect to guest port 22", "marker login:": `"login:" not on the serial console`} {
		p, _ := plan.ParseProbe(s)
		pctx, pcancel := context.WithTimeout(ctx, 700*time.Millisecond)
		err := runProbe(pctx, vm, p)
		pcancel()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error with %q", s, err, want)
		}
	}
}

// FuzzParseAgentLine: any line from the guest is skipped, taken or
// reported as the agent's error, never a panic.
func FuzzParseAgentLine(f *testing.F) {
	for _, s := range []string{`{"return": 7}`, "\xff{\"return\": {\"pid\": 1}}\n", `{"error": {"class": "GenericError", "desc": "no"}}`, `{"return": null}`, "garbage", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		ret, err := parseAgentLine("guest-exec", line, nil)
		if ret != nil && err != nil {
			t.Fatalf("both a return and an error: %s, %v", ret, err)
		}
		if ret != nil && !json.Valid(ret) {
			t.Fatalf("return %q is not JSON", ret)
		}
	})
}

// TestRecordedDisks: the VM disks stand for the disks with a partition
// table, the boot disk (the one holding /boot, else /, else the first)
// first; none is refused with what to do. DiskFile names the others.
func TestRecordedDisks(t *testing.T) {
	tbl := func(parts ...string) *inventory.PartitionTable {
		pt := &inventory.PartitionTable{Type: "gpt"}
		for _, p := range parts {
			pt.Partitions = append(pt.Partitions, inventory.Partition{Path: p})
		}
		return pt
	}
	paths := func(ds []*inventory.Disk) string {
		var s []string
		for _, d := range ds {
			s = append(s, d.Path)
		}
		return strings.Join(s, " ")
	}
	one := &inventory.Document{Disks: []inventory.Disk{{Path: "/dev/sda", SizeBytes: 1 << 30, Table: tbl("/dev/sda1")}, {Path: "/dev/sr0"}}}
	if ds, order, err := RecordedDisks(one); err != nil || paths(ds) != "/dev/sda" || fmt.Sprint(order) != "[0]" {
		t.Errorf("one disk: %s %v, %v", paths(ds), order, err)
	}
	mounted := func(dev, target string) inventory.Filesystem {
		return inventory.Filesystem{Device: dev, Type: "ext4", Mounts: []inventory.Mount{{Target: target}}}
	}
	// The data disk is recorded first; / is on the second.
	two := &inventory.Document{Disks: []inventory.Disk{{Path: "/dev/sda", Table: tbl("/dev/sda1")}, {Path: "/dev/sdb", Table: tbl("/dev/sdb1", "/dev/sdb2")}},
		Filesystems: []inventory.Filesystem{mounted("/dev/sda1", "/srv/data"), mounted("/dev/sdb2", "/")}}
	if ds, order, err := RecordedDisks(two); err != nil || paths(ds) != "/dev/sdb /dev/sda" || fmt.Sprint(order) != "[1 0]" {
		t.Errorf("root on the second disk: %s %v, %v", paths(ds), order, err)
	}
	// /boot wins over /.
	three := &inventory.Document{Disks: []inventory.Disk{{Path: "/dev/sda", Table: tbl("/dev/sda1")}, {Path: "/dev/sdb", Table: tbl("/dev/sdb1")}, {Path: "/dev/sdc", Table: tbl("/dev/sdc1")}},
		Filesystems: []inventory.Filesystem{mounted("/dev/sda1", "/"), mounted("/dev/sdc1", "/boot")}}
	if ds, order, err := RecordedDisks(three); err != nil || paths(ds) != "/dev/sdc /dev/sda /dev/sdb" || fmt.Sprint(order) != "[2 0 1]" {
		t.Errorf("/boot on the third disk: %s %v, %v", paths(ds), order, err)
	}
	// Nothing mounted: the first.
	bare := &inventory.Document{Disks: []inventory.Disk{{Path: "/dev/sda", Table: tbl()}, {Path: "/dev/sdb", Table: tbl()}}}
	if ds, _, err := RecordedDisks(bare); err != nil || paths(ds) != "/dev/sda /dev/sdb" {
		t.Errorf("no mounts: %s, %v", paths(ds), err)
	}
	if _, _, err := RecordedDisks(&inventory.Document{}); err == nil || !strings.Contains(err.Error(), "--system-root") {
		t.Errorf("no disk: %v", err)
	}
	for _, c := range [][3]string{{"/v/web1.qcow2", "0", "/v/web1.qcow2"}, {"/v/web1.qcow2", "1", "/v/web1-2.qcow2"},
		{"/v/web1.qcow2", "2", "/v/web1-3.qcow2"}, {"/v/web1", "1", "/v/web1-2"}} {
		var n int
		fmt.Sscan(c[1], &n)
		if got := DiskFile(c[0], n); got != c[2] {
			t.Errorf("DiskFile(%s, %d) = %s, want %s", c[0], n, got, c[2])
		}
	}
}

// TestExportVMSizeRefusals: more sizes than disks, or an existing second
// output, are refused before anything is made.
func TestExportVMSizeRefusals(t *testing.T) {
	if _, err := qemu.LookPath(qemu.ImgProgram); err != nil {
		t.Skip(err)
	}
	tbl := &inventory.PartitionTable{Type: "gpt"}
	doc := &inventory.Document{Disks: []inventory.Disk{{Path: "/dev/sda", SizeBytes: 1 << 30, Table: tbl}, {Path: "/dev/sdb", SizeBytes: 1 << 30, Table: tbl}}}
	called := false
	rec := func(context.Context, []recovery.Target) (*recovery.Report, error) { called = true; return nil, nil }
	dir := t.TempDir()
	out := filepath.Join(dir, "vm.qcow2")
	_, err := ExportVM(context.Background(), ExportOptions{Out: out, Sizes: []int64{1 << 30, 1 << 30, 1 << 30}, Inventory: doc, Recover: rec})
	if err == nil || !strings.Contains(err.Error(), "3 sizes for 2 disks") || !strings.Contains(err.Error(), "/dev/sda, /dev/sdb") {
		t.Errorf("three sizes for two disks: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "vm-2.qcow2"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ExportVM(context.Background(), ExportOptions{Out: out, Inventory: doc, Recover: rec}); err == nil || !strings.Contains(err.Error(), "vm-2.qcow2 exists") {
		t.Errorf("the second output exists: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 || called {
		t.Errorf("a refused export made %v (recover called: %v)", ents, called)
	}
}
