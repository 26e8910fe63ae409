package cli

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/mysql/binlog"
	"github.com/rewind-backup/rewind/internal/pg/wal"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/timeline"
	"github.com/rewind-backup/rewind/internal/ui"
	"github.com/spf13/cobra"
)

// TimelineSourceJSON is one element of `timeline --json` (docs/JSON.md).
type TimelineSourceJSON struct {
	Hostname string   `json:"hostname"`
	Kind     string   `json:"kind"`
	Name     string   `json:"name"`
	Paths    []string `json:"paths,omitempty"`
	SystemID string   `json:"system_identifier,omitempty"`
	DataDir  string   `json:"data_directory,omitempty"`
	// ServerID is a MariaDB/MySQL server's server_id.
	ServerID uint32              `json:"server_id,omitempty"`
	Ranges   []TimelineRangeJSON `json:"ranges"`
	Gaps     []TimelineGapJSON   `json:"gaps,omitempty"`
	// Switches are a cluster's timeline switches (promotions).
	Switches []TimelineSwitchJSON `json:"timeline_switches,omitempty"`
	// Timeline is the timeline a restore to the newest point ends on.
	Timeline uint32          `json:"timeline,omitempty"`
	At       *TimelineAtJSON `json:"at,omitempty"`
}

// TimelineSwitchJSON is where a PostgreSQL timeline branched off its
// parent.
type TimelineSwitchJSON struct {
	Timeline uint32    `json:"timeline"`
	Parent   uint32    `json:"parent"`
	LSN      string    `json:"lsn"`
	Reason   string    `json:"reason"`
	Created  time.Time `json:"created"`
}

// TimelineRangeJSON is a span a source can be restored to.
type TimelineRangeJSON struct {
	From              time.Time  `json:"from"`
	To                time.Time  `json:"to"`
	Continuous        bool       `json:"continuous"`
	Snapshots         int        `json:"snapshots"`
	LargestGapSeconds *float64   `json:"largest_gap_seconds,omitempty"`
	WALArchivedUpTo   *time.Time `json:"wal_archived_up_to,omitempty"`
	BinlogStoredUpTo  *time.Time `json:"binlog_stored_up_to,omitempty"`
}

// TimelineGapJSON is a break in a source's history.
type TimelineGapJSON struct {
	RestorableUntil time.Time  `json:"restorable_until"`
	RestorableAgain *time.Time `json:"restorable_again,omitempty"`
	SnapshotID      string     `json:"snapshot_id,omitempty"`
	MissingFirst    string     `json:"missing_first"`
	MissingLast     string     `json:"missing_last,omitempty"`
	Description     string     `json:"description"`
}

// TimelineAtJSON is what a restore to --at would use.
type TimelineAtJSON struct {
	Time           time.Time  `json:"time"`
	Restorable     bool       `json:"restorable"`
	SnapshotID     string     `json:"snapshot_id,omitempty"`
	Shows          *time.Time `json:"shows,omitempty"`
	ReplayWALTo    *time.Time `json:"replay_wal_to,omitempty"`
	ReplayBinlogTo *time.Time `json:"replay_binlog_to,omitempty"`
	SecondsBefore  *float64   `json:"seconds_before,omitempty"`
	Earliest       *time.Time `json:"earliest,omitempty"`
	Note           string     `json:"note,omitempty"`
}

func newTimelineCmd(g *globals) *cobra.Command {
	var hosts []string
	var at string
	cmd := &cobra.Command{
		Use:   "timeline [--host H] [--at TIME]",
		Short: "Show what a host can be restored to, and from when",
		Long: `Show, for every source of this host (or --host), the moments it can be
restored to:

  files     each set of paths backed up together (backup /etc /home, watch
            /srv/app): its snapshots are its points, shown as a range with
            their number and the largest gap between two of them
  postgres  each PostgreSQL cluster with base backups (rewind pg backup) or
            archived WAL (rewind pg wal-push): any moment from its oldest
            base backup's end to the newest WAL archived after it, with the
            gaps where WAL segments are missing named
  mysql     each MariaDB/MySQL server with physical backups (rewind mysql
            backup) or a stored binary log (rewind mysql binlog receive):
            any moment from its oldest backup's consistent point to the
            binary log stored after it, with the gaps named

With --at TIME, each source says what a restore to TIME would use: for
files the snapshot restore --at picks, for PostgreSQL the base backup and
"replay WAL to TIME", for MariaDB the backup and "replay binlog to TIME", and how far that falls short of TIME, or that the
source cannot be restored to TIME and its earliest moment. TIME is RFC
3339, "2026-11-22 10:31:05" in local time, relative as -15m, or a label
made with rewind mark. Times are shown in local time; a snapshot's moment
is when its capture ended.`,
		Example: `  rewind timeline
  rewind timeline --at "before upgrade"
  rewind timeline --host db1 --at "2026-11-22 03:00"
  rewind timeline --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTimeline(cmd.Context(), g, hosts, at)
		},
	}
	cmd.Flags().StringArrayVarP(&hosts, "host", "H", nil, "the `host` to show (repeatable; default: this machine)")
	cmd.Flags().StringVar(&at, "at", "", "say what a restore to this "+atUsage+" would use")
	return cmd
}

// hostTimeline is the sources of one host.
type hostTimeline struct {
	host    string
	sources []timeline.Source
}

func runTimeline(ctx context.Context, g *globals, hosts []string, at string) error {
	if len(hosts) == 0 {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("this machine's host name: %w (give --host)", err)
		}
		hosts = []string{h}
	}
	r, done, err := g.openLocked(ctx, lock.Shared, "timeline", true)
	if err != nil {
		return err
	}
	defer done()
	h, err := g.loadHistory(ctx, r, "", snapshot.Filter{Hosts: hosts})
	if err != nil {
		return err
	}
	cat, err := wal.Load(ctx, r)
	if err != nil {
		return err
	}
	for _, u := range cat.Unreadable {
		g.ui.Warnf("WAL index file wal/%s cannot be read (%v): the WAL it lists is left out\n", u.File, u.Err)
	}
	bcat, err := binlog.Load(ctx, r)
	if err != nil {
		return err
	}
	for _, u := range bcat.Unreadable {
		g.ui.Warnf("binlog index file binlog/%s cannot be read (%v): the binary log it lists is left out\n", u.File, u.Err)
	}
	var m *timeline.Moment
	if at != "" {
		mm, err := h.moment(at, time.Now())
		if err != nil {
			return err
		}
		m = &mm
	}
	var all []hostTimeline
	for _, host := range hosts {
		var sns []*snapshot.Snapshot
		for _, sn := range h.sns {
			if sn.Hostname == host {
				sns = append(sns, sn)
			}
		}
		ht := hostTimeline{host: host}
		for _, s := range timeline.FileSources(sns) {
			ht.sources = append(ht.sources, s)
		}
		for _, s := range timeline.PostgresSources(sns, cat, host) {
			if s.WAL != nil {
				sw, err := wal.Switches(ctx, r, s.WAL)
				if err != nil {
					g.ui.Warnf("cluster %s: its timeline history cannot be read (%v): timeline switches are not followed\n", s.Name(), err)
				} else {
					s.FollowSwitches(sw)
				}
			}
			ht.sources = append(ht.sources, s)
		}
		for _, s := range timeline.MySQLSources(sns, bcat, host) {
			ht.sources = append(ht.sources, s)
		}
		all = append(all, ht)
	}
	if g.json {
		out := []TimelineSourceJSON{}
		for _, ht := range all {
			for _, s := range ht.sources {
				out = append(out, timelineSourceJSON(ht.host, s, m))
			}
		}
		return g.ui.JSONDoc(out)
	}
	for i, ht := range all {
		if i > 0 {
			g.ui.Printf("\n")
		}
		printHostTimeline(g, ht, m)
	}
	return nil
}

// pointAt asks s about m: the snapshot chosen as restore --at chooses it
// (at m.Until, the last instant m covers), the shortfall measured from
// the moment as written.
func pointAt(s timeline.Source, m timeline.Moment) timeline.Point {
	p := s.PointAt(m.Until)
	if p.Found {
		p.Before = max(0, m.Time.Sub(p.Shows))
		if p.Before == 0 && !p.ReplayTo.IsZero() {
			p.ReplayTo, p.Shows = m.Time, m.Time
		}
	}
	return p
}

func utcPtr(t time.Time) *time.Time {
	u := t.UTC()
	return &u
}

func timelineSourceJSON(host string, s timeline.Source, m *timeline.Moment) TimelineSourceJSON {
	j := TimelineSourceJSON{Hostname: host, Kind: s.Kind(), Name: s.Name(), Ranges: []TimelineRangeJSON{}}
	switch s := s.(type) {
	case *timeline.FileSource:
		j.Paths = s.Paths
	case *timeline.PostgresSource:
		j.SystemID, j.DataDir, j.Timeline = strconv.FormatUint(s.SystemID, 10), s.DataDir, s.Timeline()
		for _, sw := range s.Switches {
			j.Switches = append(j.Switches, TimelineSwitchJSON{Timeline: sw.Timeline, Parent: sw.Parent, LSN: sw.At.String(), Reason: sw.Reason, Created: sw.Created.UTC()})
		}
	case *timeline.MySQLSource:
		j.ServerID, j.DataDir = s.ServerID, s.DataDir
	}
	for _, r := range s.Ranges() {
		rj := TimelineRangeJSON{From: r.From.UTC(), To: r.To.UTC(), Continuous: r.Continuous, Snapshots: r.Snapshots}
		if !r.Continuous {
			gap := r.LargestGap.Seconds()
			rj.LargestGapSeconds = &gap
		}
		switch {
		case r.WALTo.IsZero():
		case s.Kind() == timeline.KindMySQL:
			rj.BinlogStoredUpTo = utcPtr(r.WALTo)
		default:
			rj.WALArchivedUpTo = utcPtr(r.WALTo)
		}
		j.Ranges = append(j.Ranges, rj)
	}
	for _, g := range s.Gaps() {
		gj := TimelineGapJSON{RestorableUntil: g.Until.UTC(), MissingFirst: g.MissingFirst, MissingLast: g.MissingLast, Description: g.What}
		if !g.Resume.IsZero() {
			gj.RestorableAgain = utcPtr(g.Resume)
		}
		if g.ResumeFrom != nil {
			gj.SnapshotID = g.ResumeFrom.ID.String()
		}
		j.Gaps = append(j.Gaps, gj)
	}
	if m != nil {
		p := pointAt(s, *m)
		aj := &TimelineAtJSON{Time: m.Time.UTC(), Restorable: p.Found, Note: p.Note}
		if p.Found {
			aj.SnapshotID = p.Snapshot.ID.String()
			aj.Shows = utcPtr(p.Shows)
			before := p.Before.Seconds()
			aj.SecondsBefore = &before
			switch {
			case p.ReplayTo.IsZero():
			case s.Kind() == timeline.KindMySQL:
				aj.ReplayBinlogTo = utcPtr(p.ReplayTo)
			default:
				aj.ReplayWALTo = utcPtr(p.ReplayTo)
			}
		} else if !p.Earliest.IsZero() {
			aj.Earliest = utcPtr(p.Earliest)
		}
		j.At = aj
	}
	return j
}

func localTime(t time.Time) string { return t.Local().Format(timeFormat) }

// printHostTimeline prints one host's sources as a table: one row per
// range, a row per gap under its source; with a moment, what a restore
// to it would use instead.
func printHostTimeline(g *globals, ht hostTimeline, m *timeline.Moment) {
	if len(ht.sources) == 0 {
		g.ui.Printf("Host %s: nothing backed up (--host picks another host)\n", ht.host)
		return
	}
	if m != nil {
		g.ui.Printf("Host %s, restored to %s:\n", ht.host, m)
		t := ui.NewTable("Kind", "Source", "Restore from", "Shows", "Short of it", "Note")
		for _, s := range ht.sources {
			p := pointAt(s, *m)
			if !p.Found {
				note := "not restorable to " + m.String() + ": nothing captured yet"
				if !p.Earliest.IsZero() {
					note = "not restorable to " + m.String() + ": earliest is " + localTime(p.Earliest)
				}
				t.Row(s.Kind(), s.Name(), "-", "-", "-", note)
				continue
			}
			from := "snapshot " + p.Snapshot.ID.Short()
			if s.Kind() == timeline.KindPostgres {
				from = "base backup " + p.Snapshot.ID.Short()
				if !p.ReplayTo.IsZero() {
					from += ", replay WAL to " + localTime(p.ReplayTo)
				}
			}
			if s.Kind() == timeline.KindMySQL {
				from = "backup " + p.Snapshot.ID.Short()
				if !p.ReplayTo.IsZero() {
					from += ", replay binlog to " + localTime(p.ReplayTo)
				}
			}
			short := "-"
			if p.Before.Round(time.Second) > 0 {
				short = p.Before.Round(time.Second).String()
			}
			t.Row(s.Kind(), s.Name(), from, localTime(p.Shows), short, p.Note)
		}
		g.ui.Table(t)
		return
	}
	g.ui.Printf("Host %s:\n", ht.host)
	t := ui.NewTable("Kind", "Source", "From", "To", "Snapshots", "Restorable")
	t.Right(4)
	for _, s := range ht.sources {
		rs := s.Ranges()
		if len(rs) == 0 {
			why := "not restorable: no base backup yet (rewind pg backup)"
			if s.Kind() == timeline.KindMySQL {
				why = "not restorable: no physical backup yet (rewind mysql backup)"
			}
			t.Row(s.Kind(), s.Name(), "-", "-", "0", why)
		}
		for _, r := range rs {
			what := ""
			switch {
			case r.Continuous && !r.WALTo.IsZero() && s.Kind() == timeline.KindMySQL:
				what = "any moment; binary log stored up to " + localTime(r.WALTo)
			case r.Continuous && s.Kind() == timeline.KindMySQL:
				what = "the backup's consistent point only: no binary log stored after it"
			case r.Continuous && !r.WALTo.IsZero():
				what = "any moment; WAL archived up to " + localTime(r.WALTo)
			case r.Continuous:
				what = "the base backup's end only: no WAL archived after it"
			case r.Snapshots == 1:
				what = "1 point"
			default:
				what = fmt.Sprintf("%d points, largest gap %s", r.Snapshots, r.LargestGap.Round(time.Second))
			}
			t.Row(s.Kind(), s.Name(), localTime(r.From), localTime(r.To), strconv.Itoa(r.Snapshots), what)
		}
		for _, gp := range s.Gaps() {
			what := "gap: " + gp.What + "; restorable only up to " + localTime(gp.Until)
			if !gp.Resume.IsZero() {
				next := "base backup"
				if s.Kind() == timeline.KindMySQL {
					next = "backup"
				}
				what += " and again from the next " + next + " " + localTime(gp.Resume)
				if gp.ResumeFrom != nil {
					what += " (" + gp.ResumeFrom.ID.Short() + ")"
				}
			}
			t.Row("", "", "", "", "", what)
		}
		if ps, ok := s.(*timeline.PostgresSource); ok {
			for _, sw := range ps.Switches {
				t.Row("", "", "", "", "", fmt.Sprintf("timeline %d began %s, branching from timeline %d at %s (%s)",
					sw.Timeline, localTime(sw.Created), sw.Parent, sw.At, sw.Reason))
			}
		}
	}
	g.ui.Table(t)
}
