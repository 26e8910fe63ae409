package cli

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/rewind-backup/rewind/internal/ui"
	"github.com/spf13/cobra"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/lock"
)

// listTypes are the kinds of file `rewind list` lists, by the name it
// takes for each.
var listTypes = map[string]backend.FileType{
	"snapshots": backend.SnapshotFile,
	"index":     backend.IndexFile,
	"packs":     backend.PackFile,
	"keys":      backend.KeyFile,
	"locks":     backend.LockFile,
}

func newListCmd(g *globals) *cobra.Command {
	var names []string
	for n := range listTypes {
		names = append(names, n)
	}
	slices.Sort(names)
	cmd := &cobra.Command{
		Use:   "list {" + strings.Join(names, "|") + "}",
		Short: "List the IDs of one kind of file in the repository",
		Long: `List the IDs of the repository's files of one kind, one per line, as they
are named in the repository: snapshots, index files, packs, keys or lock
files. Nothing is decrypted except for locks, whose holders are shown with
-v and in --json. --json prints one JSON array of IDs (for locks, of lock
objects).`,
		Example: `  rewind list snapshots
  rewind list packs | wc -l
  rewind list locks -v
  rewind list keys --json`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: names,
		RunE: func(cmd *cobra.Command, args []string) error {
			t, ok := listTypes[args[0]]
			if !ok {
				return fmt.Errorf("cannot list %q: give one of %s", args[0], strings.Join(names, ", "))
			}
			ctx := cmd.Context()
			r, err := g.openRepo(ctx, false)
			if err != nil {
				return err
			}
			defer r.Close()
			if t == backend.LockFile && (g.json || g.verbose > 0) {
				live, stale, err := lock.List(ctx, r, lock.DefaultStaleAfter)
				if err != nil {
					return err
				}
				out := []LockJSON{}
				for _, l := range live {
					out = append(out, lockJSON(l, false))
				}
				for _, l := range stale {
					out = append(out, lockJSON(l, true))
				}
				if g.json {
					return g.ui.JSONDoc(out)
				}
				t := ui.NewTable("ID", "State", "Kind", "Command", "PID", "Host", "Refreshed").Right(4)
				for _, l := range out {
					state := "live"
					if l.Stale {
						state = "stale"
					}
					t.Row(l.ID, state, l.Kind, "rewind "+l.Command, strconv.Itoa(l.PID), l.Hostname, l.Refreshed.Local().Format(timeFormat))
				}
				g.ui.Table(t)
				return nil
			}
			ids, err := r.List(ctx, t)
			if err != nil {
				return err
			}
			out := []string{}
			for _, i := range ids {
				out = append(out, i.String())
			}
			slices.Sort(out)
			if g.json {
				return g.ui.JSONDoc(out)
			}
			for _, i := range out {
				g.ui.Printf("%s\n", i)
			}
			return nil
		},
	}
	return cmd
}
