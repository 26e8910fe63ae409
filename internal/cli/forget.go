package cli

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/hold"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/label"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/repair"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/timeline"
	"github.com/rewind-backup/rewind/internal/ui"
	"github.com/spf13/cobra"
)

// ForgetGroupJSON is one element of `forget --json` (docs/JSON.md).
type ForgetGroupJSON struct {
	Group  snapshot.GroupKey    `json:"group"`
	Keep   []ForgetKeepJSON     `json:"keep"`
	Remove []ForgetSnapshotJSON `json:"remove"`
}

// ForgetSnapshotJSON names one snapshot in `forget --json`.
type ForgetSnapshotJSON struct {
	ID      string     `json:"id"`
	ShortID string     `json:"short_id"`
	Time    *time.Time `json:"time,omitempty"`
	// Unreadable says why a snapshot file removed could not be read (its
	// time is then unknown).
	Unreadable string `json:"unreadable,omitempty"`
}

// ForgetKeepJSON is a kept snapshot and the rules that keep it.
type ForgetKeepJSON struct {
	ForgetSnapshotJSON
	Reasons []string `json:"reasons"`
}

func forgetSnapshotJSON(sn *snapshot.Snapshot) ForgetSnapshotJSON {
	t := sn.Time.UTC()
	return ForgetSnapshotJSON{ID: sn.ID.String(), ShortID: sn.ID.Short(), Time: &t}
}

// forgetOptions are the flags of `rewind forget`.
type forgetOptions struct {
	policy  snapshot.Policy
	within  string
	groupBy string
	dryRun  bool
	filter  snapFilter
	prune   bool
	pruneO  pruneOptions
	// continuous starts the policy from timeline.ContinuousPolicy
	// (forget --continuous, below).
	continuous bool
}

// errEmptyPolicy refuses a forget that would remove every snapshot.
var errEmptyPolicy = errors.New("refusing to forget everything: give at least one --keep-* option, or the snapshots to remove")

func newForgetCmd(g *globals) *cobra.Command {
	var o forgetOptions
	cmd := &cobra.Command{
		Use:   "forget [SNAPSHOT...]",
		Short: "Remove snapshots, by ID or by a retention policy",
		Long: `Remove the snapshots named as arguments (IDs or unique ID prefixes), or
apply a retention policy: the snapshots are split into groups (--group-by,
by default host and paths), and in each group every snapshot that no
--keep-* rule keeps is removed. Like restic, --keep-daily N keeps the newest
snapshot of each of the N most recent days that have snapshots, and so on
for hours, ISO weeks, months and years (in local time); -1 means no limit.

DURATION for --keep-within is a Go duration ("36h", "1h30m") or a sum of
whole units as in restic: y (365 days), m (30 days), w (7 days), d (24 hours)
and h, e.g. "7d", "2w", "1y2m". A bare "6m" is refused as ambiguous.

Snapshots under legal hold (rewind protect) and snapshots younger than the
repository's minimum retention (rewind config) are never removed: a policy
keeps them, with the reason "protected: REASON" or "minimum retention 30d",
and naming one for removal fails with nothing removed. While a hold file
cannot be read, forget removes nothing, since it might protect any snapshot.

--continuous applies the default policy of continuous protection (every
snapshot of the last 24 hours, then one an hour for 168 hours, one a day for
30 days, one a week for 52 weeks: --keep-within 24h --keep-hourly 168
--keep-daily 30 --keep-weekly 52); --keep-* options given with it replace
its parts. With any policy, the snapshot that shows each labelled moment
(rewind mark), the newest whose capture ended by the label's time, is kept in
every group with the reason "label NAME" until the label is removed.

A snapshot file that cannot be read is removed when named by its ID (or a
unique prefix of its file name): a damage record is stored for it first, as
rewind repair snapshots does.

forget removes only the snapshot files. The data they referenced stays in
the repository until prune deletes what no snapshot needs; --prune runs it
right after (with --max-unused and --max-repack-size as for prune). Use
--dry-run to see what would be removed and why the rest stays.`,
		Example: `  rewind forget --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --dry-run
  rewind forget --keep-last 10 --keep-within 30d --host web1
  rewind forget --keep-tag release --keep-last 3 --json
  rewind forget --keep-daily 7 --keep-weekly 4 --prune
  rewind forget --continuous --keep-daily 90 --dry-run
  rewind forget 4f2a91c3 9b1d0e77`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.continuous {
				o.applyContinuous(cmd.Flags().Changed)
			}
			return runForget(cmd.Context(), g, &o, args, time.Now())
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.policy.Last, "keep-last", 0, "keep the `N` newest snapshots")
	f.IntVar(&o.policy.Hourly, "keep-hourly", 0, "keep the newest snapshot of each of the last `N` hours that have one")
	f.IntVar(&o.policy.Daily, "keep-daily", 0, "keep the newest snapshot of each of the last `N` days that have one")
	f.IntVar(&o.policy.Weekly, "keep-weekly", 0, "keep the newest snapshot of each of the last `N` ISO weeks that have one")
	f.IntVar(&o.policy.Monthly, "keep-monthly", 0, "keep the newest snapshot of each of the last `N` months that have one")
	f.IntVar(&o.policy.Yearly, "keep-yearly", 0, "keep the newest snapshot of each of the last `N` years that have one")
	f.StringVar(&o.within, "keep-within", "", "keep every snapshot younger than `DURATION` (e.g. 7d, 2w, 1y2m, 36h)")
	f.StringArrayVar(&o.policy.Tags, "keep-tag", nil, "keep every snapshot with this `tag` (repeatable: any of them)")
	f.StringVar(&o.groupBy, "group-by", "host,paths", "apply the policy per group of snapshots sharing these `fields` (host, paths, tags; \"\" for one group)")
	f.BoolVarP(&o.dryRun, "dry-run", "n", false, "only show what would be removed")
	f.BoolVar(&o.prune, "prune", false, "run prune after removing the snapshots (with --dry-run: show what it would do)")
	f.BoolVar(&o.continuous, "continuous", false, "apply the continuous-protection policy (keep-within 24h, keep-hourly 168, keep-daily 30, keep-weekly 52); --keep-* options replace its parts")
	o.pruneO.addFlags(cmd)
	o.filter.add(cmd)
	return cmd
}

// forgetPlan is what forget decided for one group.
type forgetPlan struct {
	key      snapshot.GroupKey
	byPolicy bool // false for snapshots named on the command line
	keep     []*snapshot.Snapshot
	remove   []*snapshot.Snapshot
	reasons  map[string][]string // by full ID
	// unreadable are snapshot files named for removal that cannot be
	// read: a damage record is stored for each before it is removed.
	unreadable []repair.UnreadableSnapshot
}

func runForget(ctx context.Context, g *globals, o *forgetOptions, args []string, now time.Time) error {
	if o.within != "" {
		d, err := parseRetention(o.within)
		if err != nil {
			return fmt.Errorf("--keep-within: %w", err)
		}
		o.policy.Within = d
	}
	for name, n := range map[string]int{
		"keep-last": o.policy.Last, "keep-hourly": o.policy.Hourly, "keep-daily": o.policy.Daily,
		"keep-weekly": o.policy.Weekly, "keep-monthly": o.policy.Monthly, "keep-yearly": o.policy.Yearly,
	} {
		if n < -1 {
			return fmt.Errorf("--%s %d: give a count, or -1 for no limit", name, n)
		}
	}
	var by []string
	for _, k := range strings.Split(o.groupBy, ",") {
		if k = strings.TrimSpace(k); k != "" {
			by = append(by, k)
		}
	}
	if len(args) > 0 && !o.policy.Empty() {
		return errors.New("give either snapshots to remove or --keep-* options, not both")
	}
	if len(args) == 0 && o.policy.Empty() {
		return errEmptyPolicy
	}

	if o.prune {
		if err := o.pruneO.parse(); err != nil {
			return err
		}
	}
	r, openDone, err := g.openLocked(ctx, lock.Shared, "forget", false)
	if err != nil {
		return err
	}
	var once sync.Once
	done := func() { once.Do(openDone) }
	defer done()
	sns, bad, err := repair.ListSnapshots(ctx, r)
	if err != nil {
		return err
	}
	var named []repair.UnreadableSnapshot
	if len(args) > 0 {
		if args, named, err = splitUnreadable(sns, bad, args); err != nil {
			return err
		}
	}
	for _, u := range bad {
		if !slices.ContainsFunc(named, func(n repair.UnreadableSnapshot) bool { return n.ID == u.ID }) {
			g.ui.Warnf("snapshot %s cannot be read: %v\n(`rewind forget %s` records and removes it)\n", u.ID.Short(), u.Err, u.ID.Short())
		}
	}

	guard, err := g.loadGuard(ctx, r)
	if err != nil {
		return err
	}
	var labels *label.Set
	if len(args) == 0 {
		if labels, err = loadLabelKeeps(ctx, r); err != nil {
			return err
		}
	}

	var plans []forgetPlan
	if len(args) > 0 || len(named) > 0 {
		var remove []*snapshot.Snapshot
		if len(args) > 0 {
			if remove, err = resolveSnapshots(sns, args, o.filter.filter()); err != nil {
				return err
			}
		}
		if err := refuseGuarded(remove, guard, now); err != nil {
			return err
		}
		// An unreadable snapshot's time is unknown, so the minimum
		// retention cannot keep it (and it restores nothing); a legal
		// hold names it by ID and does.
		for _, u := range named {
			if _, held := guard.Holds[u.ID]; held {
				return fmt.Errorf("refusing to forget snapshot %s, which cannot be read but is under legal hold; nothing was removed.\n"+
					"Lift the hold with `rewind unprotect %s`", u.ID.Short(), u.ID.Short())
			}
		}
		plans = []forgetPlan{{remove: remove, unreadable: named}}
	} else {
		f := o.filter.filter()
		var selected []*snapshot.Snapshot
		for _, sn := range sns {
			if f.Match(sn) {
				selected = append(selected, sn)
			}
		}
		groups, err := snapshot.Group(selected, by)
		if err != nil {
			return fmt.Errorf("--group-by: %w", err)
		}
		for _, grp := range groups {
			keep, remove, reasons := timeline.Apply(grp.Snapshots, o.policy, guard, labels.Labels, now)
			p := forgetPlan{key: grp.Key, byPolicy: true, keep: keep, remove: remove, reasons: map[string][]string{}}
			for i, why := range reasons {
				p.reasons[i.String()] = why
			}
			plans = append(plans, p)
		}
	}

	removed, failed := 0, 0
	if !o.dryRun {
		for _, p := range plans {
			if len(p.unreadable) > 0 {
				recorded, _, err := repair.RecordUnreadable(ctx, r, p.unreadable, repair.Options{Forget: true})
				removed += len(recorded)
				if err != nil {
					g.ui.Warnf("%v\n", err)
					failed += len(p.unreadable) - len(recorded)
				}
			}
			for _, sn := range p.remove {
				h := backend.Handle{Type: backend.SnapshotFile, Name: sn.ID.String()}
				if err := r.Backend().Remove(ctx, h); err != nil && !backend.IsNotExist(err) {
					g.ui.Warnf("remove snapshot %s: %v\n", sn.ID.Short(), err)
					failed++
					continue
				}
				removed++
			}
		}
	}

	if g.json {
		if err := printForgetJSON(g, plans); err != nil {
			return err
		}
	} else {
		printForget(g, plans, o.dryRun)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %s could not be removed", failed, ui.Count(int64(failed+removed), "snapshot", "snapshots"))
	}
	if !o.prune {
		if removed > 0 {
			g.ui.Infof("removed %s; the data only they used stays until `rewind prune` (or forget --prune)\n", ui.Count(int64(removed), "snapshot", "snapshots"))
		}
		return nil
	}
	// The forget lock is given back first: prune waits for every lock
	// held when it condemns data, and would otherwise wait for its own.
	done()
	o.pruneO.dryRun = o.dryRun
	return runPrune(ctx, g, &o.pruneO)
}

// loadGuard reads what keeps snapshots whatever forget is asked: the
// legal holds and the repository's minimum retention. It fails while a
// hold file cannot be read or the policy cannot be told.
func (g *globals) loadGuard(ctx context.Context, r *repository.Repository) (snapshot.Guard, error) {
	holds, err := hold.List(ctx, r)
	if err != nil {
		return snapshot.Guard{}, err
	}
	if err := holds.CheckReadable(); err != nil {
		return snapshot.Guard{}, err
	}
	st, err := g.loadPolicy(ctx, r)
	if err != nil {
		return snapshot.Guard{}, fmt.Errorf("cannot tell the repository's minimum retention, so no snapshot can be removed: %w", err)
	}
	guard := snapshot.Guard{MinRetention: st.MinRetention(), Holds: map[id.ID][]string{}}
	for sn := range holds.BySnapshot {
		guard.Holds[sn] = holds.Reasons(sn)
	}
	return guard, nil
}

// refuseGuarded fails, naming each and why, when any snapshot named for
// removal is kept by the guard.
func refuseGuarded(named []*snapshot.Snapshot, guard snapshot.Guard, now time.Time) error {
	return guard.Refuse(named, now, "forget", "nothing was removed")
}

// resolveSnapshots finds the snapshots named by args: full IDs, unique ID
// prefixes, or "latest" (the newest passing f).
func resolveSnapshots(sns []*snapshot.Snapshot, args []string, f snapshot.Filter) ([]*snapshot.Snapshot, error) {
	var out []*snapshot.Snapshot
	seen := map[*snapshot.Snapshot]bool{}
	for _, a := range args {
		var match []*snapshot.Snapshot
		if a == "latest" {
			for i := len(sns) - 1; i >= 0; i-- {
				if f.Match(sns[i]) {
					match = append(match, sns[i])
					break
				}
			}
		} else if a != "" {
			for _, sn := range sns {
				if strings.HasPrefix(sn.ID.String(), strings.ToLower(a)) {
					match = append(match, sn)
				}
			}
		}
		switch len(match) {
		case 0:
			return nil, fmt.Errorf("%w: %q", snapshot.ErrNotFound, a)
		case 1:
		default:
			return nil, fmt.Errorf("%w: %q matches %d snapshots; give more digits", snapshot.ErrAmbiguous, a, len(match)) // plural: ambiguous means 2 or more
		}
		if !seen[match[0]] {
			seen[match[0]] = true
			out = append(out, match[0])
		}
	}
	snapshot.SortByTime(out)
	return out, nil
}

func printForgetJSON(g *globals, plans []forgetPlan) error {
	out := []ForgetGroupJSON{}
	for _, p := range plans {
		j := ForgetGroupJSON{Group: p.key, Keep: []ForgetKeepJSON{}, Remove: []ForgetSnapshotJSON{}}
		for _, sn := range p.keep {
			j.Keep = append(j.Keep, ForgetKeepJSON{ForgetSnapshotJSON: forgetSnapshotJSON(sn), Reasons: p.reasons[sn.ID.String()]})
		}
		for _, sn := range p.remove {
			j.Remove = append(j.Remove, forgetSnapshotJSON(sn))
		}
		for _, u := range p.unreadable {
			j.Remove = append(j.Remove, ForgetSnapshotJSON{ID: u.ID.String(), ShortID: u.ID.Short(), Unreadable: u.Err.Error()})
		}
		out = append(out, j)
	}
	return g.ui.JSONDoc(out)
}

func printForget(g *globals, plans []forgetPlan, dryRun bool) {
	verb := "removed"
	if dryRun {
		verb = "would remove"
	}
	total := 0
	for i, p := range plans {
		if i > 0 {
			g.ui.Printf("\n")
		}
		if p.byPolicy {
			g.ui.Printf("%s:\n", p.key)
			g.ui.Printf("keep %s:\n", ui.Count(int64(len(p.keep)), "snapshot", "snapshots"))
			t := ui.NewTable("ID", "Time", "Host", "Reasons", "Paths")
			for _, sn := range p.keep {
				t.Row(sn.ID.Short(), sn.Time.Local().Format(timeFormat), sn.Hostname,
					strings.Join(p.reasons[sn.ID.String()], ", "), strings.Join(sn.Paths, " "))
			}
			g.ui.Table(t)
		}
		g.ui.Printf("%s %s:\n", verb, ui.Count(int64(len(p.remove)+len(p.unreadable)), "snapshot", "snapshots"))
		if len(p.remove)+len(p.unreadable) > 0 {
			t := ui.NewTable("ID", "Time", "Host", "Paths")
			for _, sn := range p.remove {
				t.Row(sn.ID.Short(), sn.Time.Local().Format(timeFormat), sn.Hostname, strings.Join(sn.Paths, " "))
			}
			for _, u := range p.unreadable {
				t.Row(u.ID.Short(), "(time unknown)", "", "the file cannot be read; a damage record keeps the loss on file")
			}
			g.ui.Table(t)
		}
		total += len(p.remove) + len(p.unreadable)
	}
	if dryRun {
		g.ui.Printf("dry run: would remove %s, removed nothing\n", ui.Count(int64(total), "snapshot", "snapshots"))
	}
}

// retentionSyntax is a restic-style duration; retentionPart one number
// and unit of it.
var (
	retentionSyntax = regexp.MustCompile(`^(\d+[ymwdh])+$`)
	retentionPart   = regexp.MustCompile(`(\d+)([ymwdh])`)
	bareMonths      = regexp.MustCompile(`^\d+m$`)
)

// parseRetention reads --keep-within: restic-style sums of whole units
// (y = 365d, m = 30d, w = 7d, d = 24h, h) when any of y, w or d is used,
// else a Go duration. A bare count of m is ambiguous (minutes in Go,
// months in restic) and refused.
func parseRetention(s string) (time.Duration, error) {
	const day = 24 * time.Hour
	if retentionSyntax.MatchString(s) && strings.ContainsAny(s, "ywd") {
		var d time.Duration
		for _, m := range retentionPart.FindAllStringSubmatch(s, -1) {
			unit := map[string]time.Duration{"y": 365 * day, "m": 30 * day, "w": 7 * day, "d": day, "h": time.Hour}[m[2]]
			n, err := strconv.ParseInt(m[1], 10, 64)
			if err != nil || n > int64(math.MaxInt64/unit) || time.Duration(n)*unit > math.MaxInt64-d {
				return 0, fmt.Errorf("duration %q is too long", s)
			}
			d += time.Duration(n) * unit
		}
		if d == 0 {
			return 0, fmt.Errorf("duration %q is not positive", s)
		}
		return d, nil
	}
	if bareMonths.MatchString(s) {
		return 0, fmt.Errorf("duration %q is ambiguous: write %q for months or %q for minutes", s, "0d"+s, s+"0s")
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q: use e.g. 7d, 2w, 1y2m or 36h", s)
	}
	if d <= 0 {
		return 0, fmt.Errorf("duration %q is not positive", s)
	}
	return d, nil
}

// forget --continuous, and the labels that keep snapshots: the policy
// logic is timeline's, shared with the watch daemon.

// applyContinuous sets every part of the policy that no --keep-* option
// set (changed tells) to timeline.ContinuousPolicy's.
func (o *forgetOptions) applyContinuous(changed func(name string) bool) {
	def := timeline.ContinuousPolicy()
	for _, c := range []struct {
		flag     string
		dst      *int
		fallback int
	}{
		{"keep-last", &o.policy.Last, def.Last}, {"keep-hourly", &o.policy.Hourly, def.Hourly},
		{"keep-daily", &o.policy.Daily, def.Daily}, {"keep-weekly", &o.policy.Weekly, def.Weekly},
		{"keep-monthly", &o.policy.Monthly, def.Monthly}, {"keep-yearly", &o.policy.Yearly, def.Yearly},
	} {
		if !changed(c.flag) {
			*c.dst = c.fallback
		}
	}
	if !changed("keep-within") {
		o.policy.Within = def.Within
	}
	if !changed("keep-tag") {
		o.policy.Tags = def.Tags
	}
}

// loadLabelKeeps reads the labels for a forget by policy, which keeps the
// snapshot of each labelled moment. It fails while a label file cannot be
// read, since that label might keep any snapshot.
func loadLabelKeeps(ctx context.Context, r *repository.Repository) (*label.Set, error) {
	labels, err := label.List(ctx, r)
	if err != nil {
		return nil, err
	}
	if err := labels.CheckReadable(); err != nil {
		return nil, err
	}
	return labels, nil
}
