package cli

import (
	"context"
	"os"
	"os/user"
	"time"

	"github.com/rewind-backup/rewind/internal/hold"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/spf13/cobra"
)

func newProtectCmd(g *globals) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "protect SNAPSHOT...",
		Short: "Put snapshots under legal hold, so that forget never removes them",
		Long: `Put each snapshot (ID, unique ID prefix or "latest") under legal hold: forget
never removes it, whether a --keep-* policy would or it is named for removal,
until rewind unprotect lifts the hold. forget --dry-run shows the hold as the
reason "protected: REASON".

A hold is a small file in the repository's holds folder. A snapshot that is
already protected keeps its hold, reason and all; to change the reason,
unprotect it and protect it again.

Like the minimum retention, a hold guards against mistakes: a client that
holds the repository password can delete files by other means. See
docs/RETENTION.md.`,
		Example: `  rewind protect --reason "litigation 2026-17" 4f2a91c3
  rewind protect latest`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runProtect(cmd.Context(), g, args, reason, time.Now())
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why the snapshots are held (`text`, shown by forget)")
	return cmd
}

func newUnprotectCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "unprotect SNAPSHOT...",
		Short: "Lift the legal hold of snapshots",
		Long: `Remove every hold on each snapshot (ID, unique ID prefix or "latest"), so that
forget may remove it again. A snapshot that was not protected is reported
and left alone. A hold that names a snapshot no longer in the repository
can be lifted by giving the snapshot's ID.`,
		Example: `  rewind unprotect 4f2a91c3
  rewind unprotect 4f2a91c3 9b1d0e77`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runUnprotect(cmd.Context(), g, args)
		},
	}
}

func runProtect(ctx context.Context, g *globals, args []string, reason string, now time.Time) error {
	r, err := g.openRepo(ctx, false)
	if err != nil {
		return err
	}
	defer r.Close()
	sns, err := g.listSnapshots(ctx, r)
	if err != nil {
		return err
	}
	targets, err := resolveSnapshots(sns, args, snapshot.Filter{})
	if err != nil {
		return err
	}
	holds, err := hold.List(ctx, r)
	if err != nil {
		return err
	}
	warnUnreadableHolds(g, holds)
	host, _ := os.Hostname()
	for _, sn := range targets {
		h, created, err := hold.Protect(ctx, r, holds, hold.Hold{Snapshot: sn.ID, Time: now, Host: host, User: currentUser(), Reason: reason})
		if err != nil {
			return err
		}
		if created {
			g.ui.Printf("protected %s  %s\n", sn.ID.Short(), describeHold(h))
		} else {
			g.ui.Printf("%s was already protected  %s; nothing changed\n", sn.ID.Short(), describeHold(h))
		}
	}
	return nil
}

func runUnprotect(ctx context.Context, g *globals, args []string) error {
	r, err := g.openRepo(ctx, false)
	if err != nil {
		return err
	}
	defer r.Close()
	sns, err := g.listSnapshots(ctx, r)
	if err != nil {
		return err
	}
	holds, err := hold.List(ctx, r)
	if err != nil {
		return err
	}
	// Holds on snapshots that are gone can be lifted by ID too: they
	// take part in the lookup as snapshots without a time, before the
	// real ones, so that "latest" still means the newest snapshot.
	present := map[string]bool{}
	for _, sn := range sns {
		present[sn.ID.String()] = true
	}
	var cands []*snapshot.Snapshot
	for i := range holds.BySnapshot {
		if !present[i.String()] {
			cands = append(cands, &snapshot.Snapshot{ID: i})
		}
	}
	snapshot.SortByTime(cands)
	cands = append(cands, sns...)
	targets, err := resolveSnapshots(cands, args, snapshot.Filter{})
	if err != nil {
		return err
	}
	for _, sn := range targets {
		removed, err := hold.Unprotect(ctx, r, holds, sn.ID)
		if err != nil {
			return err
		}
		if len(removed) == 0 {
			g.ui.Printf("%s was not protected; nothing changed\n", sn.ID.Short())
			continue
		}
		noun := "holds"
		if len(removed) == 1 {
			noun = "hold"
		}
		g.ui.Printf("unprotected %s (removed %d %s)\n", sn.ID.Short(), len(removed), noun)
	}
	warnUnreadableHolds(g, holds)
	return nil
}

// describeHold says who made a hold, when and why.
func describeHold(h hold.Hold) string {
	s := "held since " + h.Time.Local().Format("2006-01-02 15:04:05")
	if h.User != "" || h.Host != "" {
		s += " by " + h.User + "@" + h.Host
	}
	if h.Reason != "" {
		s += ": " + h.Reason
	}
	return s
}

// warnUnreadableHolds tells about hold files that cannot be read, and what
// they block.
func warnUnreadableHolds(g *globals, holds *hold.Set) {
	for _, u := range holds.Unreadable {
		g.ui.Warnf("hold file holds/%s cannot be read (%v): it may protect any snapshot, so forget removes nothing until it is restored or deleted by hand\n", u.File, u.Err)
	}
}

// currentUser names the user running rewind, for the record of a hold.
func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return os.Getenv("USER")
}
