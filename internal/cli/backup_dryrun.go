package cli

// backup --dry-run: what a backup would read and add, with nothing
// written to the repository (archiver.Options.DryRun).

import (
	"fmt"
	"time"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/ui"
)

// dryRunFiles returns the archiver's OnFile for a dry run with -v: each
// file that would be new (+) or changed (M), as it is found.
func dryRunFiles(g *globals, o *backupOpts) func(string, bool) {
	if !o.dryRun || g.verbose == 0 || g.quiet {
		return nil
	}
	return func(p string, isNew bool) {
		mod := "M"
		if isNew {
			mod = "+"
		}
		if g.json {
			g.ui.JSONLine(map[string]string{"message_type": "change", "path": p, "modifier": mod})
			return
		}
		g.ui.Printf("%s %s\n", mod, shownPath(p))
	}
}

// DryRunSummary is the last JSON line of `backup --dry-run --json`
// (docs/JSON.md).
type DryRunSummary struct {
	MessageType     string               `json:"message_type"`
	DryRun          bool                 `json:"dry_run"`
	Parent          string               `json:"parent,omitempty"`
	FilesNew        int64                `json:"files_new"`
	FilesChanged    int64                `json:"files_changed"`
	FilesUnchanged  int64                `json:"files_unchanged"`
	DirsNew         int64                `json:"dirs_new"`
	DirsChanged     int64                `json:"dirs_changed"`
	DirsUnchanged   int64                `json:"dirs_unchanged"`
	TotalFiles      int64                `json:"total_files_processed"`
	TotalBytes      int64                `json:"total_bytes_processed"`
	BytesRead       int64                `json:"bytes_read"`
	DataBlobs       int64                `json:"data_blobs"`
	TreeBlobs       int64                `json:"tree_blobs"`
	DataAdded       int64                `json:"data_added"`
	Errors          []snapshot.FileError `json:"errors,omitempty"`
	ErrorCounts     ErrorCounts          `json:"error_counts"`
	DurationSeconds float64              `json:"duration_seconds"`
	FilesVanished   int64                `json:"files_vanished"`
	Skipped         []snapshot.FileError `json:"skipped,omitempty"`
	NotCrossed      []archiver.Boundary  `json:"not_crossed,omitempty"`
	FilesTooLarge   int                  `json:"files_too_large"`
	TooLarge        []archiver.LargeFile `json:"too_large,omitempty"`
}

func printDryRunSummary(g *globals, sn *snapshot.Snapshot, parent *snapshot.Snapshot, a *archiver.Archiver) {
	s := sn.Summary
	dur := s.BackupEnd.Sub(s.BackupStart)
	if g.json {
		out := DryRunSummary{MessageType: "summary", DryRun: true,
			FilesNew: s.FilesNew, FilesChanged: s.FilesChanged, FilesUnchanged: s.FilesUnchanged,
			DirsNew: s.DirsNew, DirsChanged: s.DirsChanged, DirsUnchanged: s.DirsUnchanged,
			TotalFiles: s.TotalFiles, TotalBytes: s.TotalBytes, BytesRead: s.BytesRead,
			DataBlobs: s.DataBlobs, TreeBlobs: s.TreeBlobs, DataAdded: s.DataAdded,
			Errors: s.Errors, ErrorCounts: countErrors(s.Errors), DurationSeconds: dur.Seconds(),
			FilesVanished: a.Vanished(), Skipped: a.Skipped(), NotCrossed: a.NotCrossed(),
			FilesTooLarge: len(a.TooLarge()), TooLarge: a.TooLarge()}
		if parent != nil {
			out.Parent = parent.ID.String()
		}
		g.ui.JSONLine(out)
		return
	}
	if g.quiet {
		return
	}
	printBackupHead(g, a, parent, s, "would be kept")
	g.ui.Printf("Would read %s of %s; would add %s before compression (%s, %s)\n", ui.Bytes(s.BytesRead), ui.Bytes(s.TotalBytes),
		ui.Bytes(s.DataAdded), ui.Count(s.DataBlobs, "data blob", "data blobs"), ui.Count(s.TreeBlobs, "tree blob", "tree blobs"))
	g.ui.Printf("dry run: processed %s in %s; nothing was written to the repository\n", ui.Count(s.TotalFiles, "file", "files"), dur.Round(time.Millisecond))
}

// dryRunResult is the exit of a dry run: 3, as a backup's, when some
// entries could not be read.
func dryRunResult(sn *snapshot.Snapshot) error {
	if len(sn.Summary.Errors) > 0 {
		return withCode(ExitPartial, fmt.Errorf("dry run: %s could not be read (listed above); a backup would record them as not backed up", countErrors(sn.Summary.Errors)))
	}
	return nil
}
