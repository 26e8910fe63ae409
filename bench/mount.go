package main

// The mount section (issue 14, -mount only): reads through `rewind mount`
// against restore of the same data into tmpfs, and `find` through at/
// against find on the source. Root and FUSE (fusermount3) are needed.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const mountTitle = "## Mount (issue 14): reads and `find` through `rewind mount`"

const (
	modeOff  = "off"
	modeOnly = "only"
)

// mountReport is the section's figures (runs/mount.json); durations are
// the best of the tries.
type mountReport struct {
	ImageSize    int64         `json:"image_size"`
	ImageData    int64         `json:"image_data"`
	ReadImage    time.Duration `json:"read_image"`
	RestoreImage time.Duration `json:"restore_image"`
	ReadFile     time.Duration `json:"read_file"`
	RestoreFile  time.Duration `json:"restore_file"`
	TreeEntries  int           `json:"tree_entries"`
	FindSource   time.Duration `json:"find_source"`
	FindFirst    time.Duration `json:"find_first"`
	FindCached   time.Duration `json:"find_cached"`
	Tries        int           `json:"tries"`
	Load         string        `json:"load"`
}

func mountOnlyRun(ctx context.Context, log *slog.Logger, cfg config, root, tmp, dataDir string) error {
	return runAlone(ctx, cfg, root, tmp, dataDir, "mount", mountTitle, func(bin, dir string) (sectionReport, error) {
		return runMount(ctx, log, bin, filepath.Join(dataDir, "pristine"), dir)
	})
}

func runMount(ctx context.Context, log *slog.Logger, bin, pristine, dir string) (*mountReport, error) {
	if _, err := exec.LookPath("fusermount3"); err != nil {
		return nil, fmt.Errorf("mount: fusermount3 missing: install the fuse3 package")
	}
	img := filepath.Join(pristine, "image", "disk.img")
	treeSet := filepath.Join(pristine, "tree")
	for _, p := range []string{img, treeSet} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("mount: dataset missing (go run ./bench -prepare): %w", err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	repo, mnt := filepath.Join(dir, "repo"), filepath.Join(dir, "mnt")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return nil, err
	}
	env := append(os.Environ(), "REWIND_REPOSITORY="+repo, "REWIND_PASSWORD="+password, "XDG_CACHE_HOME="+filepath.Join(dir, "cache"))
	run := func(args ...string) ([]byte, time.Duration, error) { return timed(ctx, env, bin, args...) }
	if _, _, err := run("init"); err != nil {
		return nil, err
	}
	out, _, err := run("backup", "--json", filepath.Dir(img), treeSet)
	if err != nil {
		return nil, err
	}
	var files struct {
		ID string `json:"snapshot_id"`
	}
	summaryOf(out, &files)
	if out, _, err = run("backup", "--json", "--image", img); err != nil {
		return nil, err
	}
	var sum struct {
		ID    string `json:"snapshot_id"`
		Image struct {
			Size       int64 `json:"size"`
			BlockSize  int64 `json:"block_size"`
			Blocks     int64 `json:"blocks"`
			BlocksHole int64 `json:"blocks_hole"`
		} `json:"image"`
	}
	summaryOf(out, &sum)
	if sum.ID == "" || files.ID == "" {
		return nil, fmt.Errorf("mount: no summary from backup --image:\n%s", out)
	}
	rep := &mountReport{ImageSize: sum.Image.Size, ImageData: (sum.Image.Blocks - sum.Image.BlocksHole) * sum.Image.BlockSize, Tries: 2}
	log.Info("mount: repository ready", "image_snapshot", sum.ID[:8])

	m := exec.CommandContext(ctx, bin, "mount", mnt)
	m.Env = env
	logf, err := os.Create(filepath.Join(dir, "mount.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	m.Stdout, m.Stderr = logf, logf
	if err := m.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- m.Wait() }()
	defer func() {
		m.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			m.Process.Kill()
			<-exited
		}
	}()
	for deadline := time.Now().Add(time.Minute); !isMounted(mnt); {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("mount: %s not mounted after a minute; see %s", mnt, logf.Name())
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return nil, err
		}
	}
	// Each read goes through a path of its own (a snapshot's directory
	// and at/ views of other names), so that the kernel's page cache of
	// an earlier one does not answer it.
	readAll := func(p string) (time.Duration, error) {
		f, err := os.Open(p)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		start := time.Now()
		n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, make([]byte, 1<<20))
		if err == nil && n != rep.ImageSize {
			err = fmt.Errorf("read %d bytes of %d", n, rep.ImageSize)
		}
		return time.Since(start), err
	}
	shmRun := func(args ...string) (time.Duration, error) {
		d, err := os.MkdirTemp("/dev/shm", "rwbench-mount-")
		if err != nil {
			return 0, err
		}
		defer os.RemoveAll(d)
		for i, a := range args {
			args[i] = strings.ReplaceAll(a, "SHM", d)
		}
		_, took, err := run(args...)
		return took, err
	}
	best := func(into *time.Duration, d time.Duration, err error) error {
		if err == nil && (*into == 0 || d < *into) {
			*into = d
		}
		return err
	}
	// The second read of the image snapshot goes through tags/image/,
	// another inode than ids/ID.
	imgIn := []string{filepath.Join(mnt, "ids", sum.ID[:8], img), ""}
	if ents, _ := os.ReadDir(filepath.Join(mnt, "tags", "image")); len(ents) == 1 {
		imgIn[1] = filepath.Join(mnt, "tags", "image", ents[0].Name(), img)
	}
	views := []string{"now", "-0s"}
	for try := 0; try < rep.Tries && imgIn[try] != ""; try++ {
		// Alternated, so that the machine's other work weighs on both.
		d, err := readAll(imgIn[try])
		if err := best(&rep.ReadImage, d, err); err != nil {
			return nil, err
		}
		d, err = shmRun("restore", "-q", sum.ID, "--image", "SHM/disk.img")
		if err := best(&rep.RestoreImage, d, err); err != nil {
			return nil, err
		}
		d, err = readAll(filepath.Join(mnt, "at", views[try], img))
		if err := best(&rep.ReadFile, d, err); err != nil {
			return nil, err
		}
		d, err = shmRun("restore", "-q", files.ID, "--include", img, "--target", "SHM")
		if err := best(&rep.RestoreFile, d, err); err != nil {
			return nil, err
		}
	}
	log.Info("mount: reads", "image", rep.ReadImage, "restore_image", rep.RestoreImage, "file", rep.ReadFile, "restore_file", rep.RestoreFile)

	find := func(p string) (time.Duration, int, error) {
		start := time.Now()
		out, err := exec.CommandContext(ctx, "find", p).Output()
		return time.Since(start), strings.Count(string(out), "\n"), err
	}
	for range 2 {
		d, n, err := find(treeSet)
		if err := best(&rep.FindSource, d, err); err != nil {
			return nil, err
		}
		rep.TreeEntries = n
	}
	for _, v := range []string{"-0m", "-0h"} {
		d, _, err := find(filepath.Join(mnt, "at", v, treeSet))
		if err := best(&rep.FindFirst, d, err); err != nil {
			return nil, err
		}
	}
	d, _, err := find(filepath.Join(mnt, "at", "-0h", treeSet))
	if err := best(&rep.FindCached, d, err); err != nil {
		return nil, err
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		rep.Load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	log.Info("mount: find", "source", rep.FindSource, "first", rep.FindFirst, "cached", rep.FindCached)
	return rep, nil
}

// summaryOf decodes the summary line of a --json run into v.
func summaryOf(out []byte, v any) {
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, `"message_type":"summary"`) {
			json.Unmarshal([]byte(l), v)
		}
	}
}

// isMounted reports whether dir is a mountpoint now.
func isMounted(dir string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

func (r *mountReport) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", mountTitle)
	fmt.Fprintf(&b, "`go run ./bench -mount only` (root, FUSE): the image set's `disk.img` (%s, %s of it data, the rest holes) and the tree set (%s entries) backed up into one repository, "+
		"the image also as an image snapshot (`backup --image`); then `rewind mount`. Each read is 1 MiB at a time into nothing, through a path the kernel has not cached; "+
		"each measure is the best of %d, reads and restores alternated. Load average at the end: %s (2 shared cores).\n\n",
		fmtBytes(float64(r.ImageSize)), fmtBytes(float64(r.ImageData)), fmtCount(r.TreeEntries), r.Tries, r.Load)
	b.WriteString("| measure | through the mount | reference | ratio | target |\n|---|---|---|---|---|\n")
	speed := func(mount, ref time.Duration) float64 { return ref.Seconds() / mount.Seconds() }
	fmt.Fprintf(&b, "| sequential read of the image snapshot's file (`ids/ID/…/disk.img`) | %s | `restore --image` into tmpfs: %s | %.2fx as fast | >= 0.8x: %s |\n",
		fmtSecs(r.ReadImage.Seconds()), fmtSecs(r.RestoreImage.Seconds()), speed(r.ReadImage, r.RestoreImage), metOr(speed(r.ReadImage, r.RestoreImage) >= 0.8))
	fmt.Fprintf(&b, "| sequential read of `disk.img` of the file snapshot, through `at/` | %s | `restore --include` of it into tmpfs: %s | %.2fx as fast | >= 0.8x: %s |\n",
		fmtSecs(r.ReadFile.Seconds()), fmtSecs(r.RestoreFile.Seconds()), speed(r.ReadFile, r.RestoreFile), metOr(speed(r.ReadFile, r.RestoreFile) >= 0.8))
	ratio := r.FindFirst.Seconds() / r.FindSource.Seconds()
	fmt.Fprintf(&b, "| `find` over the tree set through a new `at/` view | %s (again, kernel-cached: %s) | `find` on the source, warm: %s | %.1fx the time | <= 2x: %s |\n",
		fmtSecs(r.FindFirst.Seconds()), fmtSecs(r.FindCached.Seconds()), fmtSecs(r.FindSource.Seconds()), ratio, metOr(ratio <= 2))
	b.WriteString("\nWhy the gaps, and what would close them: docs/MOUNT.md, \"Measured\".\n")
	return b.String()
}
