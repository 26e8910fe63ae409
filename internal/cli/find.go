package cli

import (
	"github.com/rewind-backup/rewind/internal/filter"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
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
("**" spans directories).`,
		Example: `  rewind find nginx.conf
  rewind find '*.sql' --host db1
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
			found := 0
			for _, sn := range sns {
				if !f.Match(sn) {
					continue
				}
				header := false
				err := snapshot.WalkNames(ctx, r, "/", sn.Tree, func(p string, n *tree.Node, refused error) error {
					if !m.Match(p, n.Name) {
						return nil
					}
					found++
					switch {
					case g.json:
						j := nodeJSON("match", p, n, refused)
						j.SnapshotID = sn.ID.String()
						g.ui.JSONLine(j)
					default:
						if !header {
							g.ui.Printf("snapshot %s of %s at %s:\n", sn.ID.Short(), sn.Hostname, sn.Time.Local().Format("2006-01-02 15:04:05"))
							header = true
						}
						if long {
							g.ui.Printf("  %s\n", lsLine(p, n, refused))
						} else {
							g.ui.Printf("  %s\n", shownEntry(p, refused))
						}
					}
					return nil
				})
				if err != nil {
					g.ui.Warnf("snapshot %s: %v\n", sn.ID.Short(), err)
				}
			}
			if !g.json && found == 0 {
				g.ui.Infof("no matches\n")
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&long, "long", "l", false, "show mode, owner, size and time")
	sf.add(cmd)
	return cmd
}

func newPatternMatcher(p string) (*filter.Matcher, error) { return filter.NewMatcher([]string{p}) }
