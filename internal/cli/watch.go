package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/backend/location"
	"github.com/rewind-backup/rewind/internal/filter"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/sqlite"
	"github.com/rewind-backup/rewind/internal/ui"
	"github.com/rewind-backup/rewind/internal/watch"
	"github.com/spf13/cobra"
)

// watchTag is the tag of every snapshot made by watch.
const watchTag = "watch"

type watchOpts struct {
	interval      time.Duration
	settle        time.Duration
	fullScanEvery time.Duration
	backend       string
	status        bool
	tags          []string
	host          string
	excludes      []string
	excludeFiles  []string
	excludeCaches bool
	oneFS         bool
	noInventory   bool
	sqlite        string
}

func newWatchCmd(g *globals) *cobra.Command {
	o := &watchOpts{}
	cmd := &cobra.Command{
		Use:   "watch PATH...",
		Short: "Back up PATHs continuously, seconds after each change",
		Long: `Watch PATHs and save a snapshot (tagged "watch") of what changed, at most
once per --interval. The first snapshot walks everything; later ones look
only at the changed paths and take the rest from the previous snapshot, so
their cost follows the change, not the size of the tree. A file still being
written is waited for up to --settle, then captured as it is and marked in
flux. A full scan every --full-scan-every catches changes that no
notification reports.

Changes are followed with fanotify (one mark per filesystem; Linux 5.9 and
root) or, where it is unavailable, with inotify on every directory.

SIGTERM or Ctrl-C finishes the snapshot under way, saves what is pending,
and exits 0. The state of a running watcher is written to a status file,
shown by --status.`,
		Example: `  rewind watch /srv/data
  rewind watch --interval 10s --settle 2s /home /etc
  rewind watch --status
  rewind watch --status --json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if o.status {
				return nil
			}
			return cobra.MinimumNArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.status {
				return runWatchStatus(g, args)
			}
			return runWatch(cmd, g, o, args)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.interval, "interval", watch.DefaultInterval, "save at most one snapshot per `duration`")
	f.DurationVar(&o.settle, "settle", watch.DefaultSettle, "wait up to `duration` for files being written to go quiet")
	f.DurationVar(&o.fullScanEvery, "full-scan-every", watch.DefaultFullScanEvery, "walk everything every `duration` to catch changes no event reports (0: never)")
	f.StringVar(&o.backend, "backend", watch.BackendAuto, "how to follow changes: `auto`, fanotify or inotify")
	f.BoolVar(&o.status, "status", false, "show the state of the watchers of this repository and exit")
	f.StringArrayVar(&o.tags, "tag", nil, "add a `tag` to the snapshots besides \"watch\" (repeatable)")
	f.StringVar(&o.host, "host", "", "record this `hostname` instead of the machine's")
	f.StringArrayVarP(&o.excludes, "exclude", "e", nil, "exclude paths matching `pattern` (repeatable)")
	f.StringArrayVar(&o.excludeFiles, "exclude-file", nil, "read exclude patterns from `file` (repeatable)")
	f.BoolVar(&o.excludeCaches, "exclude-caches", false, "skip the contents of directories with a CACHEDIR.TAG")
	f.BoolVarP(&o.oneFS, "one-file-system", "x", false, "do not cross filesystem boundaries")
	f.BoolVar(&o.noInventory, "no-inventory", false, "do not record the machine's inventory with the snapshots (by default it is recorded once at start and named by every snapshot)")
	addSQLiteFlag(f, &o.sqlite)
	return cmd
}

// stateDir is rewind's folder in the user's state directory
// ($XDG_STATE_HOME/rewind, else ~/.local/state/rewind).
func stateDir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "rewind"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the state directory: %w", err)
	}
	return filepath.Join(home, ".local", "state", "rewind"), nil
}

func shortHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:8])
}

// statusPrefix is the start of the names of the status files of a
// repository's watchers: watch-<repository>-<paths>.json.
func statusPrefix(loc location.Location) (dir, prefix string, err error) {
	dir, err = stateDir()
	return dir, "watch-" + shortHash(loc.String()) + "-", err
}

func statusFile(loc location.Location, targets []string) (string, error) {
	dir, prefix, err := statusPrefix(loc)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, prefix+shortHash(strings.Join(targets, "\x00"))+".json"), nil
}

// daemonLogger is the log of a long-running command (watch, agent), which a
// service manager keeps: info by default (every run or snapshot is a
// line), warnings only with --quiet, debug with -vv; JSON lines with
// --log-format json.
func daemonLogger(g *globals) *slog.Logger {
	level := slog.LevelInfo
	switch {
	case g.quiet:
		level = slog.LevelWarn
	case g.verbose > 1:
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	if g.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

func runWatch(cmd *cobra.Command, g *globals, o *watchOpts, args []string) error {
	ctx := cmd.Context()
	targets, err := archiver.CleanTargets(args)
	if err != nil {
		return err
	}
	for _, t := range targets {
		if _, err := os.Lstat(t); err != nil {
			return fmt.Errorf("watch path %q: %w", t, err)
		}
	}
	if err := checkSQLiteFlag(o.sqlite); err != nil {
		return err
	}
	excludes := slices.Clone(o.excludes)
	for _, f := range o.excludeFiles {
		pats, err := filter.ReadPatternFile(f)
		if err != nil {
			return err
		}
		excludes = append(excludes, pats...)
	}
	loc, err := g.location()
	if err != nil {
		return err
	}
	sfile, err := statusFile(loc, targets)
	if err != nil {
		return err
	}
	log := daemonLogger(g)

	// What the watcher writes itself is never a change to capture: the
	// repository (when local) and the status file.
	ignore := []string{filepath.Dir(sfile)}
	// SQLite databases are copied into a private folder that lives as
	// long as the watcher.
	sqliteTmp, err := os.MkdirTemp("", "rewind-sqlite-")
	if err != nil {
		return fmt.Errorf("temporary folder for SQLite copies: %w", err)
	}
	defer os.RemoveAll(sqliteTmp)
	ignore = append(ignore, sqliteTmp)
	if loc.Scheme == location.Local {
		if abs, err := filepath.Abs(loc.Path); err == nil {
			ignore = append(ignore, abs)
		}
	}
	for _, p := range ignore {
		for _, t := range targets {
			if isBelow(p, t) && !strings.ContainsAny(p, "*?[\\") {
				log.Info("leaving out of the snapshots what the watcher writes itself", "path", p)
				excludes = append(excludes, p)
				break
			}
		}
	}

	r, err := g.openOrCreateDefault(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	host := o.host
	if host == "" {
		host, _ = os.Hostname()
	}
	tags := slices.Clone(o.tags)
	if !slices.Contains(tags, watchTag) {
		tags = append(tags, watchTag)
	}
	lockOnce := func(ctx context.Context) (check func() error, release func(), err error) {
		lk, err := g.takeLock(ctx, r, lock.Shared, "watch")
		if err != nil {
			return nil, nil, err
		}
		return lk.Check, func() { g.releaseLock(ctx, lk) }, nil
	}
	// The parent of the first snapshot is found as backup finds it.
	_, release, err := lockOnce(ctx)
	if err != nil {
		return err
	}
	parent, _, err := findParent(cmd, g, r, "", host, targets)
	var inv *watchInventory
	if err == nil && !o.noInventory {
		inv, err = recordWatchInventory(ctx, g, r, host)
	}
	release()
	if err != nil {
		return err
	}
	var beforeSave func(context.Context, *snapshot.Snapshot) error
	if inv != nil {
		beforeSave = func(ctx context.Context, sn *snapshot.Snapshot) error { return inv.attach(ctx, g, r, sn) }
	}

	committer := &watch.RepoCommitter{
		Repo: r,
		Lock: lockOnce,
		Archive: archiver.Options{
			Hostname: host, Tags: tags, Excludes: excludes, ExcludeCaches: o.excludeCaches,
			OneFileSystem: o.oneFS, Logger: log, ProgramVersion: "rewind " + Version,
			BeforeSave: beforeSave,
			SQLite:     sqlite.Hook(o.sqlite, sqlite.Options{}, o.settle), SQLiteTempDir: sqliteTmp,
		},
		Paths:  targets,
		Parent: parent,
		Log:    log,
	}
	full := o.fullScanEvery
	if full <= 0 {
		full = -1
	}
	var statusErr bool
	w, err := watch.New(watch.Options{
		Roots: targets, Backend: o.backend, Ignore: ignore,
		Interval: o.interval, Settle: o.settle, FullScanEvery: full,
		NoSettle:  sqlite.NoSettle(o.sqlite),
		Committer: committer, Logger: log,
		OnCommit: func(c watch.Capture) { printWatchSnapshot(g, c) },
		OnStatus: func(s watch.Status) {
			s.Repository = loc.String()
			if err := watch.WriteStatus(sfile, &s); err != nil && !statusErr {
				statusErr = true
				log.Warn("cannot write the status file; --status will not show this watcher", "file", sfile, "err", err)
			}
		},
	})
	if err != nil {
		return err
	}

	// A second signal stops at once, without the last snapshot.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	quit := make(chan struct{})
	defer close(quit)
	go func() {
		n := 0
		for {
			select {
			case <-sigs:
				if n++; n == 2 {
					log.Warn("second signal: stopping without finishing the snapshot")
					os.Exit(ExitFatal)
				}
			case <-quit:
				return
			}
		}
	}()
	return w.Run(ctx)
}

// isBelow reports whether p is dir or inside it.
func isBelow(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

// WatchSnapshotJSON is the line `watch --json` prints for each snapshot
// (docs/JSON.md).
type WatchSnapshotJSON struct {
	MessageType     string    `json:"message_type"`
	SnapshotID      string    `json:"snapshot_id"`
	Parent          string    `json:"parent,omitempty"`
	Time            time.Time `json:"time"`
	Committed       time.Time `json:"committed"`
	Reason          string    `json:"reason"`
	Full            bool      `json:"full"`
	Paths           int       `json:"paths"`
	Rescanned       int       `json:"rescanned"`
	InFlux          []string  `json:"in_flux,omitempty"`
	LagSeconds      float64   `json:"lag_seconds"`
	DurationSeconds float64   `json:"duration_seconds"`
	FilesNew        int64     `json:"files_new"`
	FilesChanged    int64     `json:"files_changed"`
	BytesRead       int64     `json:"bytes_read"`
	DataAdded       int64     `json:"data_added"`
	DataAddedPacked int64     `json:"data_added_packed"`
	SQLiteCaptured  int64     `json:"sqlite_captured"`
}

func printWatchSnapshot(g *globals, c watch.Capture) {
	sn := c.Result.Snapshot
	var lag time.Duration
	if !c.Batch.Oldest.IsZero() {
		lag = c.Committed.Sub(c.Batch.Oldest)
	}
	took := c.Committed.Sub(c.Started)
	if g.json {
		j := WatchSnapshotJSON{MessageType: "snapshot", SnapshotID: sn.ID.String(), Time: sn.Time.UTC(),
			Committed: c.Committed.UTC(), Reason: c.Batch.Reason, Full: c.Result.Full,
			Paths: len(c.Batch.Paths), Rescanned: len(c.Batch.Rescan), InFlux: c.Batch.InFlux,
			LagSeconds: lag.Seconds(), DurationSeconds: took.Seconds()}
		if sn.Parent != nil {
			j.Parent = sn.Parent.String()
		}
		if s := sn.Summary; s != nil {
			j.FilesNew, j.FilesChanged, j.BytesRead, j.DataAdded, j.DataAddedPacked = s.FilesNew, s.FilesChanged, s.BytesRead, s.DataAdded, s.DataStored
			j.SQLiteCaptured = s.SQLiteCaptured
		}
		g.ui.JSONLine(j)
		return
	}
	if g.quiet {
		return
	}
	what := ui.Count(int64(len(c.Batch.Paths)+len(c.Batch.Rescan)), "changed path", "changed paths")
	if c.Result.Full {
		what = "full walk (" + c.Batch.Reason + ")"
	}
	g.ui.Printf("%s snapshot %s saved: %s, lag %s, took %s\n", c.Committed.Local().Format("15:04:05"),
		sn.ID.Short(), what, lag.Round(10*time.Millisecond), took.Round(time.Millisecond))
}

// WatchStatusJSON is one element of `watch --status --json`.
type WatchStatusJSON struct {
	watch.Status
	// The status file's "host" is shown as "hostname", the name every
	// JSON document gives the host: Host (shallower than the embedded
	// field, and always nil) hides it, Hostname carries it.
	Host       *struct{} `json:"host,omitempty"`
	Hostname   string    `json:"hostname"`
	Running    bool      `json:"running"`
	LagSeconds float64   `json:"lag_seconds"`
}

// runWatchStatus shows the status files of this repository's watchers on
// this host (of the given paths only, when some are given).
func runWatchStatus(g *globals, args []string) error {
	loc, err := g.location()
	if err != nil {
		return err
	}
	var files []string
	if len(args) > 0 {
		targets, err := archiver.CleanTargets(args)
		if err != nil {
			return err
		}
		f, err := statusFile(loc, targets)
		if err != nil {
			return err
		}
		files = []string{f}
	} else {
		dir, prefix, err := statusPrefix(loc)
		if err != nil {
			return err
		}
		if files, err = filepath.Glob(filepath.Join(dir, prefix+"*.json")); err != nil {
			return err
		}
	}
	now := time.Now()
	out := []WatchStatusJSON{}
	for _, f := range files {
		s, err := watch.ReadStatus(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			g.ui.Warnf("%v\n", err)
			continue
		}
		running := s.State == "running" && processRunning(s.PID)
		j := WatchStatusJSON{Status: *s, Hostname: s.Host, Running: running}
		if running {
			j.LagSeconds = s.Lag(now).Seconds()
		}
		out = append(out, j)
	}
	if g.json {
		return g.ui.JSONDoc(out)
	}
	if len(out) == 0 {
		g.ui.Printf("no watcher of %s has run on this host\n", loc)
		return nil
	}
	for _, s := range out {
		state := "stopped"
		if s.Running {
			state = fmt.Sprintf("running (PID %d, %s) since %s", s.PID, s.Backend, s.Started.Local().Format("2006-01-02 15:04:05"))
		} else if s.State == "running" {
			state = fmt.Sprintf("not running: PID %d is gone (last update %s)", s.PID, s.Updated.Local().Format("2006-01-02 15:04:05"))
		}
		g.ui.Printf("%s\n  %s\n", strings.Join(s.Paths, " "), state)
		if s.LastSnapshot != "" && s.LastSnapshotTime != nil {
			g.ui.Printf("  last snapshot %.8s at %s (its oldest change waited %s)\n", s.LastSnapshot,
				s.LastSnapshotTime.Local().Format("2006-01-02 15:04:05"), (time.Duration(s.LastLagSeconds * float64(time.Second))).Round(10*time.Millisecond))
		}
		if s.Running {
			g.ui.Printf("  pending: %s, lag %s\n", ui.Count(int64(s.PendingChanges), "change", "changes"), (time.Duration(s.LagSeconds * float64(time.Second))).Round(10*time.Millisecond))
		}
		g.ui.Printf("  %s, %s, %s\n", ui.Count(int64(s.Snapshots), "snapshot", "snapshots"), ui.Count(int64(s.FullScans), "full scan", "full scans"),
			ui.Count(int64(s.Overflows), "queue overflow", "queue overflows"))
		if s.LastError != "" {
			g.ui.Printf("  last error: %s\n", s.LastError)
		}
	}
	return nil
}

// processRunning reports whether a process of that PID exists on this
// host.
func processRunning(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
