package main

// The bare-metal recovery section (issue 15, -drill only): the tests'
// server disk (internal/testutil/server*.go: GPT, BIOS boot partition,
// ESP, swap, ext4 root, GRUB, a busybox userland with httpd) is backed up
// as a system that is not running (`backup --system-root`, its root
// mounted read-only from a loop device), then, each round, drilled
// (`rewind drill`: rebuilt as a VM disk, booted under QEMU, probed) and
// recovered onto a blank loop disk 1.5 times its size (`rewind recover`),
// and, as the baseline of the same data, restored as plain files into an
// empty folder (`rewind restore`). The phases come from the commands'
// own JSON reports.
//
// No smoke test runs this section: every round boots the server under
// QEMU (about 15 s or more under TCG), which is beyond the smoke's
// budget; the boot itself is covered by the recover and drill tests of
// internal/cli.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/rewind-backup/rewind/internal/loopdev"
	"github.com/rewind-backup/rewind/internal/testutil"

	"github.com/rewind-backup/rewind/internal/qemu/uefi"
)

const drillTitle = "## Bare-metal recovery (issue 15): drill RTO of the test server"

// drillRound is one drill's phases, in seconds.
type drillRound struct {
	Restore float64 `json:"restore_seconds"`
	Boot    float64 `json:"boot_seconds"`
	Probes  float64 `json:"probes_seconds"`
	RTO     float64 `json:"rto_seconds"`
	Wall    float64 `json:"wall_seconds"`
}

// recoverRound is one recover's phases, in seconds.
type recoverRound struct {
	Plan       float64 `json:"plan_seconds"`
	Partition  float64 `json:"partition_seconds"`
	Mkfs       float64 `json:"mkfs_seconds"`
	Restore    float64 `json:"restore_seconds"`
	Bootloader float64 `json:"bootloader_seconds"`
	Wall       float64 `json:"wall_seconds"`
}

// drillMode is the figures of one boot mode's server.
type drillMode struct {
	Mode         string         `json:"mode"`
	DiskBytes    int64          `json:"disk_bytes"`
	TargetBytes  int64          `json:"target_bytes"`
	Files        int64          `json:"files"`
	Bytes        int64          `json:"bytes"`
	Backup       float64        `json:"backup_seconds"`
	Accel        string         `json:"accel"`
	Drills       []drillRound   `json:"drills"`
	Recovers     []recoverRound `json:"recovers"`
	PlainRestore []float64      `json:"plain_restore_seconds"`
	Error        string         `json:"error,omitempty"`
}

type drillReport struct {
	Rounds     int         `json:"rounds"`
	Modes      []drillMode `json:"modes"`
	LoadBefore string      `json:"load_before"`
	LoadAfter  string      `json:"load_after"`
	Start      time.Time   `json:"start"`
	Minutes    float64     `json:"minutes"`
}

// drillProbes are the probes of every drill: the marker once httpd
// listens, its page holding the server's token, and its port.
func drillProbes(token string) []string {
	return []string{"marker " + testutil.ServerReady, "http / 80 " + token, "tcp 80"}
}

func runDrillBench(ctx context.Context, log *slog.Logger, dc roundsSection, bin, dir string) (*drillReport, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("-drill only needs root (loop devices, mount, recover, drill)")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	rep := &drillReport{Rounds: dc.rounds, LoadBefore: loadAvg(), Start: time.Now().UTC()}
	modes := []string{"bios"}
	if ovmfPresent() {
		modes = append(modes, "uefi")
	}
	for _, mode := range modes {
		m, err := drillOneMode(ctx, log, dc, bin, filepath.Join(dir, mode), mode)
		if err != nil {
			// A mode that fails is reported with its error; the other goes on.
			log.Error("drill mode failed", "mode", mode, "err", err)
			m.Error = err.Error()
		}
		rep.Modes = append(rep.Modes, m)
	}
	rep.LoadAfter = loadAvg()
	rep.Minutes = time.Since(rep.Start).Minutes()
	for _, m := range rep.Modes {
		if m.Error == "" {
			return rep, nil
		}
	}
	return nil, fmt.Errorf("every mode failed: %s", rep.Modes[0].Error)
}

func ovmfPresent() bool {
	for _, p := range []string{uefi.Code, uefi.Vars} {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return true
}

func drillOneMode(ctx context.Context, log *slog.Logger, dc roundsSection, bin, dir, mode string) (drillMode, error) {
	m := drillMode{Mode: mode}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return m, err
	}
	disk, err := testutil.BuildServerDiskAt(dir, testutil.ServerOptions{Mode: mode})
	if err != nil {
		return m, fmt.Errorf("server disk: %w", err)
	}
	m.DiskBytes = disk.SizeBytes
	env := append(os.Environ(), "REWIND_PASSWORD=bench", "REWIND_REPOSITORY="+filepath.Join(dir, "repo"),
		"XDG_STATE_HOME="+filepath.Join(dir, "state"), "XDG_CACHE_HOME="+filepath.Join(dir, "cache"))
	if _, _, err := timed(ctx, env, bin, "init"); err != nil {
		return m, err
	}
	took, err := backupServerDisk(ctx, env, bin, disk.Path, filepath.Join(dir, "srv"))
	if err != nil {
		return m, err
	}
	m.Backup = took.Seconds()
	os.Remove(disk.Path)

	for i := 0; i < dc.rounds; i++ {
		d, accel, err := drillOnce(ctx, env, bin, disk.Token)
		if err != nil {
			return m, fmt.Errorf("round %d: %w", i+1, err)
		}
		m.Drills, m.Accel = append(m.Drills, d), accel
		r, files, bytes, err := recoverOnce(ctx, env, bin, filepath.Join(dir, "target.img"), disk.SizeBytes*3/2, mode)
		if err != nil {
			return m, fmt.Errorf("round %d: %w", i+1, err)
		}
		m.Recovers, m.Files, m.Bytes, m.TargetBytes = append(m.Recovers, r), files, bytes, disk.SizeBytes*3/2
		p, err := plainRestore(ctx, env, bin, filepath.Join(dir, "plain"))
		if err != nil {
			return m, fmt.Errorf("round %d: %w", i+1, err)
		}
		m.PlainRestore = append(m.PlainRestore, p)
		log.Info("drill round", "mode", mode, "round", i+1, "restore", d.Restore, "boot", d.Boot, "probes", d.Probes,
			"rto", d.RTO, "recover", r.Wall, "plain_restore", p)
	}
	return m, nil
}

// backupServerDisk attaches the server disk, mounts its root read-only at
// root (the ESP cannot be mounted on this kernel: no vfat, see
// docs/RECOVERY.md), backs it up with --system-root, and undoes both.
func backupServerDisk(ctx context.Context, env []string, bin, disk, root string) (time.Duration, error) {
	dev, err := loopdev.Attach(ctx, disk)
	if err != nil {
		return 0, err
	}
	defer loopdev.Detach(context.WithoutCancel(ctx), dev)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return 0, err
	}
	if out, err := exec.CommandContext(ctx, "mount", "-t", "ext4", "-o", "ro", loopdev.PartitionPath(dev, 4), root).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("mount the server's root: %v: %s", err, out)
	}
	defer exec.Command("umount", root).Run()
	_, took, err := timed(ctx, env, bin, "backup", "--json", "--system-root", root, "--disks", dev)
	return took, err
}

// phaseSeconds reads the phases array of a drill or recover report.
func phaseSeconds(out []byte) (map[string]float64, map[string]json.RawMessage, error) {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(out, &all); err != nil {
		return nil, nil, fmt.Errorf("report: %v: %s", err, out)
	}
	var phases []struct {
		Name       string `json:"name"`
		DurationNS int64  `json:"duration_ns"`
	}
	if err := json.Unmarshal(all["phases"], &phases); err != nil {
		return nil, nil, fmt.Errorf("report phases: %v: %s", err, out)
	}
	s := map[string]float64{}
	for _, p := range phases {
		s[p.Name] += float64(p.DurationNS) / 1e9
	}
	return s, all, nil
}

func drillOnce(ctx context.Context, env []string, bin, token string) (drillRound, string, error) {
	args := []string{"drill", "--host", testutil.ServerHostname, "--timeout", "5m", "--memory", "512", "--json"}
	for _, p := range drillProbes(token) {
		args = append(args, "--probe", p)
	}
	out, took, err := timed(ctx, env, bin, args...)
	if err != nil {
		return drillRound{}, "", err
	}
	s, all, err := phaseSeconds(out)
	if err != nil {
		return drillRound{}, "", err
	}
	var rto float64
	var accel, result string
	json.Unmarshal(all["rto_seconds"], &rto)
	json.Unmarshal(all["accel"], &accel)
	json.Unmarshal(all["result"], &result)
	if result != "success" {
		return drillRound{}, "", fmt.Errorf("drill: result %q: %s", result, out)
	}
	return drillRound{Restore: s["restore"], Boot: s["boot"], Probes: s["probes"], RTO: rto, Wall: took.Seconds()}, accel, nil
}

// recoverOnce recovers onto a blank sparse file of size bytes attached
// as a loop device, detached and removed afterwards.
func recoverOnce(ctx context.Context, env []string, bin, img string, size int64, mode string) (recoverRound, int64, int64, error) {
	var r recoverRound
	os.Remove(img)
	f, err := os.Create(img)
	if err != nil {
		return r, 0, 0, err
	}
	f.Close()
	defer os.Remove(img)
	if err := os.Truncate(img, size); err != nil {
		return r, 0, 0, err
	}
	dev, err := loopdev.Attach(ctx, img)
	if err != nil {
		return r, 0, 0, err
	}
	defer loopdev.Detach(context.WithoutCancel(ctx), dev)
	out, took, err := timed(ctx, env, bin, "recover", "--host", testutil.ServerHostname, "--disk", dev, "--boot-mode", mode, "--yes", "--json")
	if err != nil {
		return r, 0, 0, err
	}
	s, all, err := phaseSeconds(out)
	if err != nil {
		return r, 0, 0, err
	}
	var files, bytes int64
	json.Unmarshal(all["files_restored"], &files)
	json.Unmarshal(all["bytes_restored"], &bytes)
	r = recoverRound{Plan: s["plan"], Partition: s["partition"], Mkfs: s["mkfs"], Restore: s["restore"], Bootloader: s["bootloader"], Wall: took.Seconds()}
	return r, files, bytes, nil
}

// plainRestore restores the snapshot's files into an empty folder and
// syncs them: the same data, with no disk rebuilt and no boot loader.
func plainRestore(ctx context.Context, env []string, bin, target string) (float64, error) {
	os.RemoveAll(target)
	defer os.RemoveAll(target)
	t0 := time.Now()
	if _, _, err := timed(ctx, env, bin, "restore", "latest", "--target", target); err != nil {
		return 0, err
	}
	if out, err := exec.CommandContext(ctx, "sync", "-f", target).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("sync: %v: %s", err, out)
	}
	return time.Since(t0).Seconds(), nil
}

func minMax(v []float64) (float64, float64) {
	if len(v) == 0 {
		return 0, 0
	}
	lo, hi := v[0], v[0]
	for _, x := range v {
		lo, hi = min(lo, x), max(hi, x)
	}
	return lo, hi
}

// pick applies f to every element of v.
func pick[T any](v []T, f func(T) float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = f(x)
	}
	return out
}

// drillOnlyRun runs the section alone (-drill only): printed, and
// replaced in -out.
func drillOnlyRun(ctx context.Context, log *slog.Logger, cfg config, root, tmp, dataDir string) error {
	return runAlone(ctx, cfg, root, tmp, dataDir, "drill", drillTitle, func(bin, dir string) (sectionReport, error) {
		return runDrillBench(ctx, log, cfg.drill, bin, dir)
	})
}
