package cli

import (
	"context"
	"path"
	"slices"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
	"github.com/spf13/cobra"
)

// Change is one line of `diff --json`. Modifier is "+" added, "-" removed,
// "M" content changed, "T" type changed, "U" metadata changed only.
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
}

func newDiffCmd(g *globals) *cobra.Command {
	var metadata bool
	cmd := &cobra.Command{
		Use:   "diff SNAPSHOT1[:PATH] SNAPSHOT2[:PATH]",
		Short: "Show what changed between two snapshots",
		Long: `List entries added (+), removed (-), with changed content (M), changed type
(T), or changed metadata only (U: mode, owner, times, xattrs). Directories
whose trees are identical are skipped without being read.`,
		Example: `  rewind diff 4f2a91c3 latest
  rewind diff 4f2a91c3:/etc latest:/etc --json`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			r, done, err := g.openLocked(ctx, lock.Shared, "diff", true)
			if err != nil {
				return err
			}
			defer done()
			var roots [2]*tree.Node
			var base string
			for i, a := range args {
				ref, p := snapshot.SplitRef(a)
				sn, err := snapshot.Find(ctx, r, ref, snapshot.Filter{})
				if err != nil {
					return err
				}
				if roots[i], err = snapshot.Lookup(ctx, r, sn, p); err != nil {
					return err
				}
				base = path.Clean("/" + p)
			}
			st := DiffStats{MessageType: "statistics"}
			emit := func(p, mod string) {
				switch mod {
				case "+":
					st.Added++
				case "-":
					st.Removed++
				case "U":
					st.MetaOnly++
				default:
					st.Changed++
				}
				if mod == "U" && !metadata && !g.json {
					return
				}
				if g.json {
					g.ui.JSONLine(Change{MessageType: "change", Path: p, Modifier: mod})
				} else {
					g.ui.Printf("%-2s %s\n", mod, p)
				}
			}
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
			if g.json {
				g.ui.JSONLine(st)
			} else {
				g.ui.Printf("\n%d added, %d removed, %d changed, %d metadata only\n", st.Added, st.Removed, st.Changed, st.MetaOnly)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&metadata, "metadata", true, "also list entries whose metadata alone changed (U)")
	return cmd
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
	case x.Type == tree.File && !slices.Equal(x.Content, y.Content) || !slices.Equal(x.ContentLists, y.ContentLists):
		emit(p, "M")
	case !tree.SameMeta(x, y):
		emit(p, "U")
	}
	if x.Type == tree.Dir && y.Type == tree.Dir {
		return diffTrees(ctx, r, p, x.Subtree, y.Subtree, emit)
	}
	return nil
}
