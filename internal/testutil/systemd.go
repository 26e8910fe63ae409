package testutil

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// SystemdNS is a real systemd running as PID 1 of private PID, mount,
// cgroup, UTS, IPC and network namespaces, for the tests of the plan's
// unit steps on machines (CI containers) where systemd is not PID 1.
//
// Its root is a tmpfs of its own: the host's /usr read-only, /sys
// read-only, a /dev with a few device nodes, its own /etc (only the test
// units in /etc/systemd/system), /run, /tmp and /var. The one host
// directory writable from inside is Shared, mounted at the same path, so
// a path under Shared means the same file inside and outside.
type SystemdNS struct {
	// Shared is a host directory that is also mounted at the same path
	// inside the namespace, writable from both sides.
	Shared string
	// PID is systemd's process ID as the host sees it.
	PID int

	root     string // the namespace's root, a path in holder's mount namespace
	holder   *exec.Cmd
	systemd  *exec.Cmd
	console  string
	cgroup   string
	unitsDir string
}

// systemdBin is the service manager the namespace runs.
const systemdBin = "/usr/lib/systemd/systemd"

// SystemdTarget is the unit the namespace boots to: it pulls in nothing,
// so no unit of the distribution runs.
const SystemdTarget = "rwtest.target"

// SystemdPID1 boots systemd as PID 1 of new namespaces and returns it
// once it has finished booting to SystemdTarget. The test is skipped
// without root or without systemd, unshare and nsenter, or failed under
// CI=true; a boot that fails is a failure, with systemd's console output.
// Everything is killed at the end of the test: killing PID 1 of a PID
// namespace kills every process in it, and the mounts go with the mount
// namespace.
func SystemdPID1(t testing.TB) *SystemdNS {
	t.Helper()
	if !IsRoot() {
		unavailable(t, "a systemd as PID 1 of a private namespace needs root")
	}
	bin := filepath.Clean(systemdBin)
	if _, err := os.Stat(bin); err != nil {
		unavailable(t, "systemd is not installed (%v): apt-get install systemd", err)
	}
	unshare := RequireTool(t, "unshare")
	nsenter := RequireTool(t, "nsenter")
	cgParent, err := cgroup2Mount()
	if err != nil {
		unavailable(t, "systemd as PID 1: %v", err)
	}

	dir := t.TempDir()
	ns := &SystemdNS{
		Shared:  filepath.Join(dir, "shared"),
		root:    filepath.Join(dir, "root"),
		console: filepath.Join(dir, "console.log"),
	}
	for _, d := range []string{ns.Shared, ns.root} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(ns.console, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.stop)

	// The holder keeps a private mount namespace in which the root is
	// built; the host never sees these mounts.
	ns.holder = exec.Command(unshare, "--mount", "--propagation", "private", "--", "sleep", "infinity")
	ns.holder.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := ns.holder.Start(); err != nil {
		t.Fatalf("start the mount namespace holder: %v", err)
	}
	if err := waitNewMountNS(ns.holder.Process.Pid); err != nil {
		t.Fatal(err)
	}
	// A cgroup of its own, which becomes the root of its cgroup namespace.
	ns.cgroup = filepath.Join(cgParent, "rewind-test-"+randomHex(6))
	if err := os.Mkdir(ns.cgroup, 0o755); err != nil {
		unavailable(t, "systemd as PID 1: create a cgroup: %v", err)
	}
	if err := ns.buildRoot(nsenter); err != nil {
		t.Fatalf("build the root of the systemd namespace: %v", err)
	}

	cgfd, err := unix.Open(ns.cgroup, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open %s: %v", ns.cgroup, err)
	}
	defer unix.Close(cgfd)

	ns.systemd = exec.Command(nsenter, "--target", strconv.Itoa(ns.holder.Process.Pid), "--mount", "--",
		unshare, "--pid", "--fork", "--kill-child", "--cgroup", "--uts", "--ipc", "--net",
		"--root", ns.root, "--mount-proc",
		"/usr/lib/systemd/systemd", "--unit="+SystemdTarget, "--log-target=console", "--show-status=no",
		// Only cgroup v2, rooted at its own cgroup by the cgroup namespace:
		// on a hybrid host, systemd would otherwise mount the v1
		// hierarchies, whose namespace root is the host's.
		"systemd.unified_cgroup_hierarchy=1")
	ns.systemd.Env = []string{"container=rewind-test", "PATH=/usr/sbin:/usr/bin", "SYSTEMD_LOG_LEVEL=info"}
	ns.systemd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, UseCgroupFD: true, CgroupFD: cgfd}
	out, err := os.OpenFile(ns.console, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	ns.systemd.Stdout, ns.systemd.Stderr = out, out
	if err := ns.systemd.Start(); err != nil {
		t.Fatalf("start systemd: %v", err)
	}
	pid, err := childOf(ns.systemd.Process.Pid, 5*time.Second)
	if err != nil {
		t.Fatalf("systemd as PID 1: %v; console:\n%s", err, ns.consoleText())
	}
	ns.PID = pid
	if err := ns.waitBooted(30 * time.Second); err != nil {
		t.Fatalf("systemd as PID 1 did not boot: %v; console:\n%s", err, ns.consoleText())
	}
	return ns
}

// buildRoot mounts and fills the namespace's root, in the holder's mount
// namespace: files are written through /proc/HOLDER/root, mounts are
// made by mount(8) under nsenter.
func (ns *SystemdNS) buildRoot(nsenter string) error {
	holder := strconv.Itoa(ns.holder.Process.Pid)
	mount := func(args ...string) error {
		cmd := exec.Command(nsenter, append([]string{"--target", holder, "--mount", "--", "mount"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("mount %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
		return nil
	}
	in := func(p string) string { return filepath.Join("/proc", holder, "root", ns.root, p) }
	if err := mount("-t", "tmpfs", "-o", "mode=0755", "rewind-test-root", ns.root); err != nil {
		return err
	}
	for _, d := range []string{"usr", "etc/systemd/system", "dev", "proc", "sys", "run", "tmp", "var"} {
		if err := os.MkdirAll(in(d), 0o755); err != nil {
			return err
		}
	}
	for name, target := range map[string]string{"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64",
		"etc/os-release": "../usr/lib/os-release", "etc/mtab": "../proc/self/mounts"} {
		if err := os.Symlink(target, in(name)); err != nil {
			return err
		}
	}
	steps := [][]string{
		{"--bind", "/usr", ns.root + "/usr"},
		{"-o", "remount,bind,ro,nosuid,nodev", ns.root + "/usr"},
		{"--bind", "/sys", ns.root + "/sys"},
		{"-o", "remount,bind,ro,nosuid,nodev,noexec", ns.root + "/sys"},
		// Its cgroup as its /sys/fs/cgroup: systemd sees cgroup v2 alone
		// and keeps to it.
		{"--bind", ns.cgroup, ns.root + "/sys/fs/cgroup"},
		{"-t", "tmpfs", "-o", "mode=0755,nosuid", "rewind-test-dev", ns.root + "/dev"},
		{"-t", "tmpfs", "-o", "mode=0755,nosuid,nodev", "rewind-test-run", ns.root + "/run"},
		{"-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "rewind-test-tmp", ns.root + "/tmp"},
		{"-t", "tmpfs", "-o", "mode=0755,nosuid,nodev", "rewind-test-var", ns.root + "/var"},
	}
	for _, s := range steps {
		if err := mount(s...); err != nil {
			return err
		}
	}
	// Shared, at the same path: made after the tmpfs mounts above, which
	// would hide it when it lies under /tmp or /var.
	if err := os.MkdirAll(in(ns.Shared), 0o755); err != nil {
		return err
	}
	if err := mount("--bind", ns.Shared, ns.root+ns.Shared); err != nil {
		return err
	}
	// /dev: a few device nodes, and a console that is a file of the test.
	for _, n := range []struct {
		name         string
		major, minor uint32
	}{{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}} {
		if err := unix.Mknod(in("dev/"+n.name), unix.S_IFCHR|0o666, int(unix.Mkdev(n.major, n.minor))); err != nil {
			return fmt.Errorf("mknod /dev/%s: %w", n.name, err)
		}
	}
	if err := os.WriteFile(in("dev/console"), nil, 0o600); err != nil {
		return err
	}
	if err := mount("--bind", ns.console, ns.root+"/dev/console"); err != nil {
		return err
	}
	// /etc: the least systemd and the tests' programs need.
	for _, f := range []string{"passwd", "group", "nsswitch.conf"} {
		b, err := os.ReadFile(filepath.Join("/etc", f))
		if err != nil {
			return err
		}
		if err := os.WriteFile(in("etc/"+f), b, 0o644); err != nil {
			return err
		}
	}
	files := map[string]string{
		"etc/machine-id":                      randomHex(16) + "\n",
		"etc/hostname":                        "rewind-test\n",
		"etc/systemd/system/" + SystemdTarget: "[Unit]\nDescription=rewind test target\nDefaultDependencies=no\n",
	}
	for name, body := range files {
		if err := os.WriteFile(in(name), []byte(body), 0o644); err != nil {
			return err
		}
	}
	ns.unitsDir = in("etc/systemd/system")
	return nil
}

// InstallUnit writes a unit file into the namespace's /etc/systemd/system
// and makes systemd read it. A service that should not pull in the
// distribution's boot units needs DefaultDependencies=no.
func (ns *SystemdNS) InstallUnit(t testing.TB, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(ns.unitsDir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	ns.Exec(t, "systemctl", "daemon-reload")
}

// Exec runs argv inside the namespace (all its namespaces and its root)
// and returns its standard output; it fails the test if the
// command fails.
func (ns *SystemdNS) Exec(t testing.TB, argv ...string) string {
	t.Helper()
	out, errOut, err := ns.Run(context.Background(), argv...)
	if err != nil {
		t.Fatalf("in the systemd namespace: %s: %v\n%s%s", strings.Join(argv, " "), err, out, errOut)
	}
	return out
}

// Run runs argv inside the namespace and returns its standard output and
// standard error, and its error (an *exec.ExitError when it ran and
// failed).
func (ns *SystemdNS) Run(ctx context.Context, argv ...string) (string, string, error) {
	cmd := ns.Command(ctx, argv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// Command returns a command that runs argv inside the namespace, in its
// root directory, with a plain environment.
func (ns *SystemdNS) Command(ctx context.Context, argv ...string) *exec.Cmd {
	args := []string{"--target", strconv.Itoa(ns.PID), "--mount", "--pid", "--cgroup", "--uts", "--ipc", "--net",
		"--root", "--wd", "--"}
	cmd := exec.CommandContext(ctx, "nsenter", append(args, argv...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin", "HOME=/root", "LANG=C.UTF-8"}
	return cmd
}

// Console returns what systemd wrote to its console so far.
func (ns *SystemdNS) consoleText() string {
	b, _ := os.ReadFile(ns.console)
	const max = 8000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// waitBooted waits until systemd says it is running (or degraded).
func (ns *SystemdNS) waitBooted(limit time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var last string
	for ctx.Err() == nil {
		if ns.systemd.ProcessState != nil {
			return errors.New("systemd exited")
		}
		out, errOut, _ := ns.Run(ctx, "systemctl", "is-system-running")
		state := strings.TrimSpace(out)
		switch state {
		case "running":
			return nil
		case "degraded":
			failed, _, _ := ns.Run(ctx, "systemctl", "--failed", "--no-legend")
			return fmt.Errorf("systemd booted degraded: %s", failed)
		}
		last = strings.TrimSpace(state + " " + errOut)
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not running after %s (last: %s)", limit, last)
}

// stop kills the namespace's PID 1, which kills every process in the
// namespace, then the holder (its mount namespace and every mount in it
// go with it), and removes the cgroup.
func (ns *SystemdNS) stop() {
	if ns.PID > 0 {
		_ = unix.Kill(ns.PID, unix.SIGKILL)
	}
	// unshare reaps its killed child and exits; it is killed only if it
	// does not (its --kill-child then kills systemd).
	for _, c := range []*exec.Cmd{ns.systemd, ns.holder} {
		if c == nil || c.Process == nil {
			continue
		}
		done := make(chan struct{})
		go func() { _ = c.Wait(); close(done) }()
		if c == ns.holder {
			_ = c.Process.Kill()
		}
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = c.Process.Kill()
			<-done
		}
	}
	if ns.cgroup != "" {
		removeCgroup(ns.cgroup)
	}
}

// removeCgroup removes a cgroup and the ones systemd made under it,
// deepest first, waiting a little for the killed processes to leave.
func removeCgroup(dir string) {
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		for try := 0; try < 100; try++ {
			err := unix.Rmdir(dirs[i])
			if err == nil || errors.Is(err, unix.ENOENT) || !errors.Is(err, unix.EBUSY) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// cgroup2Mount returns where the cgroup v2 hierarchy is mounted: at
// /sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified on a hybrid one.
func cgroup2Mount() (string, error) {
	for _, p := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if err := unix.Statfs(p, &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return p, nil
		}
	}
	return "", errors.New("no cgroup v2 hierarchy is mounted at /sys/fs/cgroup or /sys/fs/cgroup/unified")
}

// waitNewMountNS waits until pid is in a mount namespace other than ours.
func waitNewMountNS(pid int) error {
	self, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return err
	}
	for i := 0; i < 500; i++ {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid)); err == nil && l != self {
			if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && filepath.Base(exe) == "sleep" {
				return nil
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("process %d did not enter a new mount namespace", pid)
}

// childOf waits for the first child of pid (unshare --fork's child).
func childOf(pid int, limit time.Duration) (int, error) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		if err != nil {
			return 0, err
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			return strconv.Atoi(f[0])
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0, fmt.Errorf("unshare (process %d) started no child in %s", pid, limit)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
