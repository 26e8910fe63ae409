package cli

import (
	"fmt"
	"os"
	"time"

	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/restorer"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/ui"
	"github.com/spf13/cobra"
)

type restoreOpts struct {
	target    string
	include   []string
	exclude   []string
	verify    bool
	overwrite bool
	delete    bool
	dryRun    bool
	at        string
	device    string
	image     string
	snapFilter
}

func newRestoreCmd(g *globals) *cobra.Command {
	o := &restoreOpts{}
	cmd := &cobra.Command{
		Use:   "restore {SNAPSHOT[:PATH] | --at TIME [PATH]} --target DIR | SNAPSHOT {--device DEV | --image FILE}",
		Short: "Restore a snapshot, or part of it, into a directory",
		Long: `Restore a snapshot into --target with all metadata: modes, owners (as root),
times, extended attributes and ACLs, hard links, holes of sparse files,
devices and FIFOs. With SNAPSHOT:PATH only that directory's contents (or that
file) are restored.

SNAPSHOT is an ID, a unique ID prefix, or "latest" (optionally narrowed with
--host, --tag and --path). Restore refuses a non-empty target unless
--overwrite is given, and then rewrites only the files that differ and
replaces entries of another type (a file where the snapshot has a directory,
a directory where it has a file or a symlink); --delete also removes what
the snapshot does not have, so that the target ends up exactly as the
snapshot (excluded paths, sockets and other filesystems are left alone).
Nothing is ever written or removed outside the target, whatever the
snapshot holds.

With --dry-run (-n), nothing in the target changes: restore says what it
would write, rewrite, leave as it is and remove, through the same decisions
as a real restore (an existing file is compared with the snapshot chunk by
chunk, read-only). -v lists each entry: "+ path" new, "M path" rewritten,
"- path" removed, "! path" not backed up, and with -vv "= path" already up
to date; --json prints one "dry_run" line per entry.

A target that does not exist yet becomes the restored directory, with its
mode, owner, times, extended attributes and ACLs.

Files the backup could not read are not restored (their content is
unknown): they are named, what is at their paths is left alone, and the
exit status is 3.

With --at TIME instead of SNAPSHOT, restore PATH (a path on this machine)
as it was at TIME: from the newest snapshot of this host (or --host) that
covers PATH whose capture had ended by TIME. Without PATH, every path the
host backed up comes back as it was at TIME, each from its own newest such
snapshot, at its absolute place below --target. TIME is RFC 3339,
"2026-11-22 10:31:05" in local time, relative as -15m, or a label made with
rewind mark (see docs/CONTINUOUS.md).

With --device DEV or --image FILE instead of --target, a snapshot made by
backup --device or --image is written whole: onto a block device that is
not mounted nor held and at least as large (holes are zeroed), or into a
new image file (holes stay holes). --verify reads it back (docs/IMAGES.md).`,
		Example: `  rewind restore latest --target /tmp/restore
  rewind restore 4f2a91c3:/etc/nginx --target /etc/nginx --overwrite
  rewind restore latest --target /srv --include '/var/www/**' --verify
  rewind restore latest:/srv/www --target /srv/www --overwrite --delete
  rewind restore latest:/srv/www --target /srv/www --delete --dry-run -v
  rewind restore --at -15m /srv/app/config.yml --target /tmp/then
  rewind restore --at "before nginx upgrade" /etc/nginx --target /tmp/nginx
  rewind restore --at "2026-11-22 03:00" --target /mnt/rebuild
  rewind restore latest --tag device --device /dev/sdb --verify
  rewind restore 4f2a91c3 --image /var/tmp/web1.img`,
		Args: cobra.RangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if o.device != "" || o.image != "" {
				return runRestoreImage(cmd, g, o, args)
			}
			if o.target == "" {
				return fmt.Errorf("--target is required")
			}
			if o.at == "" && len(args) != 1 {
				return fmt.Errorf("name the SNAPSHOT[:PATH] to restore, or give --at TIME [PATH]")
			}
			ropt := o.restorerOptions(g)
			if o.at != "" && len(args) == 0 {
				return g.restoreEverythingAt(ctx, o.at, o.snapFilter, ropt)
			}
			open := func() (*repository.Repository, *snapshot.Snapshot, string, func(), error) {
				if o.at != "" {
					return g.openAt(ctx, "restore", o.at, args, o.snapFilter)
				}
				return g.openSnapshot(ctx, "restore", args[0], o.filter())
			}
			r, sn, p, done, err := open()
			if err != nil {
				return err
			}
			defer done()
			c := &ui.Counter{}
			if sn.Summary != nil {
				c.TotalBytes.Store(sn.Summary.TotalBytes)
				c.TotalFiles.Store(sn.Summary.TotalFiles)
			}
			ropt.Progress = countInto(c)
			rs, err := restorer.New(r, ropt)
			if err != nil {
				return err
			}
			prog := g.ui.StartProgress("restore", c)
			st, err := rs.Restore(ctx, sn, p)
			prog.Stop()
			if st != nil {
				printRestoreSummary(g, sn, "", st)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.target, "target", "t", "", "restore into `dir` (required)")
	f.StringArrayVarP(&o.include, "include", "i", nil, "restore only paths matching `pattern` (repeatable)")
	f.StringArrayVarP(&o.exclude, "exclude", "e", nil, "skip paths matching `pattern` (repeatable)")
	f.BoolVar(&o.verify, "verify", false, "re-read every restored file and check it against the snapshot")
	f.BoolVar(&o.overwrite, "overwrite", false, "write into a non-empty target, rewriting only files that differ and replacing entries of another type")
	f.BoolVar(&o.delete, "delete", false, "also remove what the target holds that the snapshot does not (implies --overwrite)")
	f.BoolVarP(&o.dryRun, "dry-run", "n", false, "change nothing: say what would be written, rewritten and removed (-v lists each entry)")
	f.StringVar(&o.at, "at", "", "restore PATH as it was at this "+atUsage)
	f.StringVar(&o.device, "device", "", "write a device or image snapshot onto the block `device` (not mounted, at least as large)")
	f.StringVar(&o.image, "image", "", "write a device or image snapshot into the new sparse image `file`")
	o.snapFilter.add(cmd)
	return cmd
}

// restorerOptions are the restorer's options for the flags.
func (o *restoreOpts) restorerOptions(g *globals) restorer.Options {
	return restorer.Options{
		Target: o.target, Include: o.include, Exclude: o.exclude,
		Overwrite: o.overwrite || o.delete, Delete: o.delete, Verify: o.verify, Owner: os.Geteuid() == 0,
		Logger: g.log, DryRun: o.dryRun, Plan: g.printPlanned(o.dryRun),
	}
}

// countInto is a restorer Progress function that counts into c.
func countInto(c *ui.Counter) func(files, bytes int64) {
	return func(files, bytes int64) {
		c.Files.Add(files)
		c.Bytes.Add(bytes)
	}
}

// RestoreSummary is the JSON line printed by `restore --json`.
type RestoreSummary struct {
	MessageType string `json:"message_type"`
	SnapshotID  string `json:"snapshot_id"`
	// Path is the path restored from the snapshot, when a restore --at
	// without PATH assembles several.
	Path string `json:"path,omitempty"`
	*restorer.Stats
	Backend *backendSummary `json:"backend,omitempty"`
}

// PlannedLine is one JSON line of `restore --dry-run --json`.
type PlannedLine struct {
	MessageType string `json:"message_type"`
	restorer.Planned
}

// plannedMarks are the marks of `restore --dry-run -v`, by action.
var plannedMarks = map[string]string{
	restorer.ActNew: "+", restorer.ActRewrite: "M", restorer.ActUnchanged: "=",
	restorer.ActRemove: "-", restorer.ActNotBackedUp: "!",
}

// printPlanned returns what prints each decision of a dry run: a JSON
// line with --json, or with -v one line, marked as plannedMarks has it
// (entries already up to date only with -vv). It is nil for a restore.
func (g *globals) printPlanned(dryRun bool) func(restorer.Planned) {
	if !dryRun || !g.json && (g.quiet || g.verbose == 0) {
		return nil
	}
	return func(p restorer.Planned) {
		if g.json {
			g.ui.JSONLine(PlannedLine{MessageType: "dry_run", Planned: p})
			return
		}
		if p.Action == restorer.ActUnchanged && g.verbose < 2 {
			return
		}
		line := plannedMarks[p.Action] + " " + p.Path
		if p.LinkTo != "" {
			line += " (hard link)"
		}
		g.ui.Printf("%s\n", line)
	}
}

// printRestoreSummary prints what a restore from sn did; part is the path
// it restored when a restore is made of several ("" otherwise).
func printRestoreSummary(g *globals, sn *snapshot.Snapshot, part string, st *restorer.Stats) {
	if g.json {
		g.ui.JSONLine(RestoreSummary{MessageType: "summary", SnapshotID: sn.ID.String(), Path: part, Stats: st, Backend: g.backendStats()})
		return
	}
	for _, e := range st.Errors {
		g.ui.Warnf("error: %s: %s\n", e.Path, e.Error)
	}
	for _, e := range st.NotBackedUp {
		g.ui.Warnf("not restored: %s: %s\n", e.Path, e.Error)
	}
	for _, e := range st.Warnings {
		g.ui.Warnf("warning: %s: %s\n", e.Path, e.Error)
	}
	if !g.quiet {
		if part != "" {
			g.ui.Printf("%s: ", part)
		}
		verb := "restored"
		if st.DryRun {
			verb = "dry run: would restore"
		}
		g.ui.Printf("%s %s (%s), %s, %s from snapshot %s",
			verb, ui.Count(int64(st.Files), "file", "files"), ui.Bytes(st.Bytes), ui.Count(int64(st.Dirs), "directory", "directories"),
			ui.Count(int64(st.Other), "other entry", "other entries"), sn.ID.Short())
		if st.FilesSkipped > 0 {
			g.ui.Printf("; %s already up to date", ui.Count(int64(st.FilesSkipped), "file", "files"))
		}
		if st.Removed > 0 && st.DryRun {
			g.ui.Printf("; would remove %s", ui.Count(st.Removed, "entry", "entries"))
		} else if st.Removed > 0 {
			g.ui.Printf("; %s removed", ui.Count(st.Removed, "entry", "entries"))
		}
		if st.Verified > 0 {
			g.ui.Printf("; %s verified", ui.Count(int64(st.Verified), "file", "files"))
		}
		took := time.Duration(st.DurationSeconds * float64(time.Second)).Round(time.Millisecond)
		if st.DryRun {
			g.ui.Printf(" (looked in %s)\n", took)
		} else {
			g.ui.Printf(" in %s (%s/s)\n", took, ui.Bytes(int64(st.BytesPerSecond)))
		}
	}
}
