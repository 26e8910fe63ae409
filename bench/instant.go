package main

// The instant-recovery section (issue 14, -instant only): the tests'
// bootable guest (a 1 GiB disk: syslinux, Debian's kernel, a busybox
// init) is backed up, then booted with `rewind instant` under QEMU
// (KVM when usable, TCG otherwise), and restored whole with `rewind
// restore --image`, for comparison. Two disks: the guest as built
// (about 10 MB of data in 1 GiB) and the same with the 0.94 GiB after its
// partition filled with random data, so that a full restore has the
// whole gigabyte to write while the boot reads the same few blocks.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/testutil"
)

const instantTitle = "## Instant recovery (issue 14): `rewind instant` against a full restore"

// instantDisk is the figures of one disk.
type instantDisk struct {
	Name        string  `json:"name"`
	Size        int64   `json:"size"`
	Stored      int64   `json:"data_bytes"`
	FirstOutput float64 `json:"first_output_seconds"`
	Marker      float64 `json:"marker_seconds"`
	Ready       float64 `json:"ready_seconds"`
	Restore     float64 `json:"restore_seconds"`
	Accel       string  `json:"accel"`
}

type instantReport struct {
	Rounds int           `json:"rounds"`
	Disks  []instantDisk `json:"disks"`
}

// runInstant measures each disk: the median of rounds boots and restores.
func runInstantBench(ctx context.Context, log *slog.Logger, ic roundsSection, bin, dir string) (*instantReport, error) {
	guest, err := testutil.BuildGuestDisk()
	if err != nil {
		return nil, fmt.Errorf("guest disk: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	full := filepath.Join(dir, "guest-full.img")
	if err := fillAfterPartition(guest, full); err != nil {
		return nil, err
	}
	rep := &instantReport{Rounds: ic.rounds}
	for _, d := range []struct{ name, path string }{{"guest as built (sparse)", guest}, {"guest with 0.94 GiB of random data after its partition", full}} {
		repo := filepath.Join(dir, "repo-"+fmt.Sprint(len(rep.Disks)))
		env := append(os.Environ(), "REWIND_PASSWORD=bench", "REWIND_REPOSITORY="+repo,
			"XDG_STATE_HOME="+filepath.Join(dir, "state"), "XDG_CACHE_HOME="+filepath.Join(dir, "cache"))
		if out, err := rewindRun(ctx, bin, env, "init"); err != nil {
			return nil, fmt.Errorf("init: %v: %s", err, out)
		}
		out, err := rewindRun(ctx, bin, env, "backup", "--json", "--image", d.path)
		if err != nil {
			return nil, fmt.Errorf("backup %s: %v: %s", d.path, err, out)
		}
		st, _ := os.Stat(d.path)
		disk := instantDisk{Name: d.name, Size: st.Size(), Stored: imageDataBytes(out)}
		var first, marker, ready, restore []float64
		for i := 0; i < ic.rounds; i++ {
			target := filepath.Join(dir, "restored.img")
			os.Remove(target)
			t0 := time.Now()
			if out, err := rewindRun(ctx, bin, env, "restore", "latest", "--image", target); err != nil {
				return nil, fmt.Errorf("restore: %v: %s", err, out)
			}
			if f, err := os.OpenFile(target, os.O_RDWR, 0); err == nil {
				f.Sync()
				f.Close()
			}
			restore = append(restore, time.Since(t0).Seconds())
			os.Remove(target)
			b, err := bootOnce(ctx, bin, env, filepath.Join(dir, fmt.Sprintf("instant-state-%d-%d", len(rep.Disks), i)))
			if err != nil {
				return nil, err
			}
			first, marker, ready = append(first, b.FirstOutput), append(marker, b.Marker), append(ready, b.Ready)
			disk.Accel = b.Accel
			log.Info("instant round", "disk", d.name, "first_output", b.FirstOutput, "marker", b.Marker, "restore", restore[len(restore)-1])
		}
		disk.FirstOutput, disk.Marker, disk.Ready, disk.Restore = median(first), median(marker), median(ready), median(restore)
		rep.Disks = append(rep.Disks, disk)
	}
	return rep, nil
}

// fillAfterPartition copies the guest disk to dst (sparse) and fills
// everything after its partition with random data.
func fillAfterPartition(src, dst string) error {
	os.Remove(dst)
	if out, err := exec.Command("cp", "--sparse=always", src, dst).CombinedOutput(); err != nil {
		return fmt.Errorf("cp: %v: %s", err, out)
	}
	f, err := os.OpenFile(dst, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	start := int64(65 << 20) // the partition covers 1 MiB to 65 MiB
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return err
	}
	if _, err := io.CopyN(f, rand.Reader, testutil.GuestDiskSize-start); err != nil {
		return err
	}
	return f.Close()
}

// bootOnce runs rewind instant until the guest is ready, then powers it
// off; the times are from the start of the command.
func bootOnce(ctx context.Context, bin string, env []string, state string) (instantDisk, error) {
	var d instantDisk
	cmd := exec.CommandContext(ctx, bin, "instant", "latest", "--json", "--memory", "256", "--state-dir", state)
	cmd.Env = env
	in, _ := cmd.StdinPipe()
	errPipe, _ := cmd.StderrPipe()
	var stdout strings.Builder
	cmd.Stdout = &stdout
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return d, err
	}
	sc := bufio.NewScanner(errPipe)
	var seen []string
	for sc.Scan() {
		l := sc.Text()
		seen = append(seen, l)
		switch {
		case strings.Contains(l, testutil.GuestMarker) && d.Marker == 0:
			d.Marker = time.Since(t0).Seconds()
		case strings.Contains(l, testutil.GuestReady) && d.Ready == 0:
			d.Ready = time.Since(t0).Seconds()
			fmt.Fprintln(in, "poweroff")
		}
	}
	if err := cmd.Wait(); err != nil {
		return d, fmt.Errorf("instant: %v: %s", err, strings.Join(seen, "\n"))
	}
	var sum struct {
		Accel              string  `json:"accel"`
		FirstOutputSeconds float64 `json:"first_output_seconds"`
	}
	if err := json.Unmarshal([]byte(stdout.String()), &sum); err != nil {
		return d, fmt.Errorf("instant summary: %v: %s", err, stdout.String())
	}
	d.FirstOutput, d.Accel = sum.FirstOutputSeconds, sum.Accel
	if d.Ready == 0 {
		return d, fmt.Errorf("the guest never got ready: %s", strings.Join(seen, "\n"))
	}
	os.RemoveAll(state)
	return d, nil
}

func rewindRun(ctx context.Context, bin string, env []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	return cmd.CombinedOutput()
}

// imageDataBytes is the data the image backup read (bytes_read).
func imageDataBytes(out []byte) int64 {
	for _, l := range strings.Split(string(out), "\n") {
		var s struct {
			MessageType string `json:"message_type"`
			Image       struct {
				BytesRead  int64 `json:"bytes_read"`
				Blocks     int64 `json:"blocks"`
				BlocksHole int64 `json:"blocks_hole"`
				BlockSize  int64 `json:"block_size"`
			} `json:"image"`
		}
		if json.Unmarshal([]byte(l), &s) == nil && s.MessageType == "summary" {
			return (s.Image.Blocks - s.Image.BlocksHole) * s.Image.BlockSize
		}
	}
	return 0
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func (r *instantReport) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%s\n\n", instantTitle)
	accel := "TCG"
	if len(r.Disks) > 0 && r.Disks[0].Accel == "kvm" {
		accel = "KVM"
	}
	fmt.Fprintf(&b, "The tests' guest (internal/testutil/guest.go: a 1 GiB raw disk with an MBR, one FAT partition holding syslinux, "+
		"Debian's kernel and a busybox initramfs) is backed up with `backup --image`, then booted with `rewind instant latest --memory 256` "+
		"under QEMU %s, and restored whole with `restore --image` into a sparse file (synced), alternately, median of %d rounds. "+
		"First serial output is syslinux's banner, as `instant` measures it from its own start; the marker is the guest's init's first line, "+
		"ready is after init mounted its disk and checked a file on it (both as the bench sees them on the console, from the command's start).\n\n", accel, r.Rounds)
	b.WriteString("### Instant: targets (issue 14)\n\n| target | measured | met |\n|---|---|---|\n")
	for _, d := range r.Disks {
		met := map[bool]string{true: "yes", false: "**no**"}[d.FirstOutput > 0 && d.FirstOutput <= 10]
		fmt.Fprintf(&b, "| command to first serial output of a 1 GiB guest disk ≤ 10 s under TCG (%s) | %s | %s |\n", d.Name, fmtSecs(d.FirstOutput), met)
	}
	b.WriteString("\n### Instant: raw figures\n\n| disk | data in the image | first serial output | init's marker | guest ready | full restore | first output / restore | ready / restore |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, d := range r.Disks {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", d.Name, fmtBytes(float64(d.Stored)), fmtSecs(d.FirstOutput), fmtSecs(d.Marker), fmtSecs(d.Ready), fmtSecs(d.Restore), fmtRatio(d.FirstOutput/d.Restore), fmtRatio(d.Ready/d.Restore))
	}
	if len(r.Disks) == 2 {
		s, f := r.Disks[0], r.Disks[1]
		fmt.Fprintf(&b, "\nClosing note. The guest's first serial output comes %s and %s after the command (%s and %s of a full restore of the same image). "+
			"The boot reads only the blocks the guest touches, the same few megabytes for both disks, so its time does not depend on the data in the image; "+
			"a full restore writes every data block (%s and %s here) and grows with it. Until the guest is ready (%s and %s) most of the wait is "+
			"Debian's kernel booting under TCG on two shared cores, which varies from run to run with the machine's load, not the repository: "+
			"on this tiny guest a restore of a few megabytes is quicker than any boot, and instant wins once the image holds more data than it takes "+
			"to boot (here about %s at this restore speed), or with KVM.\n",
			fmtSecs(s.FirstOutput), fmtSecs(f.FirstOutput), fmtRatio(s.FirstOutput/s.Restore), fmtRatio(f.FirstOutput/f.Restore),
			fmtSecs(s.Restore), fmtSecs(f.Restore), fmtSecs(s.Ready), fmtSecs(f.Ready),
			fmtBytes(float64(f.Stored)/f.Restore*f.Ready))
	}
	return b.String()
}

// instantOnlyRun runs the section alone (-instant only): printed, and
// replaced in -out.
func instantOnlyRun(ctx context.Context, log *slog.Logger, cfg config, root, tmp, dataDir string) error {
	return runAlone(ctx, cfg, root, tmp, dataDir, "instant", instantTitle, func(bin, dir string) (sectionReport, error) {
		return runInstantBench(ctx, log, cfg.inst, bin, dir)
	})
}
