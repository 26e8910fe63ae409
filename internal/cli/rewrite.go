package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/filter"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/ui"
	"github.com/spf13/cobra"
)

// RewriteJSON is one element of `rewrite --json` (docs/JSON.md).
type RewriteJSON struct {
	From         string   `json:"from"`
	ID           string   `json:"id,omitempty"`
	ShortID      string   `json:"short_id,omitempty"`
	Changed      bool     `json:"changed"`
	Forgotten    bool     `json:"forgotten"`
	RemovedPaths []string `json:"removed_paths"`
	FilesRemoved int64    `json:"files_removed"`
	DirsRemoved  int64    `json:"dirs_removed"`
	OtherRemoved int64    `json:"other_removed"`
	BytesRemoved int64    `json:"bytes_removed"`
}

type rewriteOptions struct {
	excludes    []string
	excludeFile []string
	forget      bool
	dryRun      bool
}

func newRewriteCmd(g *globals) *cobra.Command {
	var o rewriteOptions
	cmd := &cobra.Command{
		Use:   "rewrite [--exclude PATTERN]... [--exclude-file FILE] [--forget] [--dry-run] SNAPSHOT...",
		Short: "Remove paths from existing snapshots",
		Long: `Write a new snapshot of each snapshot named (IDs, unique ID prefixes or
"latest") without the entries that --exclude and --exclude-file match, for
example a password file backed up by mistake. Patterns are those of backup
--exclude: without a slash they match a name at any depth, with one the
whole absolute path; a directory that matches goes with everything below.

The new snapshot keeps the original's time, host, paths and tags, and its
"rewrite" field names the snapshot it was rewritten from, when, and the
patterns applied. Directories that lose nothing keep their stored trees.
Without --forget the original snapshot stays, still holding the paths;
with --forget it is removed once its rewrite is saved (if it cannot be
removed, the rewrite is removed again and the command fails). Snapshots
under legal hold or younger than the minimum retention cannot be removed:
--forget refuses them before anything is written.

The content of the removed files stays in the repository until no
snapshot references it and ` + "`rewind prune`" + ` has run: rewrite --forget, then prune,
to have it gone.`,
		Example: `  rewind rewrite --exclude /etc/shadow.bak --dry-run latest
  rewind rewrite --exclude '*.pem' --exclude /home/ann/.aws --forget 4f2a91c3 9b1d0e77
  rewind rewrite --exclude-file leaked.txt --forget --json latest && rewind prune`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRewrite(cmd.Context(), g, &o, args, time.Now())
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&o.excludes, "exclude", "e", nil, "remove entries matching `pattern` (repeatable)")
	f.StringArrayVar(&o.excludeFile, "exclude-file", nil, "read patterns from `file`, one per line (repeatable)")
	f.BoolVar(&o.forget, "forget", false, "remove each original snapshot once its rewrite is saved")
	f.BoolVarP(&o.dryRun, "dry-run", "n", false, "only show what would be removed")
	return cmd
}

func runRewrite(ctx context.Context, g *globals, o *rewriteOptions, args []string, now time.Time) error {
	if len(args) == 0 {
		return errors.New("name the snapshots to rewrite (IDs, prefixes or \"latest\")")
	}
	patterns := o.excludes
	for _, file := range o.excludeFile {
		ps, err := filter.ReadPatternFile(file)
		if err != nil {
			return err
		}
		patterns = append(patterns, ps...)
	}
	var applied []string
	for _, p := range patterns {
		if p = strings.TrimSpace(p); p != "" && !strings.HasPrefix(p, "#") {
			applied = append(applied, p)
		}
	}
	if len(applied) == 0 {
		return errors.New("nothing to remove: give --exclude PATTERN or --exclude-file FILE")
	}
	m, err := filter.NewMatcher(applied)
	if err != nil {
		return err
	}

	r, done, err := g.openLocked(ctx, lock.Shared, "rewrite", true)
	if err != nil {
		return err
	}
	defer done()
	sns, err := g.listSnapshots(ctx, r)
	if err != nil {
		return err
	}
	selected, err := resolveSnapshots(sns, args, snapshot.Filter{})
	if err != nil {
		return err
	}

	// A first pass computes what changes without writing, so that a
	// guarded snapshot is refused before anything is stored.
	dry := &snapshot.TreeRewriter{R: r, Match: m.Match}
	var jobs []*rewriteJob
	var change []*snapshot.Snapshot
	for _, sn := range selected {
		_, ex, changed, err := dry.Rewrite(ctx, sn)
		if err != nil {
			return err
		}
		jb := &rewriteJob{sn: sn, ex: ex, j: RewriteJSON{From: sn.ID.String(), Changed: changed, RemovedPaths: ex.Paths,
			FilesRemoved: ex.Files, DirsRemoved: ex.Dirs, OtherRemoved: ex.Other, BytesRemoved: ex.Bytes}}
		if jb.j.RemovedPaths == nil {
			jb.j.RemovedPaths = []string{}
		}
		jobs = append(jobs, jb)
		if changed {
			change = append(change, sn)
		}
	}
	if o.forget {
		guard, err := g.loadGuard(ctx, r)
		if err != nil {
			return err
		}
		if err := guard.Refuse(change, now, "rewrite and forget", "nothing was written or removed"); err != nil {
			return err
		}
	}

	var failed []error
	if !o.dryRun && len(change) > 0 {
		w := &snapshot.TreeRewriter{R: r, Match: m.Match, Store: true}
		roots := map[*rewriteJob][]id.ID{}
		var last *snapshot.Snapshot
		r.StartWriting(ctx)
		for _, jb := range jobs {
			if !jb.j.Changed {
				continue
			}
			root, _, _, err := w.Rewrite(ctx, jb.sn)
			if err != nil {
				_ = r.Flush(ctx)
				return err
			}
			roots[jb] = root
		}
		if err := r.Flush(ctx); err != nil {
			return fmt.Errorf("store the rewritten trees: %w", err)
		}
		for _, jb := range jobs {
			if !jb.j.Changed {
				continue
			}
			ns := snapshot.Rewritten(jb.sn, roots[jb], jb.ex, applied, "rewind "+Version, now)
			if o.forget {
				err = snapshot.Replace(ctx, r, jb.sn, ns)
			} else {
				err = snapshot.Save(ctx, r, ns)
			}
			if err != nil {
				failed = append(failed, err)
				g.ui.Warnf("%v\n", err)
				jb.j.Changed = false
				continue
			}
			jb.j.ID, jb.j.ShortID, jb.j.Forgotten = ns.ID.String(), ns.ID.Short(), o.forget
			last = ns
		}
		if last != nil {
			if err := g.extendAfterBackup(ctx, r, last); err != nil {
				failed = append(failed, err)
				g.ui.Warnf("%v\n", err)
			}
		}
	}

	out := []RewriteJSON{}
	for _, jb := range jobs {
		out = append(out, jb.j)
	}
	if g.json {
		if err := g.ui.JSONDoc(out); err != nil {
			return err
		}
	} else {
		printRewrite(g, jobs, o)
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %s could not be rewritten", len(failed), nSnapshots(len(change)))
	}
	return nil
}

// rewriteJob is one snapshot named to rewrite.
type rewriteJob struct {
	sn *snapshot.Snapshot
	ex snapshot.Excluded
	j  RewriteJSON
}

func printRewrite(g *globals, jobs []*rewriteJob, o *rewriteOptions) {
	changed := 0
	for _, jb := range jobs {
		j := jb.j
		if len(j.RemovedPaths) == 0 {
			g.ui.Printf("%s  nothing matches\n", j.From[:8])
			continue
		}
		what := fmt.Sprintf("%s, %s, %s", plural(int(j.FilesRemoved), "file", "files"), plural(int(j.DirsRemoved), "directory", "directories"), ui.Bytes(j.BytesRemoved))
		switch {
		case o.dryRun:
			g.ui.Printf("%s  would remove %s:\n", j.From[:8], what)
		case !j.Changed:
			g.ui.Printf("%s  not rewritten\n", j.From[:8])
			continue
		case j.Forgotten:
			g.ui.Printf("%s -> %s (original removed)  removed %s:\n", j.From[:8], j.ShortID, what)
		default:
			g.ui.Printf("%s -> %s  removed %s:\n", j.From[:8], j.ShortID, what)
		}
		for _, p := range j.RemovedPaths {
			g.ui.Printf("  %s\n", p)
		}
		changed++
	}
	switch {
	case o.dryRun:
		g.ui.Printf("dry run: would rewrite %s, wrote nothing\n", nSnapshots(changed))
	case changed == 0:
		g.ui.Printf("nothing to rewrite\n")
	case o.forget:
		originals := "the originals"
		if changed == 1 {
			originals = "the original"
		}
		g.ui.Printf("rewrote %s and removed %s; the content of the removed files stays in the repository until `rewind prune`\n", nSnapshots(changed), originals)
	default:
		g.ui.Printf("rewrote %s; the originals are kept and still hold the removed paths (rewrite --forget, or forget, then prune, to have them gone)\n", nSnapshots(changed))
	}
}
