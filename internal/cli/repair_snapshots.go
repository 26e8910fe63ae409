package cli

import (
	"fmt"
	"github.com/rewind-backup/rewind/internal/lock"
	"strings"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/repair"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/ui"
	"github.com/spf13/cobra"
)

// RepairSnapshotJSON is the line `repair snapshots --json` prints for each
// snapshot (docs/JSON.md).
type RepairSnapshotJSON struct {
	MessageType  string            `json:"message_type"`
	SnapshotID   string            `json:"snapshot_id"`
	Status       string            `json:"status"`
	RepairedAs   string            `json:"repaired_as,omitempty"`
	DamageRecord string            `json:"damage_record,omitempty"`
	LostFiles    []repair.LostFile `json:"lost_files,omitempty"`
	LostDirs     []string          `json:"lost_dirs,omitempty"`
	LostBlobs    int               `json:"lost_blobs"`
	Forgotten    bool              `json:"forgotten"`
	Error        string            `json:"error,omitempty"`
}

// RepairSnapshotsSummary is the last line of `repair snapshots --json`.
type RepairSnapshotsSummary struct {
	MessageType     string   `json:"message_type"`
	Snapshots       int      `json:"snapshots"`
	Intact          int      `json:"intact"`
	Repaired        int      `json:"repaired"`
	AlreadyRepaired int      `json:"already_repaired"`
	Damaged         int      `json:"damaged"`
	Failed          int      `json:"failed"`
	DryRun          bool     `json:"dry_run"`
	MissingPacks    []string `json:"missing_packs,omitempty"`
	Unreadable      int      `json:"unreadable"`
}

type repairSnapshotsOpts struct {
	readData bool
	dryRun   bool
	forget   bool
	filter   snapFilter
}

func newRepairSnapshotsCmd(g *globals) *cobra.Command {
	var o repairSnapshotsOpts
	cmd := &cobra.Command{
		Use:   "snapshots [SNAPSHOT...]",
		Short: "Save what is intact of snapshots that reference lost data",
		Long: `Find the snapshots that reference lost data and write, for each, a new
snapshot that keeps everything still intact. Without arguments every
snapshot (that passes --host, --tag and --path) is examined.

A blob is lost when the index does not list it or its pack is missing, and,
with --read-data, when its stored bytes fail verification (every pack is
read in full, as check --read-data does). Directory listings are always
read and verified. A file whose content is lost is left out of the new
snapshot and named; a directory whose listing is lost is kept, with its
metadata, as an empty directory and named. Everything else is kept as it
was, and directories with nothing lost below them are not rewritten.

The new snapshot has the damaged one's time, host, paths and tags, the tag
"repaired", and "original" naming the damaged snapshot. The damaged snapshot
is kept as it is and marked by a damage record, which names every loss;
check goes on reporting its missing data and says it has been repaired.
Running the command again does not repair a snapshot twice. With --forget the
damaged snapshot is removed once its replacement and record are stored.

A snapshot file that cannot be read at all (it does not verify or decode)
is reported as unreadable: nothing of it can be kept, a damage record says
why, and --forget (or rewind forget ID) removes the file. Filters never
select such a snapshot, since its host, tags and paths are unknown; name it.

If packs are missing, run "rewind repair index" first: otherwise later
backups take the lost blobs for stored and do not store them again.

Exit status is 0 when every damaged snapshot was repaired (the report names
what was lost), 1 when one could not be.`,
		Example: `  rewind repair snapshots --dry-run
  rewind repair snapshots
  rewind repair snapshots --read-data --json
  rewind repair snapshots 4f2a91c3 --forget`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRepairSnapshots(cmd, g, &o, args)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.readData, "read-data", false, "read every pack in full and count blobs that fail verification as lost")
	f.BoolVarP(&o.dryRun, "dry-run", "n", false, "only report what is lost; write nothing")
	f.BoolVar(&o.forget, "forget", false, "remove each damaged snapshot once its repaired snapshot and damage record are stored")
	o.filter.add(cmd)
	return cmd
}

func runRepairSnapshots(cmd *cobra.Command, g *globals, o *repairSnapshotsOpts, args []string) error {
	ctx := cmd.Context()
	if o.dryRun && o.forget {
		return fmt.Errorf("--dry-run and --forget cannot be combined")
	}
	kind := lock.Exclusive
	if o.dryRun {
		kind = lock.Shared
	}
	r, done, err := g.openLocked(ctx, kind, "repair snapshots", true)
	if err != nil {
		return err
	}
	defer done()
	sns, bad, err := repair.ListSnapshots(ctx, r)
	if err != nil {
		return err
	}
	f := o.filter.filter()
	var selected []*snapshot.Snapshot
	var unreadable []repair.UnreadableSnapshot
	if len(args) > 0 {
		if args, unreadable, err = splitUnreadable(sns, bad, args); err != nil {
			return err
		}
		if len(args) > 0 {
			if selected, err = resolveSnapshots(sns, args, f); err != nil {
				return err
			}
		}
	} else {
		for _, sn := range sns {
			if f.Match(sn) {
				selected = append(selected, sn)
			}
		}
		// An unreadable snapshot's host, tags and paths are unknown: a
		// filter cannot select it, naming it can.
		if len(f.Hosts)+len(f.Tags)+len(f.Paths) == 0 {
			unreadable = bad
		} else if len(bad) > 0 {
			g.ui.Warnf("warning: %s cannot be read and %s left alone with --host, --tag or --path; name %s to record %s\n", ui.Count(int64(len(bad)), "snapshot file", "snapshot files"),
				ui.Verb(int64(len(bad)), "is", "are"), ui.Verb(int64(len(bad)), "it", "them"), ui.Verb(int64(len(bad)), "it", "them"))
		}
	}
	ropt := repair.Options{ReadData: o.readData, DryRun: o.dryRun, Forget: o.forget, ProgramVersion: "rewind " + Version}
	var res *repair.Result
	if len(selected) > 0 || len(unreadable) == 0 {
		res, err = repair.Snapshots(ctx, r, selected, ropt)
	} else {
		res = &repair.Result{}
	}
	if err == nil && res != nil {
		var warnings []string
		res.Unreadable, warnings, err = repair.RecordUnreadable(ctx, r, unreadable, ropt)
		if len(selected) == 0 {
			res.Warnings = append(res.Warnings, warnings...)
		}
	}
	if res != nil {
		for _, w := range res.Warnings {
			g.ui.Warnf("warning: %s\n", w)
		}
		printRepairSnapshots(g, res, o.dryRun)
	}
	if err != nil {
		return err
	}
	failed := 0
	for _, sr := range res.Snapshots {
		if sr.Status == repair.Failed {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%s could not be repaired (see above)", ui.Count(int64(failed), "damaged snapshot", "damaged snapshots"))
	}
	return nil
}

func printRepairSnapshots(g *globals, res *repair.Result, dryRun bool) {
	sum := RepairSnapshotsSummary{MessageType: "summary", Snapshots: len(res.Snapshots), DryRun: dryRun}
	for _, p := range res.MissingPacks {
		sum.MissingPacks = append(sum.MissingPacks, p.String())
	}
	for _, sr := range res.Snapshots {
		switch sr.Status {
		case repair.Intact:
			sum.Intact++
		case repair.Repaired:
			sum.Repaired++
		case repair.AlreadyRepaired:
			sum.AlreadyRepaired++
		case repair.Damaged:
			sum.Damaged++
		case repair.Failed:
			sum.Failed++
		}
		if g.json {
			g.ui.JSONLine(repairSnapshotJSON(&sr))
		} else {
			printRepairedSnapshot(g, &sr, dryRun)
		}
	}
	for _, u := range res.Unreadable {
		sum.Snapshots++
		sum.Unreadable++
		if g.json {
			g.ui.JSONLine(RepairSnapshotJSON{MessageType: "snapshot", SnapshotID: u.Snapshot.String(), Status: string(repair.Unreadable),
				DamageRecord: idString(u.Record), Forgotten: u.Forgotten, Error: u.Err.Error()})
		} else {
			printUnreadableSnapshot(g, &u, dryRun)
		}
	}
	if g.json {
		g.ui.JSONLine(sum)
		return
	}
	if n := len(res.MissingPacks); n > 0 {
		g.ui.Printf("note: the index lists %s missing from the repository; run `rewind repair index`\n"+
			"      so that the next backup stores their data again instead of counting on it\n", ui.Count(int64(n), "pack that is", "packs that are"))
	}
	g.ui.Printf("%s: %d intact", ui.Count(int64(sum.Snapshots), "snapshot", "snapshots"), sum.Intact)
	if dryRun {
		g.ui.Printf(", %d damaged", sum.Damaged)
	} else {
		g.ui.Printf(", %d repaired", sum.Repaired)
	}
	if sum.AlreadyRepaired > 0 {
		g.ui.Printf(", %d repaired before", sum.AlreadyRepaired)
	}
	if sum.Failed > 0 {
		g.ui.Printf(", %d could not be repaired", sum.Failed)
	}
	if sum.Unreadable > 0 {
		g.ui.Printf(", %d unreadable", sum.Unreadable)
	}
	g.ui.Printf("\n")
	if dryRun && sum.Damaged > 0 {
		g.ui.Printf("dry run: nothing was written\n")
	}
}

func repairSnapshotJSON(sr *repair.SnapshotResult) RepairSnapshotJSON {
	j := RepairSnapshotJSON{
		MessageType: "snapshot", SnapshotID: sr.Snapshot.ID.String(), Status: string(sr.Status),
		RepairedAs: idString(sr.RepairedAs), DamageRecord: idString(sr.Record),
		LostFiles: sr.LostFiles, LostDirs: sr.LostDirs, LostBlobs: sr.LostBlobs, Forgotten: sr.Forgotten,
	}
	if sr.Err != nil {
		j.Error = sr.Err.Error()
	}
	return j
}

func idString(i *id.ID) string {
	if i == nil {
		return ""
	}
	return i.String()
}

// printRepairedSnapshot says in plain words what happened to one snapshot,
// naming every lost file and directory.
func printRepairedSnapshot(g *globals, sr *repair.SnapshotResult, dryRun bool) {
	sn := sr.Snapshot
	g.ui.Printf("snapshot %s of %s (%s: %s): ", sn.ID.Short(), sn.Time.Local().Format("2006-01-02 15:04:05"),
		sn.Hostname, strings.Join(sn.Paths, " "))
	switch sr.Status {
	case repair.Intact:
		g.ui.Printf("intact\n")
		return
	case repair.AlreadyRepaired:
		if sr.RepairedAs != nil {
			g.ui.Printf("repaired before, as %s", sr.RepairedAs.Short())
		} else {
			g.ui.Printf("repaired before; nothing of it could be kept")
		}
		g.ui.Printf(" (on %s: %s and %s lost)\n", sr.RecordTime.Local().Format(timeFormat),
			ui.Count(int64(len(sr.LostFiles)), "file", "files"), ui.Count(int64(len(sr.LostDirs)), "directory", "directories"))
		if sr.Forgotten {
			g.ui.Printf("  the damaged snapshot was removed (--forget); its damage record stays\n")
		}
		return
	case repair.Failed:
		g.ui.Printf("damaged, and could not be repaired: %v\n", sr.Err)
		return
	case repair.Damaged:
		if dryRun {
			g.ui.Printf("damaged; a repair would leave out what is lost:\n")
		} else {
			g.ui.Printf("damaged, not repaired (the repair stopped first); lost:\n")
		}
	case repair.Repaired:
		if sr.RepairedAs != nil {
			g.ui.Printf("damaged, repaired as %s:\n", sr.RepairedAs.Short())
		} else {
			g.ui.Printf("damaged, and nothing of it could be kept:\n")
		}
	}
	for _, f := range sr.LostFiles {
		g.ui.Printf("  lost file       %s (%s)\n", f.Path, ui.Bytes(int64(f.Size)))
	}
	for _, d := range sr.LostDirs {
		g.ui.Printf("  lost directory  %s (contents lost)\n", d)
	}
	g.ui.Printf("  %s lost", ui.Count(int64(sr.LostBlobs), "blob", "blobs"))
	if sr.Record != nil {
		g.ui.Printf("; damage record %s", sr.Record.Short())
	}
	switch {
	case sr.Forgotten:
		g.ui.Printf("; the damaged snapshot was removed (--forget)")
	case sr.Status == repair.Repaired:
		g.ui.Printf("; the damaged snapshot is kept as it was")
	}
	g.ui.Printf("\n")
}

// printUnreadableSnapshot says what happened to a snapshot file that
// cannot be read.
func printUnreadableSnapshot(g *globals, u *repair.UnreadableResult, dryRun bool) {
	g.ui.Printf("snapshot %s: the file cannot be read (%v); nothing of it can be kept\n", u.Snapshot.Short(), u.Err)
	switch {
	case u.Before:
		g.ui.Printf("  recorded before, damage record %s", u.Record.Short())
	case u.Record != nil:
		g.ui.Printf("  damage record %s", u.Record.Short())
	case dryRun:
		g.ui.Printf("  a repair would store a damage record for it")
	}
	switch {
	case u.Forgotten:
		g.ui.Printf("; the file was removed (--forget)\n")
	case dryRun:
		g.ui.Printf("\n")
	default:
		g.ui.Printf("; remove the file with `rewind forget %s` or `repair snapshots --forget`\n", u.Snapshot.Short())
	}
}
