package cli

import (
	"strconv"

	"github.com/rewind-backup/rewind/internal/filter"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/timeline"
	"github.com/rewind-backup/rewind/internal/tree"
	"github.com/rewind-backup/rewind/internal/ui"
	"github.com/spf13/cobra"
)

func newFindCmd(g *globals) *cobra.Command {
	var sf snapFilter
	var long bool
	cmd := &cobra.Command{
		Use:   "find PATTERN",
		Short: "Find files by name or path across snapshots",
		Long: `Search every snapshot (narrowed with --host, --tag, --path) for entries whose
name matches PATTERN, or whose whole path matches when PATTERN holds a slash
("**" spans directories).

An entry that stays the same through consecutive snapshots of a host (the
same content, type and metadata, as far as a restore can tell: the rules
of rewind versions) is listed once, with the first and last snapshot that
hold it and how many snapshots that is. With -l the line shows that
version as ls -l does. --json lists every match of every snapshot.`,
		Example: `  rewind find nginx.conf
  rewind find '*.sql' --host db1 -l
  rewind find '/home/*/.ssh/**' --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			m, err := newPatternMatcher(args[0])
			if err != nil {
				return err
			}
			r, done, err := g.openLocked(ctx, lock.Shared, "find", true)
			if err != nil {
				return err
			}
			defer done()
			sns, err := g.listSnapshots(ctx, r)
			if err != nil {
				return err
			}
			f := sf.filter()
			fold := newFindFolder()
			for _, sn := range sns {
				if !f.Match(sn) {
					continue
				}
				fold.next(sn)
				err := snapshot.WalkNames(ctx, r, "/", sn.Tree, func(p string, n *tree.Node, refused error) error {
					if !m.Match(p, n.Name) {
						return nil
					}
					if g.json {
						j := nodeJSON("match", p, n, refused)
						j.SnapshotID = sn.ID.String()
						g.ui.JSONLine(j)
						fold.found++
						return nil
					}
					return fold.add(func(a, b *tree.Node) (bool, error) {
						ch, err := timeline.Compare(ctx, r, a, b)
						return ch == "", err
					}, p, n, refused)
				})
				if err != nil {
					g.ui.Warnf("snapshot %s: %v\n", sn.ID.Short(), err)
				}
			}
			if g.json {
				return nil
			}
			if fold.found == 0 {
				g.ui.Infof("no matches\n")
				return nil
			}
			g.ui.Table(fold.table(long))
			return nil
		},
	}
	cmd.Flags().BoolVarP(&long, "long", "l", false, "show mode, link count, owner, size or device numbers, and time, as ls -l")
	sf.add(cmd)
	return cmd
}

func newPatternMatcher(p string) (*filter.Matcher, error) { return filter.NewMatcher([]string{p}) }

// findRun is one entry that stayed the same through consecutive snapshots
// of a host.
type findRun struct {
	path        string
	node        *tree.Node // as in first
	refused     error
	first, last *snapshot.Snapshot
	snapshots   int
	lastSeq     int // the host's snapshot sequence number of last
}

// findFolder folds the matches of find, snapshot after snapshot (oldest
// first), into runs.
type findFolder struct {
	runs  []*findRun          // in the order they began
	open  map[string]*findRun // the newest run of each host and path
	seq   map[string]int      // snapshots of each host seen so far
	cur   *snapshot.Snapshot
	found int
}

func newFindFolder() *findFolder {
	return &findFolder{open: map[string]*findRun{}, seq: map[string]int{}}
}

// next starts the matches of sn.
func (f *findFolder) next(sn *snapshot.Snapshot) {
	f.cur = sn
	f.seq[sn.Hostname]++
}

// add takes a match of the current snapshot: it extends the run of the
// same host and path if that run reached the snapshot before this one of
// the host and same says the entry did not change, or begins a new run.
func (f *findFolder) add(same func(a, b *tree.Node) (bool, error), p string, n *tree.Node, refused error) error {
	f.found++
	seq := f.seq[f.cur.Hostname]
	key := f.cur.Hostname + "\x00" + p
	if run := f.open[key]; run != nil && run.lastSeq == seq-1 {
		ok, err := same(run.node, n)
		if err != nil {
			return err
		}
		if ok {
			run.last, run.lastSeq = f.cur, seq
			run.snapshots++
			return nil
		}
	}
	cp := *n
	run := &findRun{path: p, node: &cp, refused: refused, first: f.cur, last: f.cur, snapshots: 1, lastSeq: seq}
	f.runs = append(f.runs, run)
	f.open[key] = run
	return nil
}

// table lays the runs out, in the order they began: the first snapshot
// and its time, the last one and its time when the run spans more than
// one, the count, the host, and the entry (its path, or with long its
// ls -l line).
func (f *findFolder) table(long bool) *ui.Table {
	t := ui.NewTable("First", "Time", "Last", "Time", "Snapshots", "Host", "Entry").Right(4)
	for _, run := range f.runs {
		last, lastTime := "", ""
		if run.snapshots > 1 {
			last, lastTime = run.last.ID.Short(), run.last.Time.Local().Format(timeFormat)
		}
		entry := shownEntry(run.path, run.refused)
		if long {
			entry = lsLine(run.path, run.node, run.refused)
		}
		t.Row(run.first.ID.Short(), run.first.Time.Local().Format(timeFormat), last, lastTime,
			strconv.Itoa(run.snapshots), run.first.Hostname, entry)
	}
	return t
}
