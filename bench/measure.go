package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Steps, in the order they run for every tool, and the machine-limit rows.
const (
	stepInitial      = "initial"
	stepUnchanged    = "unchanged"
	stepIncremental  = "incremental"
	stepRestoreDisk  = "restore to disk"
	stepRestoreTmpfs = "restore into tmpfs"
	stepSingleFile   = "single file"
	stepCheck        = "check"

	limitRead      = "parallel read"
	limitWalk      = "metadata walk"
	limitCopyDisk  = "parallel copy to disk"
	limitCopyTmpfs = "parallel copy into tmpfs"
)

var (
	toolSteps  = []string{stepInitial, stepUnchanged, stepIncremental, stepRestoreDisk, stepRestoreTmpfs, stepSingleFile, stepCheck}
	limitSteps = []string{limitRead, limitWalk, limitCopyDisk, limitCopyTmpfs}
)

// machineTool is the "tool" name of the machine-limit rows.
const machineTool = "machine"

// sample is what the kernel accounted for one child process.
type sample struct {
	Wall time.Duration `json:"wall_ns"`
	CPU  time.Duration `json:"cpu_ns"` // user + system
	Sys  time.Duration `json:"sys_ns"` // the system part of CPU
	RSS  int64         `json:"rss_bytes"`
}

// harness runs the rounds; its fields are set once before runAll.
type harness struct {
	cfg     config
	log     *slog.Logger
	self    string // this binary, re-executed for the machine-limit rows
	mkdata  string
	tools   []tool
	runs    string // repositories, restores on disk, caches, logs
	shm     string // scratch folder in tmpfs
	res     *results
	started time.Time
	// templates holds each tool's empty repository, by tool name.
	templates map[string]string
}

// runAll runs every round: for each set, the machine-limit rows and then
// each tool, in the given order on odd rounds and reversed on even ones.
func (h *harness) runAll(ctx context.Context, sets []*dataset) error {
	for r := 1; r <= h.cfg.rounds; r++ {
		roundStart := time.Now()
		order := slices.Clone(h.tools)
		if r%2 == 0 {
			slices.Reverse(order)
		}
		for _, d := range sets {
			if err := resync(ctx, d.pristine, d.work); err != nil {
				return err
			}
			if err := h.limits(ctx, r, d); err != nil {
				return err
			}
			for _, t := range order {
				err := h.runTool(ctx, r, d, t)
				if err == nil {
					continue
				}
				if t.Name() != "rewind" || !h.cfg.optional || ctx.Err() != nil {
					return fmt.Errorf("round %d, %s, %s: %w", r, d.name, t.Name(), err)
				}
				h.log.Warn("rewind failed; its remaining steps are missing", "round", r, "set", d.name, "err", err)
				h.res.note(fmt.Sprintf("round %d, %s: rewind failed: %s", r, d.name, firstLineOf(err.Error())))
			}
		}
		took := time.Since(roundStart)
		h.log.Info("round done", "round", r, "took", took.Round(time.Second),
			"left", (took * time.Duration(h.cfg.rounds-r)).Round(time.Minute))
	}
	return nil
}

// runTool takes one tool through every step on a fresh work copy.
func (h *harness) runTool(ctx context.Context, r int, d *dataset, t tool) error {
	if err := resync(ctx, d.pristine, d.work); err != nil {
		return err
	}
	name := t.Name()
	repo := filepath.Join(h.runs, "repo-"+name)
	if h.cfg.keep {
		repo = filepath.Join(h.runs, fmt.Sprintf("repo-r%d-%s-%s", r, d.name, name))
	}
	cache := filepath.Join(h.runs, "cache-"+name)
	for _, p := range []string{repo, cache} {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(cache, 0o700); err != nil {
		return err
	}
	defer os.RemoveAll(cache)
	if !h.cfg.keep {
		defer os.RemoveAll(repo)
	}
	env := t.Env(cache)
	logName := func(step string) string {
		return fmt.Sprintf("r%d-%s-%s-%s", r, d.name, name, strings.ReplaceAll(step, " ", "-"))
	}
	// Backups read the set, the repository and the tool's cache; the other
	// steps read the repository and the cache.
	backupInputs := []string{d.work, repo, cache}
	repoInputs := []string{repo, cache}
	timed := func(step string, spec cmdSpec) error {
		inputs := repoInputs
		if step == stepInitial || step == stepUnchanged || step == stepIncremental {
			inputs = backupInputs
		}
		s, err := h.measure(ctx, spec, env, logName(step), inputs...)
		if err != nil {
			return fmt.Errorf("%s: %w", step, err)
		}
		h.res.add(d.name, name, step, r, s)
		h.log.Info("measured", "round", r, "set", d.name, "tool", name, "step", step,
			"wall", s.Wall.Round(time.Millisecond), "cpu", s.CPU.Round(time.Millisecond), "rss_mib", s.RSS>>20)
		return nil
	}
	repoSize := func(measure string) (int64, error) {
		n, err := diskUsage(repo)
		if err == nil {
			h.res.addBytes(d.name, name, measure, r, n)
		}
		return n, err
	}

	tpl, err := h.template(ctx, t)
	if err != nil {
		return err
	}
	if err := copyTree(ctx, tpl, repo, 1); err != nil {
		return fmt.Errorf("copy the empty repository: %w", err)
	}
	if err := timed(stepInitial, t.Backup(repo, d.work, "initial")); err != nil {
		return err
	}
	if _, err := repoSize(sizeInitial); err != nil {
		return err
	}
	if err := timed(stepUnchanged, t.Backup(repo, d.work, "unchanged")); err != nil {
		return err
	}
	before, err := repoSize(sizeUnchanged)
	if err != nil {
		return err
	}
	if err := d.mutate(ctx, h.mkdata, r); err != nil {
		return err
	}
	if !h.res.hasBytes(d.name, machineTool, bytesChanged, r) {
		n, err := changedBytes(d.pristine, d.work)
		if err != nil {
			return fmt.Errorf("measure the change: %w", err)
		}
		h.res.addBytes(d.name, machineTool, bytesChanged, r, n)
	}
	if err := timed(stepIncremental, t.Backup(repo, d.work, "incremental")); err != nil {
		return err
	}
	after, err := repoSize(sizeIncremental)
	if err != nil {
		return err
	}
	h.res.addBytes(d.name, name, bytesAdded, r, after-before)

	for _, rs := range []struct{ step, dir string }{
		{stepRestoreDisk, filepath.Join(h.runs, "restore")},
		{stepRestoreTmpfs, filepath.Join(h.shm, "restore")},
	} {
		if err := emptyFolder(rs.dir); err != nil {
			return err
		}
		if err := timed(rs.step, t.Restore(repo, "incremental", rs.dir)); err != nil {
			return err
		}
		if h.cfg.verify {
			got, err := restoredPath(rs.dir, d.work, true)
			if err == nil {
				err = compareTrees(ctx, d.work, got)
			}
			if err != nil {
				return fmt.Errorf("%s is wrong: %w", rs.step, err)
			}
		}
		if err := os.RemoveAll(rs.dir); err != nil {
			return err
		}
	}

	single := filepath.Join(h.shm, "single")
	if err := emptyFolder(single); err != nil {
		return err
	}
	defer os.RemoveAll(single)
	if err := timed(stepSingleFile, t.RestoreFile(repo, "incremental", d.file, single)); err != nil {
		return err
	}
	if h.cfg.verify {
		got, err := restoredPath(single, d.file, false)
		if err == nil {
			err = compareFiles(d.file, got)
		}
		if err != nil {
			return fmt.Errorf("single-file restore is wrong: %w", err)
		}
	}
	return timed(stepCheck, t.Check(repo))
}

// template returns an empty repository of t, made once per run with t's
// init. Every repository of the run is a copy of it, so that what init
// chooses at random or calibrates against the machine's speed at that
// moment (restic's scrypt cost, chunker secrets) is the same in every
// round instead of adding noise between rounds.
func (h *harness) template(ctx context.Context, t tool) (string, error) {
	if p, ok := h.templates[t.Name()]; ok {
		return p, nil
	}
	p := filepath.Join(h.runs, "template-"+t.Name())
	cache := p + "-cache"
	for _, d := range []string{p, cache} {
		if err := os.RemoveAll(d); err != nil {
			return "", err
		}
	}
	defer os.RemoveAll(cache)
	if _, err := h.measure(ctx, t.Init(p), t.Env(cache), "init-"+t.Name()); err != nil {
		return "", fmt.Errorf("init: %w", err)
	}
	if note := keyNote(t, p); note != "" {
		h.res.note(note)
	}
	h.templates[t.Name()] = p
	return p, nil
}

// keyNote describes restic's key derivation, which restic calibrates at
// init and every restic command then pays for.
func keyNote(t tool, repo string) string {
	if t.Name() != "restic" {
		return ""
	}
	keys, _ := filepath.Glob(filepath.Join(repo, "keys", "*"))
	if len(keys) != 1 {
		return ""
	}
	b, err := os.ReadFile(keys[0])
	if err != nil {
		return ""
	}
	var k struct {
		KDF     string
		N, R, P int
	}
	if json.Unmarshal(b, &k) != nil {
		return ""
	}
	return fmt.Sprintf("restic's key, calibrated by `restic init` at the start of the run and used by every restic repository of the run: %s N=%d r=%d p=%d (every restic command derives it once).",
		k.KDF, k.N, k.R, k.P)
}

// limits measures the machine-limit rows on the work copy, each as a child
// process of this same binary.
func (h *harness) limits(ctx context.Context, r int, d *dataset) error {
	rows := []struct {
		step string
		dst  string
	}{
		{limitRead, ""},
		{limitWalk, ""},
		{limitCopyDisk, filepath.Join(h.runs, "copy")},
		{limitCopyTmpfs, filepath.Join(h.shm, "copy")},
	}
	for _, row := range rows {
		argv := []string{h.self, "-src", d.work}
		switch row.step {
		case limitRead:
			argv = append(argv, "-limit", "read")
		case limitWalk:
			argv = append(argv, "-limit", "walk")
		default:
			if err := emptyFolder(row.dst); err != nil {
				return err
			}
			argv = append(argv, "-limit", "copy", "-dst", filepath.Join(row.dst, d.mkset))
		}
		logName := fmt.Sprintf("r%d-%s-machine-%s", r, d.name, strings.ReplaceAll(row.step, " ", "-"))
		s, err := h.measure(ctx, cmdSpec{argv: argv}, nil, logName, d.work)
		if err != nil {
			return fmt.Errorf("%s: %w", row.step, err)
		}
		h.res.add(d.name, machineTool, row.step, r, s)
		h.log.Info("measured", "round", r, "set", d.name, "tool", machineTool, "step", row.step,
			"wall", s.Wall.Round(time.Millisecond), "cpu", s.CPU.Round(time.Millisecond))
		if row.dst != "" {
			if err := os.RemoveAll(row.dst); err != nil {
				return err
			}
		}
	}
	return nil
}

// runLimit is the child side of a machine-limit row (bench -limit OP).
func runLimit(ctx context.Context, op, src, dst string) error {
	if src == "" {
		return errors.New("-limit needs -src")
	}
	start := time.Now()
	var what string
	switch op {
	case "read":
		n, err := readTree(ctx, src, 2)
		if err != nil {
			return err
		}
		what = fmt.Sprintf("read %d bytes", n)
	case "walk":
		n, err := walkTree(src)
		if err != nil {
			return err
		}
		what = fmt.Sprintf("lstat of entries: %d", n)
	case "copy":
		if dst == "" {
			return errors.New("-limit copy needs -dst")
		}
		if err := copyTree(ctx, src, dst, 2); err != nil {
			return err
		}
		what = "copied to " + dst
	default:
		return fmt.Errorf("unknown -limit %q", op)
	}
	fmt.Printf("%s in %v\n", what, time.Since(start).Round(time.Millisecond))
	return nil
}

// emptyFolder removes p with everything in it, creates it empty, and syncs,
// so that the write-back of what was there does not land on the next step.
func emptyFolder(p string) error {
	if err := os.RemoveAll(p); err != nil {
		return err
	}
	if err := os.MkdirAll(p, 0o755); err != nil {
		return err
	}
	syscall.Sync()
	return nil
}

// measure runs spec as a child with its output in a log file and returns
// the kernel's accounting of it. Every step starts after a sync, with the
// page cache put in the state -cache asks for; inputs are the folders the
// step reads.
func (h *harness) measure(ctx context.Context, spec cmdSpec, env []string, logName string, inputs ...string) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.timeout)
	defer cancel()
	logPath := filepath.Join(h.runs, "logs", logName+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return sample{}, err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "$ %s\n", strings.Join(spec.argv, " "))
	cmd := exec.CommandContext(ctx, spec.argv[0], spec.argv[1:]...)
	cmd.Env = append(append(os.Environ(), env...), spec.env...)
	cmd.Dir = spec.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	if spec.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: spec.cred}
	}

	syscall.Sync()
	if err := h.setCache(ctx, inputs); err != nil {
		return sample{}, err
	}
	start := time.Now()
	err = cmd.Start()
	if err == nil {
		err = cmd.Wait()
	}
	wall := time.Since(start)
	if cmd.ProcessState == nil {
		return sample{}, fmt.Errorf("start %s: %w", spec.argv[0], err)
	}
	s := sample{Wall: wall}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		s.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		s.Sys = time.Duration(ru.Stime.Nano())
		s.RSS = ru.Maxrss * 1024 // kilobytes on Linux
	}
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) && slices.Contains(spec.warn, exit.ExitCode()) {
			h.log.Warn("finished with warnings", "cmd", filepath.Base(spec.argv[0]), "code", exit.ExitCode(), "log", logPath)
			return s, nil
		}
		return s, fmt.Errorf("%s: %w\n%s", strings.Join(spec.argv, " "), err, logTail(logPath))
	}
	return s, nil
}

// Page cache states before a step (-cache).
const (
	cacheWarm = "warm" // the step's inputs were just read
	cacheCold = "cold" // the page cache was dropped
	cacheAsIs = "as-is"
)

// setCache puts the page cache in the configured state for a step that
// reads inputs. This matters here: the host reclaims page cache that has
// not been touched for some seconds, so without it whether a step finds its
// input cached depends on how long ago the previous step touched it.
func (h *harness) setCache(ctx context.Context, inputs []string) error {
	switch h.cfg.cache {
	case cacheWarm:
		for _, in := range inputs {
			if _, err := os.Lstat(in); err != nil {
				continue // a repository or cache not made yet
			}
			if _, err := readTree(ctx, in, 2); err != nil {
				return fmt.Errorf("warm %s: %w", in, err)
			}
		}
	case cacheCold:
		if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
			return fmt.Errorf("drop the page cache (-cache cold needs root): %w", err)
		}
	}
	return nil
}

// logTail returns the last lines of a log, for error messages.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return fmt.Sprintf("last lines of %s:\n%s", path, bytes.Join(lines, []byte("\n")))
}

func firstLineOf(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
