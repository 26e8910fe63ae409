package cli

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/prune"
	"github.com/rewind-backup/rewind/internal/repair"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/ui"
	"github.com/spf13/cobra"
)

// PruneSummaryJSON is the `prune --json` summary (docs/JSON.md).
type PruneSummaryJSON struct {
	MessageType string `json:"message_type"`
	*prune.Result
	// WAL is what the WAL retention step did, per cluster (rewind pg
	// wal-push archives).
	WAL []PruneWALJSON `json:"wal,omitempty"`
	// Binlog is what the binary log retention step did, per source
	// (rewind mysql binlog receive).
	Binlog  []PruneBinlogJSON `json:"binlog,omitempty"`
	Backend *backendSummary   `json:"backend,omitempty"`
}

// pruneOptions are the flags of `rewind prune`.
type pruneOptions struct {
	dryRun     bool
	maxUnused  string
	maxRepack  string
	unusedFrac float64
	repackMax  int64
}

func (o *pruneOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.maxUnused, "max-unused", "5%", "tolerate this much unused data in kept packs (`percent` of the repository, e.g. 5%, 0%)")
	f.StringVar(&o.maxRepack, "max-repack-size", "", "copy at most this much live data while repacking (`size`, e.g. 500M, 2G)")
}

func (o *pruneOptions) parse() error {
	s := strings.TrimSuffix(strings.TrimSpace(o.maxUnused), "%")
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || v > 100 {
		return fmt.Errorf("--max-unused %q: want a percentage from 0%% to 100%%", o.maxUnused)
	}
	o.unusedFrac = v / 100
	if o.maxRepack != "" {
		if o.repackMax, err = parseSize(o.maxRepack); err != nil || o.repackMax <= 0 {
			return fmt.Errorf("--max-repack-size %q: want a size such as 500M or 2G", o.maxRepack)
		}
	}
	return nil
}

// parseSize reads a byte count with an optional K, M, G or T suffix
// (powers of 1024, an optional trailing "B" or "iB").
func parseSize(s string) (int64, error) {
	s = strings.ToUpper(strings.TrimSpace(s))
	s = strings.TrimSuffix(strings.TrimSuffix(s, "B"), "I")
	mult := int64(1)
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			s = s[:n-1]
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	return int64(v * float64(mult)), nil
}

func newPruneCmd(g *globals) *cobra.Command {
	var o pruneOptions
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Delete data that no snapshot references",
		Long: `Delete the data that no snapshot references any more (after forget), and
repack packs that are mostly unused.

prune never blocks a backup and never breaks one: backups, restores and
checks keep running on this and other hosts while it works. It works in two
phases. The first condemns the packs that hold nothing in use (copying the
live part of mostly-unused packs into new packs first) and takes them out
of the index; the condemned packs are deleted once every rewind process
that held a lock at that moment has finished. If none was running, that is
at the end of the same prune; otherwise the next prune deletes them. A
backup that still used condemned data keeps it: the next prune puts such
packs back into the index instead of deleting them. docs/FORMAT.md §12
specifies the protocol and why it is safe.

Only one prune runs at a time (exit code 11 if another holds the prune
lock). A snapshot that cannot be read, or an index that lists missing
packs, stops prune before it changes anything: run check and repair first.`,
		Example: `  rewind prune --dry-run
  rewind prune
  rewind prune --max-unused 0% --max-repack-size 2G
  rewind prune --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.parse(); err != nil {
				return err
			}
			return runPrune(cmd.Context(), g, &o)
		},
	}
	cmd.Flags().BoolVarP(&o.dryRun, "dry-run", "n", false, "only report what would be repacked and deleted")
	o.addFlags(cmd)
	return cmd
}

func runPrune(ctx context.Context, g *globals, o *pruneOptions) error {
	r, done, err := g.openLocked(ctx, lock.Prune, "prune", false)
	if err != nil {
		return err
	}
	defer done()
	return pruneOpen(ctx, g, r, o)
}

// pruneOpen prunes a repository opened and locked by the caller, with its
// index not loaded.
func pruneOpen(ctx context.Context, g *globals, r *repository.Repository, o *pruneOptions) error {
	host, _ := os.Hostname()
	records, err := repair.ListDamaged(ctx, r)
	if err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	damaged := make(map[id.ID]bool, len(records))
	for i := range records {
		damaged[i] = true
	}
	// WAL no retained base backup needs goes first, so that this prune
	// drops its blobs.
	walRes, err := walRetention(ctx, r, o.dryRun)
	if err != nil {
		return fmt.Errorf("prune: WAL retention: %w", err)
	}
	// So does the binary log no retained MariaDB/MySQL backup needs.
	binlogRes, err := binlogRetention(ctx, r, o.dryRun)
	if err != nil {
		return fmt.Errorf("prune: binary log retention: %w", err)
	}
	var prog *pruneProgress
	if !g.json && !g.quiet && g.ui.TTY {
		prog = &pruneProgress{ui: g.ui}
	}
	res, err := prune.Run(ctx, r, prune.Options{
		DryRun:         o.dryRun,
		MaxUnused:      o.unusedFrac,
		MaxRepackBytes: o.repackMax,
		Host:           host,
		Locks:          func(ctx context.Context) ([]prune.LockRef, error) { return otherLocks(ctx, r) },
		Progress:       prog.update,
		Damaged:        damaged,
	})
	prog.end()
	if err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	if g.json {
		g.ui.JSONLine(PruneSummaryJSON{MessageType: "summary", Result: res, WAL: walRes, Binlog: binlogRes, Backend: g.backendStats()})
		return nil
	}
	printWALRetention(g, walRes, o.dryRun)
	printBinlogRetention(g, binlogRes, o.dryRun)
	printPrune(g.ui, res)
	return nil
}

// otherLocks lists the live locks other than prune locks (ours included):
// the fence of a prune mark.
func otherLocks(ctx context.Context, r *repository.Repository) ([]prune.LockRef, error) {
	live, _, err := lock.List(ctx, r, lock.DefaultStaleAfter)
	if err != nil {
		return nil, err
	}
	var out []prune.LockRef
	for _, l := range live {
		if l.Kind == lock.Prune {
			// Only one prune runs at a time, and a prune does not read
			// with the index a mark changes.
			continue
		}
		out = append(out, prune.LockRef{ID: l.ID, Desc: fmt.Sprintf("`rewind %s` (PID %d on host %s, since %s)",
			l.Command, l.PID, l.Host, l.Created.Local().Format(time.DateTime))})
	}
	return out, nil
}

func printPrune(u *ui.UI, res *prune.Result) {
	verb := func(done, would string) string {
		if res.DryRun {
			return would
		}
		return done
	}
	u.Printf("%s %s %s, %s of %s in %s\n", ui.Count(int64(res.Snapshots), "snapshot", "snapshots"),
		ui.Verb(int64(res.Snapshots), "references", "reference"), ui.Count(int64(res.UsedBlobs), "blob", "blobs"),
		ui.Bytes(res.UsedBytes), ui.Bytes(res.TotalBytes), ui.Count(int64(res.Packs), "pack", "packs"))
	u.Printf("unused: %s\n", ui.Bytes(res.UnusedBytes))
	if res.PacksRepacked > 0 {
		u.Printf("%s %s, copying %s still in use\n", verb("repacked", "would repack"), ui.Count(int64(res.PacksRepacked), "pack", "packs"), ui.Bytes(res.BytesRepacked))
	}
	u.Printf("%s %s (%s)\n", verb("condemned", "would condemn"), ui.Count(int64(res.PacksCondemned), "pack", "packs"), ui.Bytes(res.BytesCondemned))
	if res.PacksRevived > 0 {
		u.Printf("%s %s that new snapshots use\n", verb("kept", "would keep"), ui.Count(int64(res.PacksRevived), "condemned pack", "condemned packs"))
	}
	u.Printf("%s %s, %s freed\n", verb("deleted", "would delete"), ui.Count(int64(res.PacksDeleted), "pack", "packs"), ui.Bytes(res.BytesFreed))
	if res.PacksPending > 0 {
		u.Printf("%s (%s) %s for these to finish; the next prune deletes %s:\n", ui.Count(int64(res.PacksPending), "condemned pack", "condemned packs"), ui.Bytes(res.BytesPending),
			ui.Verb(int64(res.PacksPending), "waits", "wait"), ui.Verb(int64(res.PacksPending), "it", "them"))
		for _, w := range res.WaitingFor {
			u.Printf("  %s\n", w)
		}
	}
	if res.InventoriesDeleted > 0 {
		u.Printf("%s %s that no snapshot names\n", verb("deleted", "would delete"), ui.Count(int64(res.InventoriesDeleted), "inventory file", "inventory files"))
	}
	if res.InventoriesPending > 0 {
		u.Printf("%s that no snapshot names left for a prune that runs alone (other locks are held)\n", ui.Count(int64(res.InventoriesPending), "inventory file", "inventory files"))
	}
	for _, d := range res.Damaged {
		u.Warnf("warning: %s\n", d)
	}
	for _, m := range res.BadMarks {
		u.Warnf("warning: prune mark cannot be read, its packs are kept: %s\n", m)
	}
}

// pruneProgress shows the current stage on a terminal.
type pruneProgress struct {
	ui   *ui.UI
	last string
}

func (p *pruneProgress) update(stage string, done, total int) {
	if p == nil {
		return
	}
	line := stage
	if total > 0 {
		line = fmt.Sprintf("%s %d/%d", stage, done, total)
	}
	if line != p.last {
		p.last = line
		p.ui.Infof("\r\033[K%s", line)
	}
}

func (p *pruneProgress) end() {
	if p != nil && p.last != "" {
		p.ui.Infof("\r\033[K")
	}
}
