package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/backend/location"
	"github.com/rewind-backup/rewind/internal/filter"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/restorer"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
	"github.com/rewind-backup/rewind/internal/ui"
	"github.com/spf13/cobra"
)

// preRollbackTag marks the snapshot a rollback takes of what it replaces.
const preRollbackTag = "pre-rollback"

func newRollbackCmd(g *globals) *cobra.Command {
	var at string
	var sf snapFilter
	cmd := &cobra.Command{
		Use:   "rollback PATH --at TIME",
		Short: "Put a file or directory back in place as it was at a moment",
		Long: `Put PATH (a path on this machine) back as it was at TIME, taken from the newest
snapshot of this host (or --host) that covers PATH and whose capture ended by
TIME. TIME is as for restore --at: RFC 3339, "2026-11-22 10:31:05" in local
time, relative as -15m, or a label (rewind mark).

First the current state of PATH is backed up into a snapshot tagged
"pre-rollback", so that the rollback can itself be undone: rollback prints
the command, rollback PATH --at with that snapshot's time. If that backup
cannot save every file, nothing is rolled back.

Then PATH is restored in place: files whose content differs are rewritten,
metadata is set, and for a directory, every entry that did not exist at TIME
is removed. Left alone are entries matching the exclude patterns of the
snapshot restored from (they were never backed up), sockets, whatever lies
on another filesystem mounted below PATH, and the repository and its
password file when they are inside PATH. A PATH that did not exist at TIME
is refused.`,
		Example: `  rewind rollback /etc/nginx --at "before nginx upgrade"
  rewind rollback ~/notes.txt --at -15m
  rewind rollback /srv/app --at "2026-11-22 10:31:05"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if at == "" {
				return errors.New("--at is required: the moment to go back to")
			}
			return runRollback(cmd, g, args[0], at, sf, time.Now())
		},
	}
	cmd.Flags().StringVar(&at, "at", "", "go back to this "+atUsage)
	sf.add(cmd)
	return cmd
}

func runRollback(cmd *cobra.Command, g *globals, arg, at string, sf snapFilter, now time.Time) error {
	ctx := cmd.Context()
	p, err := localPath(arg)
	if err != nil {
		return err
	}
	keepOut, err := g.rollbackKeepOut(p)
	if err != nil {
		return err
	}
	r, err := g.openRepo(ctx, false)
	if err != nil {
		return err
	}
	defer r.Close()
	// Lock before reading the index: prune relies on it.
	lk, err := g.takeLock(ctx, r, lock.Shared, "rollback")
	if err != nil {
		return err
	}
	defer g.releaseLock(ctx, lk)
	if err := r.LoadIndex(ctx); err != nil {
		return fmt.Errorf("load index: %w", err)
	}
	f := timelineFilter(sf)
	h, err := g.loadHistory(ctx, r, p, f)
	if err != nil {
		return err
	}
	m, err := h.moment(at, now)
	if err != nil {
		return err
	}
	sn, node, err := h.at(ctx, r, m)
	if err != nil {
		return err
	}
	if node == nil {
		return fmt.Errorf("%w: %s did not exist at %s (%s); nothing to roll back to", snapshot.ErrPathNotFound, p, m, describeSnapshot(sn))
	}
	// What the rollback must not touch: what the snapshot never had, and
	// the repository.
	skip := append(slices.Clone(sn.Excludes), keepOut...)
	if _, err := filter.NewMatcher(skip); err != nil {
		return fmt.Errorf("exclude patterns of %s: %w", describeSnapshot(sn), err)
	}

	host := ""
	if len(f.Hosts) == 1 {
		host = f.Hosts[0]
	}
	pre, err := g.saveBeforeRollback(cmd, r, lk, p, host, skip)
	if err != nil {
		return err
	}

	// The restorer puts p back in place: with Overwrite it replaces what
	// is of another type, with Delete it removes what p did not hold at
	// the moment, and the target (p) takes the directory's own metadata.
	target, snapPath := filepath.Dir(p), p
	if node.Type == tree.Dir {
		target = p
	}
	rs, err := restorer.New(r, restorer.Options{
		Target: target, Overwrite: true, Delete: true, TargetIsEntry: node.Type == tree.Dir,
		Exclude: skip, Owner: os.Geteuid() == 0, Logger: g.log,
	})
	if err != nil {
		return err
	}
	st, err := rs.Restore(ctx, sn, snapPath)
	if st != nil {
		for _, e := range st.Errors {
			g.ui.Warnf("error: %s: %s\n", e.Path, e.Error)
		}
		for _, e := range st.NotBackedUp {
			g.ui.Warnf("not rolled back: %s: %s\n", e.Path, e.Error)
		}
	}
	if err != nil {
		return fmt.Errorf("rollback of %s to %s failed part way: %w%s", p, m, err, undoHint(pre, p, sf))
	}
	if !g.quiet {
		g.ui.Printf("rolled back %s to %s, from %s: %s rewritten, %s already right, %s removed\n",
			p, m, describeSnapshot(sn), ui.Count(st.Files, "file", "files"), ui.Count(st.FilesSkipped, "file", "files"), ui.Count(st.Removed, "entry", "entries"))
		if pre != nil {
			g.ui.Printf("the state before the rollback is in snapshot %s (tag %s)%s\n", pre.ID.Short(), preRollbackTag, undoHint(pre, p, sf))
		}
	}
	return nil
}

// undoHint says how to undo a rollback whose earlier state is in pre.
func undoHint(pre *snapshot.Snapshot, p string, sf snapFilter) string {
	if pre == nil {
		return ""
	}
	host := ""
	if len(sf.hosts) == 1 {
		host = " --host " + shellQuote(sf.hosts[0])
	}
	return fmt.Sprintf("\nto undo: rewind rollback %s --at %s%s", shellQuote(p), pre.AsOf().UTC().Format(time.RFC3339Nano), host)
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@+=,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// saveBeforeRollback backs up p as it is now, into a snapshot tagged
// pre-rollback of host ("": this machine), with the given excludes. It
// returns nil when p does not exist (there is nothing to save), and fails
// when any file could not be saved.
func (g *globals) saveBeforeRollback(cmd *cobra.Command, r *repository.Repository, lk *lock.Lock, p, host string, excludes []string) (*snapshot.Snapshot, error) {
	if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
		g.ui.Infof("%s does not exist now: there is nothing to save before the rollback\n", p)
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	if host == "" {
		host, _ = os.Hostname()
	}
	parent, _, err := findParent(cmd, g, r, "", host, []string{p})
	if err != nil {
		return nil, err
	}
	a, err := archiver.New(r, archiver.Options{
		Hostname: host, Tags: []string{preRollbackTag}, Excludes: excludes, Parent: parent,
		Logger: g.log, ProgramVersion: "rewind " + Version,
		BeforeCommit: func(context.Context) error {
			if lk == nil {
				return nil
			}
			if err := lk.Check(); err != nil {
				return fmt.Errorf("snapshot of the current state not saved, so nothing was rolled back: %w", err)
			}
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	sn, err := a.Snapshot(cmd.Context(), []string{p})
	if err != nil {
		return nil, fmt.Errorf("back up the current state of %s: %w; nothing was rolled back", p, err)
	}
	if len(sn.Summary.Errors) > 0 {
		for _, e := range sn.Summary.Errors {
			g.ui.Warnf("error: %s %s: %s\n", e.Kind, e.Path, e.Error)
		}
		return nil, fmt.Errorf("%s of %s could not be read into snapshot %s (listed above), so a rollback could not be undone; nothing was rolled back", countErrors(sn.Summary.Errors), p, sn.ID.Short())
	}
	g.ui.Infof("saved the current state of %s as snapshot %s\n", p, sn.ID.Short())
	return sn, nil
}

// rollbackKeepOut returns the paths inside p that a rollback must leave
// alone, as exclude patterns: the local repository and its password file,
// when they are there. It refuses a p inside the repository or equal to
// the password file, and paths the patterns cannot name exactly.
func (g *globals) rollbackKeepOut(p string) ([]string, error) {
	type guarded struct{ path, what string }
	var cands []guarded
	if loc, err := g.location(); err == nil && loc.Scheme == location.Local {
		cands = append(cands, guarded{loc.Path, "the repository"})
	}
	if g.usingDefault() {
		if _, pw, err := defaultRepo(); err == nil {
			cands = append(cands, guarded{pw, "the repository's password file"})
		}
	}
	if pf := g.passwordFilePath(); pf != "" {
		cands = append(cands, guarded{pf, "the password file"})
	}
	resolve := func(q string) string {
		abs, err := filepath.Abs(q)
		if err != nil {
			return filepath.Clean(q)
		}
		if rq, err := filepath.EvalSymlinks(abs); err == nil {
			return rq
		}
		return filepath.Clean(abs)
	}
	below := func(q, dir string) (string, bool) {
		if q == dir {
			return "", true
		}
		if dir == "/" {
			return q, true
		}
		rest, ok := strings.CutPrefix(q, dir+"/")
		return rest, ok
	}
	rp := resolve(p)
	var out []string
	for _, c := range cands {
		rq := resolve(c.path)
		if _, inside := below(rp, rq); inside {
			return nil, fmt.Errorf("refusing to roll back %s: it is %s or inside it", p, c.what)
		}
		rest, ok := below(rq, rp)
		if !ok {
			continue
		}
		live := path.Join(p, rest)
		if strings.ContainsAny(live, `*?[\`) {
			return nil, fmt.Errorf("refusing to roll back %s: %s (%s) is inside it, and its name cannot be excluded exactly", p, c.what, live)
		}
		out = append(out, live)
	}
	return out, nil
}
