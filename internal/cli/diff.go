package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rewind-backup/rewind/internal/filter"
	"github.com/rewind-backup/rewind/internal/fs"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/restorer"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/timeline"
	"github.com/rewind-backup/rewind/internal/tree"
	"github.com/spf13/cobra"
)

// Change is one line of `diff --json`. Modifier is "+" added, "-" removed,
// "M" content changed, "T" type changed, "U" metadata changed only, "?"
// content unknown: the backup of one side could not read the file.
type Change struct {
	MessageType string `json:"message_type"`
	Path        string `json:"path"`
	Modifier    string `json:"modifier"`
}

// DiffStats is the final line of `diff --json`.
type DiffStats struct {
	MessageType string `json:"message_type"`
	Added       int    `json:"added"`
	Removed     int    `json:"removed"`
	Changed     int    `json:"changed"`
	MetaOnly    int    `json:"metadata_only"`
	Unknown     int    `json:"unknown"`
}

func newDiffCmd(g *globals) *cobra.Command {
	var metadata bool
	var at []string
	var sf snapFilter
	cmd := &cobra.Command{
		Use:   "diff {SNAPSHOT1[:PATH] SNAPSHOT2[:PATH] | PATH --at TIME [--at TIME]}",
		Short: "Show what changed between two snapshots, or two moments",
		Long: `List entries added (+), removed (-), with changed content (M), changed type
(T), changed metadata only (U: mode, owner, times, xattrs), or unknown (?:
one side's backup could not read the file, so its content is not known).
Directories whose trees are identical are skipped without being read.

With PATH (a path on this machine) and --at, compare PATH as it was at the
first moment with PATH at the second, or with PATH on disk now when only one
--at is given. The moments are taken from the snapshots of this host (or
--host) that cover PATH; a moment is a time or a label, as for restore --at.
For a text file the output is a unified diff of its lines; for a directory,
or with --json, the entries that changed, as above.`,
		Example: `  rewind diff 4f2a91c3 latest
  rewind diff 4f2a91c3:/etc latest:/etc --json
  rewind diff /etc/nginx/nginx.conf --at "before nginx upgrade"
  rewind diff /srv/app --at -2h --at -1h`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if len(at) > 0 {
				if len(args) != 1 || len(at) > 2 {
					return errors.New("with --at, give one PATH and one or two --at moments")
				}
				return runDiffAt(ctx, g, args[0], at, sf, metadata, time.Now())
			}
			if len(args) != 2 {
				return errors.New("give two snapshots to compare, or PATH --at TIME")
			}
			r, done, err := g.openLocked(ctx, lock.Shared, "diff", true)
			if err != nil {
				return err
			}
			defer done()
			var roots [2]*tree.Node
			var base string
			for i, a := range args {
				ref, p := snapshot.SplitRef(a)
				sn, err := snapshot.Find(ctx, r, ref, sf.filter())
				if err != nil {
					return err
				}
				if roots[i], err = snapshot.Lookup(ctx, r, sn, p); err != nil {
					return err
				}
				base = path.Clean("/" + p)
			}
			out := &diffOutput{g: g, metadata: metadata, st: DiffStats{MessageType: "statistics"}}
			emit := out.emit
			if roots[0].Type == tree.Dir && roots[1].Type == tree.Dir {
				err = diffTrees(ctx, r, base, roots[0].Subtree, roots[1].Subtree, emit)
			} else {
				// SNAPSHOT:PATH named a file (or other non-directory):
				// compare the two entries themselves.
				err = diffNodes(ctx, r, base, roots[0], roots[1], emit)
			}
			if err != nil {
				return err
			}
			out.finish()
			return nil
		},
	}
	cmd.Flags().BoolVar(&metadata, "metadata", true, "also list entries whose metadata alone changed (U)")
	cmd.Flags().StringArrayVar(&at, "at", nil, "compare PATH at this "+atUsage+" (once: with the disk now; twice: the two)")
	sf.add(cmd)
	return cmd
}

// diffOutput prints the changes diff finds and counts them.
type diffOutput struct {
	g        *globals
	metadata bool
	st       DiffStats
}

func (o *diffOutput) emit(p, mod string) {
	switch mod {
	case "+":
		o.st.Added++
	case "-":
		o.st.Removed++
	case "U":
		o.st.MetaOnly++
	case "?":
		o.st.Unknown++
	default:
		o.st.Changed++
	}
	if mod == "U" && !o.metadata && !o.g.json {
		return
	}
	if o.g.json {
		o.g.ui.JSONLine(Change{MessageType: "change", Path: p, Modifier: mod})
	} else {
		o.g.ui.Printf("%-2s %s\n", mod, p)
	}
}

// finish prints the counts.
func (o *diffOutput) finish() {
	st := o.st
	if o.g.json {
		o.g.ui.JSONLine(st)
	} else {
		o.g.ui.Printf("\n%d added, %d removed, %d changed, %d metadata only", st.Added, st.Removed, st.Changed, st.MetaOnly)
		if st.Unknown > 0 {
			o.g.ui.Printf(", %d unknown (?: the backup of one side could not read the file)", st.Unknown)
		}
		o.g.ui.Printf("\n")
	}
}

func loadDir(ctx context.Context, r *repository.Repository, ids []id.ID) ([]tree.Node, error) {
	var out []tree.Node
	err := snapshot.EachNode(ctx, r, ids, func(n *tree.Node) error {
		out = append(out, *n)
		return nil
	})
	return out, err
}

// diffTrees compares two directory listings, descending only into
// directories whose trees differ.
func diffTrees(ctx context.Context, r *repository.Repository, dir string, a, b []id.ID, emit func(p, mod string)) error {
	if slices.Equal(a, b) {
		return nil
	}
	la, err := loadDir(ctx, r, a)
	if err != nil {
		return err
	}
	lb, err := loadDir(ctx, r, b)
	if err != nil {
		return err
	}
	all := func(prefix string, ids []id.ID, mod string) error {
		return snapshot.Walk(ctx, r, prefix, ids, func(p string, _ *tree.Node) error {
			emit(p, mod)
			return nil
		})
	}
	i, j := 0, 0
	for i < len(la) || j < len(lb) {
		switch {
		case j == len(lb) || i < len(la) && la[i].Name < lb[j].Name:
			p := path.Join(dir, la[i].Name)
			emit(p, "-")
			if la[i].Type == tree.Dir {
				if err := all(p, la[i].Subtree, "-"); err != nil {
					return err
				}
			}
			i++
		case i == len(la) || la[i].Name > lb[j].Name:
			p := path.Join(dir, lb[j].Name)
			emit(p, "+")
			if lb[j].Type == tree.Dir {
				if err := all(p, lb[j].Subtree, "+"); err != nil {
					return err
				}
			}
			j++
		default:
			if err := diffNodes(ctx, r, path.Join(dir, la[i].Name), &la[i], &lb[j], emit); err != nil {
				return err
			}
			i++
			j++
		}
	}
	return nil
}

// diffNodes compares two entries found at the same path p, and what is
// below them when both are directories.
func diffNodes(ctx context.Context, r *repository.Repository, p string, x, y *tree.Node, emit func(p, mod string)) error {
	switch {
	case x.Type != y.Type:
		emit(p, "T")
	case snapshot.NotBackedUp(x) != snapshot.NotBackedUp(y),
		snapshot.NotBackedUp(x) && !tree.SameMeta(x, y):
		// The content of one side is unknown, so whether it changed is
		// too. Two unreadable captures of a file whose metadata did not
		// change are taken as the same file.
		emit(p, "?")
	case x.Type == tree.File && (!slices.Equal(x.Content, y.Content) || !slices.Equal(x.ContentLists, y.ContentLists)):
		emit(p, "M")
	case !tree.SameMeta(x, y):
		emit(p, "U")
	}
	if x.Type == tree.Dir && y.Type == tree.Dir {
		return diffTrees(ctx, r, p, x.Subtree, y.Subtree, emit)
	}
	return nil
}

// The PATH --at form: PATH at one moment against PATH at another, or on
// disk now.

// maxTextDiff is the largest file shown as a diff of its lines.
const maxTextDiff = 16 << 20

// diffSide is PATH at one moment: its entry (nil when absent) and the
// header naming it.
type diffSide struct {
	node   *tree.Node
	sn     *snapshot.Snapshot // nil for the disk
	header string
}

func runDiffAt(ctx context.Context, g *globals, arg string, ats []string, sf snapFilter, metadata bool, now time.Time) error {
	p, err := localPath(arg)
	if err != nil {
		return err
	}
	r, done, err := g.openLocked(ctx, lock.Shared, "diff", true)
	if err != nil {
		return err
	}
	defer done()
	h, err := g.loadHistory(ctx, r, p, timelineFilter(sf))
	if err != nil {
		return err
	}
	var sides [2]diffSide
	for i, at := range ats {
		m, err := h.moment(at, now)
		if err != nil {
			return err
		}
		sn, n, err := h.at(ctx, r, m)
		if err != nil {
			return err
		}
		sides[i] = diffSide{node: n, sn: sn, header: fmt.Sprintf("%s\t%s (%s)", p, m, describeSnapshot(sn))}
		g.ui.Infof("%s at %s: %s\n", p, m, describeSnapshot(sn))
	}
	live := len(ats) == 1
	if live {
		sides[1] = diffSide{header: p + "\tnow (on disk)"}
		var st unix.Stat_t
		switch err := unix.Lstat(p, &st); {
		case err == nil:
			n := fs.NodeFromStat(path.Base(p), &st)
			sides[1].node = &n
		case !errors.Is(err, unix.ENOENT):
			return &os.PathError{Op: "lstat", Path: p, Err: err}
		}
	}
	if !g.json {
		shown, err := diffText(ctx, g, r, p, sides)
		if shown || err != nil {
			return err
		}
	}
	out := &diffOutput{g: g, metadata: metadata, st: DiffStats{MessageType: "statistics"}}
	a, b := sides[0].node, sides[1].node
	switch {
	case live:
		skip, err := filter.NewMatcher(sides[0].sn.Excludes)
		if err != nil {
			return err
		}
		err = timeline.DiffLive(ctx, r, p, a, skip, out.emit)
		if err != nil {
			return err
		}
	case a == nil && b == nil:
	case a == nil || b == nil:
		mod, n := "+", b
		if b == nil {
			mod, n = "-", a
		}
		out.emit(p, mod)
		if n.Type == tree.Dir {
			err := snapshot.Walk(ctx, r, p, n.Subtree, func(q string, _ *tree.Node) error {
				out.emit(q, mod)
				return nil
			})
			if err != nil {
				return err
			}
		}
	case a.Type == tree.Dir && b.Type == tree.Dir:
		if err := diffTrees(ctx, r, p, a.Subtree, b.Subtree, out.emit); err != nil {
			return err
		}
	default:
		if err := diffNodes(ctx, r, p, a, b, out.emit); err != nil {
			return err
		}
	}
	out.finish()
	return nil
}

// diffText prints a unified diff when both sides are regular files (or
// absent) of text no larger than maxTextDiff. It reports whether it did,
// so that other cases get the list of changed entries.
func diffText(ctx context.Context, g *globals, r *repository.Repository, p string, sides [2]diffSide) (bool, error) {
	var texts [2][]byte
	for i, s := range sides {
		if s.node == nil {
			continue
		}
		if s.node.Type != tree.File || s.node.Size > maxTextDiff || snapshot.NotBackedUp(s.node) {
			return false, nil
		}
		var buf bytes.Buffer
		var err error
		if s.sn == nil {
			texts[i], err = os.ReadFile(p)
		} else {
			err = restorer.WriteContent(ctx, r, s.node, &buf)
			texts[i] = buf.Bytes()
		}
		if err != nil {
			return false, fmt.Errorf("read %s: %w", s.header, err)
		}
	}
	if sides[0].node == nil && sides[1].node == nil {
		g.ui.Infof("%s is absent at both moments\n", p)
		return true, nil
	}
	headers := [2]string{sides[0].header, sides[1].header}
	for i, s := range sides {
		if s.node == nil {
			headers[i] = "/dev/null"
		}
	}
	if bytes.Equal(texts[0], texts[1]) && (sides[0].node == nil) == (sides[1].node == nil) {
		return false, nil // the same text: list what else changed
	}
	if isBinary(texts[0]) || isBinary(texts[1]) {
		g.ui.Printf("Binary files %s and %s differ\n", headers[0], headers[1])
		return true, nil
	}
	return true, timeline.Unified(g.ui.Out, headers[0], headers[1], texts[0], texts[1], 3)
}

// isBinary reports whether b looks like binary data: a NUL byte in its
// first 8 KiB, as diff and git decide.
func isBinary(b []byte) bool {
	return bytes.IndexByte(b[:min(len(b), 8<<10)], 0) >= 0
}
