package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/inventory"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/plan"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/runbook"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/spf13/cobra"
)

// RunbookJSON is what `rewind runbook --json` prints (docs/JSON.md).
type RunbookJSON struct {
	// ID is the runbook's file in runbooks/; absent with --no-store.
	ID       string `json:"id,omitempty"`
	Host     string `json:"hostname"`
	Snapshot string `json:"snapshot_id"`
	// Time is when the runbook was written.
	Time     time.Time `json:"time"`
	BootMode string    `json:"boot_mode,omitempty"`
	RTO      int64     `json:"rto_ns,omitempty"`
	New      bool      `json:"new"`
	Format   string    `json:"format"`
	Out      string    `json:"out,omitempty"`
	Content  string    `json:"content,omitempty"`
}

type runbookOpts struct {
	host, snapshot, format, out, plan string
	stored, noStore                   bool
}

func newRunbookCmd(g *globals) *cobra.Command {
	var o runbookOpts
	cmd := &cobra.Command{
		Use:   "runbook [--host H] [--snapshot S] [--format md|html] [--out FILE] [--plan FILE] [--stored]",
		Short: "Write the recovery runbook of a host from its inventory, plan and drills",
		Long: `Write the step-by-step guide to rebuild a host on new hardware, generated from
facts the repository holds: the newest snapshot of the host that has an
inventory (or --snapshot), its disks, partition tables, minimum disk sizes,
boot mode and network, where the repository and its password are kept
(never the password itself), the exact recover commands, the checks after
the first boot (fstab, boot, the units that were enabled), the restore
commands of the host's PostgreSQL, MariaDB/MySQL and SQLite backups, and
the phase times of the last drill and recover.

The plan is not stored in the repository: give it with --plan to list its
jobs and repositories. The runbook is Markdown (--format md) or one HTML
page (--format html), printed or written to --out. It is also stored in the
repository (runbooks/, the newest 10 of each host) when its content changed,
so it survives the host: --stored prints the newest stored one, even when
no inventory can be read any more. See docs/RECOVERY.md.`,
		Example: `  rewind runbook
  rewind runbook --host web1 --out web1-runbook.md
  rewind runbook --host web1 --format html --out web1-runbook.html --plan /etc/rewind/rewind.yaml
  rewind runbook --snapshot 4f2a91c3
  rewind runbook --host web1 --stored
  rewind runbook --host web1 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.format != "md" && o.format != "html" {
				return fmt.Errorf("--format %q: give md or html", o.format)
			}
			if o.stored && (o.snapshot != "" || o.plan != "" || o.noStore) {
				return errors.New("--stored prints the stored runbook as it is: it takes no --snapshot, --plan or --no-store")
			}
			ctx := cmd.Context()
			r, done, err := g.openLocked(ctx, lock.Shared, "runbook", false)
			if err != nil {
				return err
			}
			defer done()
			if o.stored {
				return g.printStoredRunbook(ctx, r, &o)
			}
			return g.runRunbook(ctx, r, &o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.host, "host", "", "the `hostname` whose runbook to write (default: this machine; with --snapshot: the snapshot's)")
	f.StringVar(&o.snapshot, "snapshot", "", "the `snapshot` to restore (ID or prefix; default: the host's newest with an inventory)")
	f.StringVar(&o.format, "format", "md", "`format` of the runbook: md (Markdown) or html")
	f.StringVar(&o.out, "out", "", "write the runbook to `file` instead of standard output")
	f.StringVar(&o.plan, "plan", "", "the host's plan `file`, to list its jobs and repositories")
	f.BoolVar(&o.stored, "stored", false, "print the newest runbook stored in the repository for the host")
	f.BoolVar(&o.noStore, "no-store", false, "do not store the runbook in the repository")
	return cmd
}

func (g *globals) runRunbook(ctx context.Context, r *repository.Repository, o *runbookOpts) error {
	host := o.host
	if host == "" && o.snapshot == "" {
		host = inventoryHost("")
	}
	in, sns, err := runbook.Gather(ctx, r, host, o.snapshot)
	if err != nil {
		if errors.Is(err, inventory.ErrNone) && o.snapshot == "" {
			return withHint(err, inventoryHostsHint(sns))
		}
		return err
	}
	loc, err := g.location()
	if err != nil {
		return err
	}
	in.Repository, in.PasswordFrom = loc.String(), g.passwordFrom
	if in.PasswordFrom == "the prompt" {
		in.PasswordFrom = ""
	}
	if o.plan != "" {
		if in.Plan, err = plan.Load(o.plan); err != nil {
			return err
		}
		in.PlanPath = o.plan
	}
	w, err := runbook.Refresh(ctx, r, in, time.Now(), o.noStore)
	if err != nil {
		return err
	}
	out := RunbookJSON{Host: w.Facts.Host, Snapshot: w.Facts.Snapshot, Time: w.Record.Time, BootMode: w.Facts.BootMode,
		RTO: int64(w.Facts.RTO), Format: o.format, Out: o.out, New: w.New}
	if !o.noStore {
		out.ID = w.File.String()
		verb := "stored as"
		if !w.New {
			verb = "unchanged since"
		}
		g.ui.Infof("runbook of %s %s runbooks/%s\n", w.Facts.Host, verb, w.File.Short())
	}
	return g.emitRunbook(o, out, w.Record)
}

// emitRunbook writes the runbook in o.format to o.out or standard output.
func (g *globals) emitRunbook(o *runbookOpts, out RunbookJSON, rec runbook.Record) error {
	text := rec.Markdown
	if o.format == "html" {
		text = rec.HTML
	}
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(text), 0o644); err != nil {
			return fmt.Errorf("write the runbook: %w", err)
		}
		g.ui.Infof("wrote %s\n", o.out)
	} else if !g.json {
		_, err := io.WriteString(g.ui.Out, text)
		return err
	}
	if g.json {
		if o.out == "" {
			out.Content = text
		}
		return g.ui.JSONDoc(out)
	}
	return nil
}

func (g *globals) printStoredRunbook(ctx context.Context, r *repository.Repository, o *runbookOpts) error {
	host := inventoryHost(o.host)
	st, err := runbook.Newest(ctx, r, host)
	if err != nil {
		if errors.Is(err, runbook.ErrNone) {
			return withHint(err, "`rewind runbook --host "+host+"` writes one from the host's newest inventory.")
		}
		return err
	}
	if st.HTML == "" && o.format == "html" {
		return fmt.Errorf("runbook %s holds no HTML rendering: use --format md", st.File.Short())
	}
	out := RunbookJSON{ID: st.File.String(), Host: st.Host, Snapshot: st.Snapshot, Time: st.Time, Format: o.format, Out: o.out}
	return g.emitRunbook(o, out, st.Record)
}

// inventoryHostsHint names the hosts that have a snapshot with an
// inventory, for a runbook asked of a host that has none.
func inventoryHostsHint(sns []*snapshot.Snapshot) string {
	var hosts []string
	for _, s := range sns {
		if s.Inventory != nil {
			hosts = append(hosts, s.Hostname)
		}
	}
	slices.Sort(hosts)
	hosts = slices.Compact(hosts)
	if len(hosts) == 0 {
		return "No snapshot of this repository has an inventory: back up the host's files (`rewind backup /`) to record one."
	}
	return "Hosts with an inventory: " + strings.Join(hosts, ", ") + "; name one with --host. `rewind runbook --stored` prints a stored runbook."
}
