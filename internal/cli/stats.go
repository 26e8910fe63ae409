package cli

import (
	"context"
	"fmt"

	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/ui"
	"github.com/spf13/cobra"
)

// StatsJSON is the document of `stats --json` (docs/JSON.md). Each part
// is present when --mode asks for it, all three without --mode.
type StatsJSON struct {
	SnapshotsCount  int                `json:"snapshots_count"`
	RestoreSize     *StatsRestoreJSON  `json:"restore_size,omitempty"`
	FilesByContents *StatsContentsJSON `json:"files_by_contents,omitempty"`
	RawData         *StatsRawDataJSON  `json:"raw_data,omitempty"`
}

// StatsRestoreJSON is what restoring the snapshots would write.
type StatsRestoreJSON struct {
	Files       int64 `json:"files"`
	Dirs        int64 `json:"dirs"`
	Other       int64 `json:"other"`
	Bytes       int64 `json:"bytes"`
	NotBackedUp int64 `json:"not_backed_up"`
}

// StatsContentsJSON counts distinct file contents.
type StatsContentsJSON struct {
	Contents int64 `json:"contents"`
	Bytes    int64 `json:"bytes"`
}

// StatsRawDataJSON is what the repository stores for the snapshots.
type StatsRawDataJSON struct {
	Blobs            int64   `json:"blobs"`
	DataBlobs        int64   `json:"data_blobs"`
	TreeBlobs        int64   `json:"tree_blobs"`
	PlainBytes       int64   `json:"plain_bytes"`
	PackedBytes      int64   `json:"packed_bytes"`
	MissingBlobs     int64   `json:"missing_blobs"`
	CompressionRatio float64 `json:"compression_ratio"`
	DedupRatio       float64 `json:"dedup_ratio"`
}

func newStatsCmd(g *globals) *cobra.Command {
	var sf snapFilter
	var mode string
	cmd := &cobra.Command{
		Use:   "stats [SNAPSHOT...] [--mode restore-size|raw-data|files-by-contents]",
		Short: "Show what snapshots hold and what the repository stores for them",
		Long: `Show statistics for the snapshots named (IDs, unique ID prefixes or
"latest"), or for every snapshot that passes --host, --tag and --path.

  restore-size       what restoring each snapshot would write, summed over
                     them: files, directories, other entries and bytes.
                     Files the backup could not read have no content: they
                     are counted apart ("not backed up") and add no bytes.
                     A hard-linked file adds its bytes once per snapshot.
  files-by-contents  distinct file contents among those files, and their
                     bytes: files with the same content count once.
  raw-data           the distinct blobs the snapshots reference, their
                     plain size and what they take in packs (compressed
                     and encrypted); the compression ratio (plain / packed)
                     and the dedup ratio (restore bytes / plain data bytes).

Without --mode all three are shown.`,
		Example: `  rewind stats
  rewind stats latest --mode restore-size
  rewind stats --host web1 --mode raw-data --json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runStats(cmd.Context(), g, args, sf.filter(), mode)
		},
	}
	cmd.Flags().StringVar(&mode, "mode", "", "show only this `part`: restore-size, raw-data or files-by-contents")
	sf.add(cmd)
	return cmd
}

func runStats(ctx context.Context, g *globals, args []string, f snapshot.Filter, mode string) error {
	switch mode {
	case "", "restore-size", "raw-data", "files-by-contents":
	default:
		return fmt.Errorf("--mode %q: give restore-size, raw-data or files-by-contents", mode)
	}
	r, done, err := g.openLocked(ctx, lock.Shared, "stats", true)
	if err != nil {
		return err
	}
	defer done()
	sns, err := g.listSnapshots(ctx, r)
	if err != nil {
		return err
	}
	var selected []*snapshot.Snapshot
	if len(args) > 0 {
		if selected, err = resolveSnapshots(sns, args, f); err != nil {
			return err
		}
	} else {
		for _, sn := range sns {
			if f.Match(sn) {
				selected = append(selected, sn)
			}
		}
	}
	st, err := snapshot.ComputeStats(ctx, r, selected)
	if err != nil {
		return err
	}
	out := StatsJSON{SnapshotsCount: st.Snapshots}
	if mode == "" || mode == "restore-size" {
		out.RestoreSize = &StatsRestoreJSON{Files: st.Files, Dirs: st.Dirs, Other: st.Other, Bytes: st.RestoreBytes, NotBackedUp: st.NotBackedUp}
	}
	if mode == "" || mode == "files-by-contents" {
		out.FilesByContents = &StatsContentsJSON{Contents: st.UniqueContents, Bytes: st.UniqueContentBytes}
	}
	if mode == "" || mode == "raw-data" {
		rd := &StatsRawDataJSON{Blobs: st.DataBlobs + st.TreeBlobs, DataBlobs: st.DataBlobs, TreeBlobs: st.TreeBlobs,
			PlainBytes: st.DataPlain + st.TreePlain, PackedBytes: st.DataPacked + st.TreePacked, MissingBlobs: st.Missing}
		if rd.PackedBytes > 0 {
			rd.CompressionRatio = float64(rd.PlainBytes) / float64(rd.PackedBytes)
		}
		if st.DataPlain > 0 {
			rd.DedupRatio = float64(st.RestoreBytes) / float64(st.DataPlain)
		}
		out.RawData = rd
	}
	if g.json {
		return g.ui.JSONDoc(out)
	}
	printStats(g, &out)
	if st.Missing > 0 {
		g.ui.Warnf("%s that the snapshots reference not in the index: run `rewind check`\n", ui.Count(st.Missing, "blob", "blobs"))
	}
	return nil
}

func printStats(g *globals, s *StatsJSON) {
	g.ui.Printf("%s\n", nSnapshots(s.SnapshotsCount))
	if rs := s.RestoreSize; rs != nil {
		g.ui.Printf("restore size:\n")
		g.ui.Printf("  %-18s %d\n", "files", rs.Files)
		g.ui.Printf("  %-18s %d\n", "directories", rs.Dirs)
		g.ui.Printf("  %-18s %d\n", "other entries", rs.Other)
		g.ui.Printf("  %-18s %s (%d bytes)\n", "content", ui.Bytes(rs.Bytes), rs.Bytes)
		if rs.NotBackedUp > 0 {
			g.ui.Printf("  not backed up: %s (their content could not be read, so a restore writes none)\n",
				plural(int(rs.NotBackedUp), "file", "files"))
		}
	}
	if fc := s.FilesByContents; fc != nil {
		g.ui.Printf("files by contents:\n")
		g.ui.Printf("  %-18s %d\n", "distinct contents", fc.Contents)
		g.ui.Printf("  %-18s %s (%d bytes)\n", "content", ui.Bytes(fc.Bytes), fc.Bytes)
	}
	if rd := s.RawData; rd != nil {
		g.ui.Printf("raw data:\n")
		g.ui.Printf("  %-18s %d (%d data, %d tree)\n", "blobs", rd.Blobs, rd.DataBlobs, rd.TreeBlobs)
		g.ui.Printf("  %-18s %s (%d bytes)\n", "plain size", ui.Bytes(rd.PlainBytes), rd.PlainBytes)
		g.ui.Printf("  %-18s %s (%d bytes)\n", "stored in packs", ui.Bytes(rd.PackedBytes), rd.PackedBytes)
		g.ui.Printf("  %-18s %.2f\n", "compression ratio", rd.CompressionRatio)
		g.ui.Printf("  %-18s %.2f\n", "dedup ratio", rd.DedupRatio)
	}
}
