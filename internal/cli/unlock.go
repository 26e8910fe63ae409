package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/ui"
)

// LockJSON is one lock in `unlock --json` and `list locks --json`
// (docs/JSON.md).
type LockJSON struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	Command   string    `json:"command"`
	Hostname  string    `json:"hostname"`
	User      string    `json:"username"`
	PID       int       `json:"pid"`
	Created   time.Time `json:"created"`
	Refreshed time.Time `json:"refreshed"`
	Stale     bool      `json:"stale"`
}

func lockJSON(l lock.Info, stale bool) LockJSON {
	return LockJSON{ID: l.ID, Kind: string(l.Kind), Command: l.Command, Hostname: l.Host, User: l.User,
		PID: l.PID, Created: l.Created.UTC(), Refreshed: l.Refreshed.UTC(), Stale: stale}
}

// describeLock names a lock's holder for people.
func describeLock(l lock.Info) string {
	return fmt.Sprintf("`rewind %s` (%s lock, PID %d on host %s, since %s, refreshed %s)", l.Command, l.Kind, l.PID, l.Host,
		l.Created.Local().Format(time.DateTime), l.Refreshed.Local().Format(time.DateTime))
}

func newUnlockCmd(g *globals) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "unlock [--remove-all]",
		Short: "Remove stale locks, or every lock",
		Long: `Remove the repository's stale locks: those whose process has died (on this
host), or that were not refreshed for 30 minutes. Commands already ignore
stale locks, so this only tidies locks/.

With --remove-all, live locks are removed too, after each is named. A live
lock belongs to a running rewind: removing it lets commands that conflict
with it run at the same time, for example a prune beside a backup. Use it
only when you know its holder is gone (a host that died and will not come
back, whose locks would otherwise wait 30 minutes).`,
		Example: `  rewind unlock
  rewind unlock --remove-all
  rewind unlock --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			r, err := g.openRepo(ctx, false)
			if err != nil {
				return err
			}
			defer r.Close()
			if all && !g.json {
				live, _, err := lock.List(ctx, r, lock.DefaultStaleAfter)
				if err != nil {
					return err
				}
				for _, l := range live {
					g.ui.Warnf("removing the live lock of %s\n", describeLock(l))
				}
			}
			now := time.Now()
			removed, err := lock.Remove(ctx, r, lock.DefaultStaleAfter, all)
			out := []LockJSON{}
			for _, l := range removed {
				out = append(out, lockJSON(l, l.IsStale(now, lock.DefaultStaleAfter)))
			}
			if g.json {
				if jerr := g.ui.JSONDoc(out); jerr != nil {
					return jerr
				}
			} else {
				for _, l := range removed {
					g.ui.Infof("removed lock %s of %s\n", l.ID, describeLock(l))
				}
				g.ui.Printf("%s removed\n", ui.Count(int64(len(removed)), "lock", "locks"))
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&all, "remove-all", false, "also remove live locks (their holders may still be running)")
	return cmd
}
