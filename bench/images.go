package main

// The images section (issue 14, -images only): device and image backups
// (backup --image) against restic's backup of the same image file, on a
// 2 GiB ext4 image and on the image set's disk.img, each backed up, 1% of
// it rewritten in 64 KiB runs, and backed up again. Root is needed (the
// ext4 image is filled through a loop mount).

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

const imagesTitle = "## Images (issue 14): `backup --image` against restic"

// imageRun is one backup's figures.
type imageRun struct {
	Took      time.Duration `json:"took"`
	Method    string        `json:"method,omitempty"`
	BytesRead int64         `json:"bytes_read"`
	Added     int64         `json:"data_added"`
	Packed    int64         `json:"data_added_packed"`
}

// imagesReport is the section's figures (runs/images.json).
type imagesReport struct {
	Ext4Size, Ext4Used, Ext4Changed                  int64
	Ext4First, Ext4Incr, Ext4Full                    imageRun
	ResticFirst, ResticIncr                          imageRun
	SetSize, SetChanged                              int64
	SetFirst, SetIncr, SetResticFirst, SetResticIncr imageRun
	Load                                             string
}

func imagesOnlyRun(ctx context.Context, log *slog.Logger, cfg config, root, tmp, dataDir string) error {
	t, err := buildRewind(ctx, root, tmp, cfg.rewind)
	if err != nil {
		return err
	}
	if err := ensurePeers(ctx, log, []string{"restic"}); err != nil {
		return err
	}
	dir := filepath.Join(dataDir, "runs", "images")
	rep, err := runImages(ctx, log, t.(rewindTool).bin, filepath.Join(dataDir, "pristine", "image", "disk.img"), dir)
	if !cfg.keep {
		os.RemoveAll(dir)
	}
	if err != nil {
		return err
	}
	if b, err := json.MarshalIndent(rep, "", "  "); err == nil {
		os.WriteFile(filepath.Join(dataDir, "runs", "images.json"), b, 0o644)
	}
	return writeTitled(cfg.out, imagesTitle, rep.markdown())
}

func runImages(ctx context.Context, log *slog.Logger, bin, setImg, dir string) (*imagesReport, error) {
	if _, err := os.Stat(setImg); err != nil {
		return nil, fmt.Errorf("images: dataset missing (go run ./bench -prepare): %w", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "mnt"), 0o755); err != nil {
		return nil, err
	}
	env := append(os.Environ(), "REWIND_PASSWORD="+password, "RESTIC_PASSWORD="+password,
		"XDG_CACHE_HOME="+filepath.Join(dir, "cache"), "RESTIC_CACHE_DIR="+filepath.Join(dir, "restic-cache"))
	sh := func(prog string, args ...string) error {
		out, err := exec.CommandContext(ctx, prog, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s %s: %w\n%s", prog, strings.Join(args, " "), err, out)
		}
		return nil
	}
	rw := func(repo string, args ...string) (imageRun, error) {
		out, took, err := timed(ctx, env, bin, append([]string{"backup", "--repo", repo, "--json"}, args...)...)
		var s struct {
			Added  int64 `json:"data_added"`
			Packed int64 `json:"data_added_packed"`
			Image  struct {
				Method    string `json:"method"`
				BytesRead int64  `json:"bytes_read"`
			} `json:"image"`
		}
		summaryOf(out, &s)
		return imageRun{Took: took, Method: s.Image.Method, BytesRead: s.Image.BytesRead, Added: s.Added, Packed: s.Packed}, err
	}
	rs := func(repo, file string) (imageRun, error) {
		out, took, err := timed(ctx, env, "restic", "--repo", repo, "backup", "--json", file)
		var s struct {
			Added  int64 `json:"data_added"`
			Packed int64 `json:"data_added_packed"`
			Read   int64 `json:"total_bytes_processed"`
		}
		summaryOf(out, &s)
		return imageRun{Took: took, BytesRead: s.Read, Added: s.Added, Packed: s.Packed}, err
	}
	rep := &imagesReport{}
	var err error

	// 1. A 2 GiB ext4 image holding 1 GiB of the image set's data.
	ext4 := filepath.Join(dir, "ext4.img")
	mnt := filepath.Join(dir, "mnt")
	rep.Ext4Size = 2 << 30
	if err := sh("truncate", "-s", "2G", ext4); err != nil {
		return nil, err
	}
	if err := sh("mkfs.ext4", "-q", "-F", "-b", "4096", "-E", "nodiscard", ext4); err != nil {
		return nil, err
	}
	data := filepath.Join(mnt, "data.bin")
	if err := sh("mount", "-o", "loop", ext4, mnt); err != nil {
		return nil, err
	}
	err = copyHead(setImg, data, 1<<30)
	if err2 := sh("umount", mnt); err == nil {
		err = err2
	}
	if err != nil {
		return nil, err
	}
	for _, args := range [][]string{{bin, "init", "--repo", filepath.Join(dir, "repo")}, {bin, "init", "--repo", filepath.Join(dir, "repo-set")},
		{"restic", "init", "--repo", filepath.Join(dir, "restic")}, {"restic", "init", "--repo", filepath.Join(dir, "restic-set")}} {
		if _, _, err := timed(ctx, env, args[0], args[1:]...); err != nil {
			return nil, err
		}
	}
	repo, restic := filepath.Join(dir, "repo"), filepath.Join(dir, "restic")
	if rep.Ext4First, err = rw(repo, "--image", ext4); err != nil {
		return nil, err
	}
	rep.Ext4Used = rep.Ext4First.BytesRead
	if rep.ResticFirst, err = rs(restic, ext4); err != nil {
		return nil, err
	}
	if err := sh("mount", "-o", "loop", ext4, mnt); err != nil {
		return nil, err
	}
	rep.Ext4Changed, err = rewriteRuns(data, rep.Ext4Size/100, 1)
	if err2 := sh("umount", mnt); err == nil {
		err = err2
	}
	if err != nil {
		return nil, err
	}
	if rep.Ext4Incr, err = rw(repo, "--image", ext4); err != nil {
		return nil, err
	}
	if rep.ResticIncr, err = rs(restic, ext4); err != nil {
		return nil, err
	}
	if rep.Ext4Full, err = rw(repo, "--image", ext4, "--full-read"); err != nil {
		return nil, err
	}
	log.Info("images: ext4", "first", rep.Ext4First.Took, "incremental", rep.Ext4Incr.Took, "read", rep.Ext4Incr.BytesRead, "restic", rep.ResticIncr.Took)
	os.Remove(ext4)

	// 2. The image set's disk.img (no filesystem: read whole).
	img := filepath.Join(dir, "disk.img")
	if err := sh("cp", "--sparse=always", setImg, img); err != nil {
		return nil, err
	}
	fi, err := os.Stat(img)
	if err != nil {
		return nil, err
	}
	rep.SetSize = fi.Size()
	repo, restic = filepath.Join(dir, "repo-set"), filepath.Join(dir, "restic-set")
	if rep.SetFirst, err = rw(repo, "--image", img); err != nil {
		return nil, err
	}
	if rep.SetResticFirst, err = rs(restic, img); err != nil {
		return nil, err
	}
	if rep.SetChanged, err = rewriteRuns(img, rep.SetSize/100, 2); err != nil {
		return nil, err
	}
	if rep.SetIncr, err = rw(repo, "--image", img); err != nil {
		return nil, err
	}
	if rep.SetResticIncr, err = rs(restic, img); err != nil {
		return nil, err
	}
	log.Info("images: set", "changed", rep.SetChanged, "stored", rep.SetIncr.Added, "restic_stored", rep.SetResticIncr.Added)
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		rep.Load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	return rep, nil
}

// copyHead copies the first n bytes of src into a new file dst.
func copyHead(src, dst string, n int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(out, in, n); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// rewriteRuns overwrites about total bytes of the file p with random
// data, in 64 KiB runs at random 4 KiB-aligned offsets, and returns the
// bytes written.
func rewriteRuns(p string, total int64, seed uint64) (int64, error) {
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return 0, err
	}
	r := rand.New(rand.NewPCG(seed, 14))
	buf := make([]byte, 64<<10)
	var done int64
	for done+int64(len(buf)) <= total {
		for i := range buf {
			buf[i] = byte(r.Uint32())
		}
		off := r.Int64N(fi.Size()-int64(len(buf))) &^ 4095
		if _, err := f.WriteAt(buf, off); err != nil {
			f.Close()
			return 0, err
		}
		done += int64(len(buf))
	}
	return done, f.Close()
}

func (r *imagesReport) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", imagesTitle)
	fmt.Fprintf(&b, "`go run ./bench -images only` (root): a %s ext4 image holding %s (the first GiB of the image set's `disk.img` in one file), "+
		"and the image set's `disk.img` itself (%s, no filesystem); each backed up by rewind (`backup --image`) and by restic (`restic backup FILE`), "+
		"then 1%% of it rewritten in 64 KiB runs at random 4 KiB-aligned offsets (%s and %s), and backed up again. "+
		"Repositories on the same disk, page cache warm, load average at the end %s (2 shared cores).\n\n",
		fmtBytes(float64(r.Ext4Size)), fmtBytes(float64(r.Ext4Used)), fmtBytes(float64(r.SetSize)), fmtBytes(float64(r.Ext4Changed)), fmtBytes(float64(r.SetChanged)), r.Load)
	b.WriteString("| measure | rewind | restic | target |\n|---|---|---|---|\n")
	readPct := 100 * float64(r.Ext4Incr.BytesRead) / float64(r.Ext4Size)
	fmt.Fprintf(&b, "| ext4 image, incremental after 1%%, by allocation bitmap (`%s`): bytes read | %s (%.0f%% of the image) | %s | <= 5%%: %s |\n",
		r.Ext4Incr.Method, fmtBytes(float64(r.Ext4Incr.BytesRead)), readPct, fmtBytes(float64(r.ResticIncr.BytesRead)), metOr(readPct <= 5))
	tr := r.Ext4Incr.Took.Seconds() / r.ResticIncr.Took.Seconds()
	fmt.Fprintf(&b, "| the same: time | %s (%.2fx restic's) | %s | <= 0.2x: %s |\n", fmtSecs(r.Ext4Incr.Took.Seconds()), tr, fmtSecs(r.ResticIncr.Took.Seconds()), metOr(tr <= 0.2))
	fmt.Fprintf(&b, "| the same: stored (packed) | %s (%s) | %s (%s) | |\n", fmtBytes(float64(r.Ext4Incr.Added)), packed(r.Ext4Incr.Packed), fmtBytes(float64(r.ResticIncr.Added)), packed(r.ResticIncr.Packed))
	fmt.Fprintf(&b, "| ext4 image, first backup: time, bytes read | %s, %s | %s, %s | |\n", fmtSecs(r.Ext4First.Took.Seconds()), fmtBytes(float64(r.Ext4First.BytesRead)), fmtSecs(r.ResticFirst.Took.Seconds()), fmtBytes(float64(r.ResticFirst.BytesRead)))
	fmt.Fprintf(&b, "| ext4 image, a third backup with `--full-read`, nothing changed since: time, stored | %s, %s | | |\n", fmtSecs(r.Ext4Full.Took.Seconds()), fmtBytes(float64(r.Ext4Full.Added)))
	sr := float64(r.SetIncr.Added) / float64(r.SetChanged)
	rsr := float64(r.SetResticIncr.Added) / float64(r.SetChanged)
	fmt.Fprintf(&b, "| image set, incremental after 1%%, full read (`%s`): stored / changed bytes | %s = %.2fx (packed %s) | %s = %.2fx (packed %s) | <= 2x: %s |\n",
		r.SetIncr.Method, fmtBytes(float64(r.SetIncr.Added)), sr, packed(r.SetIncr.Packed), fmtBytes(float64(r.SetResticIncr.Added)), rsr, packed(r.SetResticIncr.Packed), metOr(sr <= 2))
	fmt.Fprintf(&b, "| the same: time (first backup) | %s (%s) | %s (%s) | |\n", fmtSecs(r.SetIncr.Took.Seconds()), fmtSecs(r.SetFirst.Took.Seconds()), fmtSecs(r.SetResticIncr.Took.Seconds()), fmtSecs(r.SetResticFirst.Took.Seconds()))
	b.WriteString("\nThe allocation bitmap tells which blocks are in use, not which changed: an incremental reads every block in use " +
		"(here the whole file), and only a dirty bitmap (`--qemu-qmp`, QEMU) reads less. Details: docs/IMAGES.md, \"Measured\".\n")
	return b.String()
}

// packed is a packed size, "–" when the tool did not say (restic before
// 0.17 has no data_added_packed).
func packed(n int64) string {
	if n <= 0 {
		return "–"
	}
	return fmtBytes(float64(n))
}
