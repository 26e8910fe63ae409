package main

// The QEMU dirty-bitmap section (issue 14, -qemu only): the mkdata
// image set as the 2 GiB qcow2 drive of a running QEMU (no guest), 1%
// of it rewritten through QEMU in 64 KiB writes at random 4 KiB-aligned
// offsets, and `rewind backup --qemu-qmp` reading only the dirty blocks,
// against restic's backup of the image file changed the same way. The
// incremental's restore is compared with the drive.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

const qemuTitle = "## QEMU dirty bitmap (issue 14): incremental of a running guest's drive"

const (
	qemuOff  = "off"
	qemuOnly = "only"
)

// qemuReport is the section's figures (runs/qemu.json).
type qemuReport struct {
	ImageBytes   int64         `json:"image_bytes"`
	ChangedBytes int64         `json:"changed_bytes"`
	FirstRead    int64         `json:"first_read"`
	FirstTime    time.Duration `json:"first_time"`
	ResticFirst  time.Duration `json:"restic_first_time"`
	IncrRead     int64         `json:"incremental_read"`
	IncrAdded    int64         `json:"incremental_added"`
	IncrMethod   string        `json:"incremental_method"`
	IncrTime     time.Duration `json:"incremental_time"`
	ResticIncr   time.Duration `json:"restic_incremental_time"`
	Identical    bool          `json:"restore_identical"`
}

// qemuRun runs the section alone (-qemu only): printed, and replaced in
// -out, leaving the rest of the report as it was.
func qemuRun(ctx context.Context, log *slog.Logger, cfg config, root, tmp, dataDir string) error {
	t, err := buildRewind(ctx, root, tmp, cfg.rewind)
	if err != nil {
		return err
	}
	src := filepath.Join(dataDir, "pristine", "image", "disk.img")
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("the image set is missing (%w): run bench -prepare first", err)
	}
	if err := os.MkdirAll(filepath.Join(dataDir, "runs"), 0o755); err != nil {
		return err
	}
	dir, err := os.MkdirTemp(filepath.Join(dataDir, "runs"), "qemu-")
	if err != nil {
		return err
	}
	if !cfg.keep {
		defer os.RemoveAll(dir)
	}
	rep, err := measureQEMU(ctx, log, t.(rewindTool).bin, src, dir)
	if err != nil {
		return err
	}
	if b, err := json.MarshalIndent(rep, "", "  "); err == nil {
		os.WriteFile(filepath.Join(dataDir, "runs", "qemu.json"), b, 0o644)
	}
	if err := writeTitled(cfg.out, qemuTitle, rep.markdown()); err != nil {
		return err
	}
	log.Info("replaced the QEMU section", "file", cfg.out)
	return nil
}

func measureQEMU(ctx context.Context, log *slog.Logger, bin, src, dir string) (*qemuReport, error) {
	run := func(env []string, name string, args ...string) ([]byte, time.Duration, error) {
		c := exec.CommandContext(ctx, name, args...)
		c.Env = append(os.Environ(), env...)
		var out, errb bytes.Buffer
		c.Stdout, c.Stderr = &out, &errb
		start := time.Now()
		err := c.Run()
		if err != nil {
			err = fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, errb.String())
		}
		return out.Bytes(), time.Since(start), err
	}
	qcow, raw := filepath.Join(dir, "disk.qcow2"), filepath.Join(dir, "disk.raw")
	if _, _, err := run(nil, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", src, qcow); err != nil {
		return nil, err
	}
	if _, _, err := run(nil, "cp", "--sparse=always", src, raw); err != nil {
		return nil, err
	}
	qmp, mon := filepath.Join(dir, "qmp.sock"), filepath.Join(dir, "mon.sock")
	vm := exec.CommandContext(ctx, "qemu-system-x86_64", "-nodefaults", "-display", "none", "-machine", "none", "-accel", "tcg",
		"-qmp", "unix:"+qmp+",server=on,wait=off", "-qmp", "unix:"+mon+",server=on,wait=off",
		"-drive", "if=none,id=drive0,format=qcow2,file="+qcow)
	if err := vm.Start(); err != nil {
		return nil, fmt.Errorf("start QEMU: %w", err)
	}
	defer func() { vm.Process.Kill(); vm.Wait() }()
	var conn net.Conn
	for i := 0; ; i++ {
		var err error
		if conn, err = net.Dial("unix", mon); err == nil {
			break
		}
		if i > 300 {
			return nil, fmt.Errorf("QEMU's monitor: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	defer conn.Close()
	rd := bufio.NewReader(conn)
	cmd := func(c string, args any) error {
		b, _ := json.Marshal(map[string]any{"execute": c, "arguments": args})
		if _, err := conn.Write(append(b, '\n')); err != nil {
			return err
		}
		for {
			line, err := rd.ReadBytes('\n')
			if err != nil {
				return err
			}
			var m map[string]json.RawMessage
			if json.Unmarshal(line, &m) != nil {
				continue
			}
			if e, ok := m["error"]; ok {
				return fmt.Errorf("QEMU refused %s: %s", c, e)
			}
			if _, ok := m["return"]; ok {
				return nil
			}
		}
	}
	if _, err := rd.ReadBytes('\n'); err != nil {
		return nil, err
	}
	if err := cmd("qmp_capabilities", map[string]any{}); err != nil {
		return nil, err
	}
	repo, restic := filepath.Join(dir, "repo"), filepath.Join(dir, "restic")
	env := []string{"REWIND_PASSWORD=bench", "RESTIC_PASSWORD=bench", "RESTIC_CACHE_DIR=" + filepath.Join(dir, "cache")}
	if _, _, err := run(env, bin, "init", "-r", repo); err != nil {
		return nil, err
	}
	if _, _, err := run(env, "restic", "init", "-q", "-r", restic); err != nil {
		return nil, err
	}
	type summary struct {
		ID        string `json:"snapshot_id"`
		DataAdded int64  `json:"data_added"`
		Image     struct {
			Method    string `json:"method"`
			BytesRead int64  `json:"bytes_read"`
		} `json:"image"`
	}
	backup := func() (summary, time.Duration, error) {
		var s summary
		out, d, err := run(env, bin, "backup", "-r", repo, "--json", "--qemu-qmp", qmp, "drive0")
		if err != nil {
			return s, d, err
		}
		for _, l := range bytes.Split(out, []byte("\n")) {
			if bytes.Contains(l, []byte(`"message_type":"summary"`)) {
				err = json.Unmarshal(l, &s)
			}
		}
		return s, d, err
	}
	rep := &qemuReport{}
	fi, err := os.Stat(raw)
	if err != nil {
		return nil, err
	}
	rep.ImageBytes = fi.Size()
	log.Info("QEMU: first backups")
	s1, d, err := backup()
	if err != nil {
		return nil, err
	}
	rep.FirstRead, rep.FirstTime = s1.Image.BytesRead, d
	if _, rep.ResticFirst, err = run(env, "restic", "-r", restic, "backup", "-q", raw); err != nil {
		return nil, err
	}
	log.Info("QEMU: rewriting 1% through QEMU")
	f, err := os.OpenFile(raw, os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	r := rand.New(rand.NewSource(3))
	n := rep.ImageBytes / 100 / 65536
	for i := range n {
		off := r.Int63n(rep.ImageBytes-65536) / 4096 * 4096
		p := byte(i%255 + 1)
		if err := cmd("human-monitor-command", map[string]any{"command-line": fmt.Sprintf("qemu-io drive0 \"write -P %d %d 65536\"", p, off)}); err != nil {
			f.Close()
			return nil, err
		}
		if _, err := f.WriteAt(bytes.Repeat([]byte{p}, 65536), off); err != nil {
			f.Close()
			return nil, err
		}
	}
	f.Close()
	rep.ChangedBytes = n * 65536
	if err := cmd("human-monitor-command", map[string]any{"command-line": "qemu-io drive0 flush"}); err != nil {
		return nil, err
	}
	log.Info("QEMU: incrementals")
	s2, d, err := backup()
	if err != nil {
		return nil, err
	}
	rep.IncrRead, rep.IncrAdded, rep.IncrMethod, rep.IncrTime = s2.Image.BytesRead, s2.DataAdded, s2.Image.Method, d
	if _, rep.ResticIncr, err = run(env, "restic", "-r", restic, "backup", "-q", raw); err != nil {
		return nil, err
	}
	restored, now := filepath.Join(dir, "restored.raw"), filepath.Join(dir, "now.raw")
	if _, _, err := run(env, bin, "restore", "-r", repo, s2.ID, "--image", restored); err != nil {
		return nil, err
	}
	if _, _, err := run(nil, "qemu-img", "convert", "-U", "-f", "qcow2", "-O", "raw", qcow, now); err != nil {
		return nil, err
	}
	_, _, err = run(nil, "cmp", "-s", restored, now)
	rep.Identical = err == nil
	return rep, nil
}

func (r *qemuReport) markdown() string {
	var b strings.Builder
	pct := 100 * float64(r.IncrRead) / float64(r.ImageBytes)
	ratio := r.IncrTime.Seconds() / r.ResticIncr.Seconds()
	met := func(ok bool) string {
		if ok {
			return "**met**"
		}
		return "**not met**"
	}
	fmt.Fprintf(&b, "%s\n\n", qemuTitle)
	fmt.Fprintf(&b, "The mkdata `image` set as a %.2f GiB qcow2 drive of a running QEMU (TCG, no guest); %.1f MB rewritten through QEMU in 64 KiB writes at random 4 KiB-aligned offsets; `rewind backup --qemu-qmp` against `restic backup` of the image file changed the same way (docs/IMAGES.md, \"Running QEMU guests\").\n\n",
		float64(r.ImageBytes)/(1<<30), float64(r.ChangedBytes)/1e6)
	fmt.Fprintf(&b, "| measure | rewind | restic | target |\n|---|---|---|---|\n")
	fmt.Fprintf(&b, "| first backup (`qemu-allocation`) | read %.1f MB, %.1f s | %.1f s | |\n", float64(r.FirstRead)/1e6, r.FirstTime.Seconds(), r.ResticFirst.Seconds())
	fmt.Fprintf(&b, "| incremental after 1%% changed (`%s`) | read %.1f MB (%.2f%% of the image), added %.1f MB, %.1f s | %.1f s | reads ≤ 5%%: %s; time ≤ 0.2× restic: %s (%.2f×) |\n",
		r.IncrMethod, float64(r.IncrRead)/1e6, pct, float64(r.IncrAdded)/1e6, r.IncrTime.Seconds(), r.ResticIncr.Seconds(), met(pct <= 5), met(ratio <= 0.2), ratio)
	fmt.Fprintf(&b, "| restore of the incremental identical to the drive | %v | | |\n\n", r.Identical)
	return b.String()
}
