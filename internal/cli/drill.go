package cli

// rewind drill: a restore drill of a whole machine (internal/drill), and
// --report, the drills recorded in the event log with the RTO trend.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/rewind-backup/rewind/internal/drill"
	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/plan"
	"github.com/rewind-backup/rewind/internal/ui"
)

// DrillJSON is the line `drill --json` prints (docs/JSON.md): the drill's
// report and the event that records it.
type DrillJSON struct {
	MessageType string `json:"message_type"`
	drill.Report
	EventID string `json:"event_id,omitempty"`
}

// drillJob is the job name of a drill run by hand.
const drillJob = "drill"

type drillOpts struct {
	host, snapshot, keep, job string
	probes                    []string
	timeout                   time.Duration
	memory                    int
	noEvent, report           bool
}

func newDrillCmd(g *globals) *cobra.Command {
	var o drillOpts
	cmd := &cobra.Command{
		Use:   "drill [--host H] [--snapshot S] [--probe P]... [--timeout D] | --report [--host H]",
		Short: "Prove a machine can be recovered: rebuild it as a VM, boot it, probe it, time it",
		Long: `Restore the newest snapshot of a host that has an inventory (or --snapshot)
as a VM disk (export --vm, in a temporary folder), boot it under QEMU
(KVM when /dev/kvm opens, else TCG; BIOS or UEFI/OVMF as recorded) on an
isolated network (user networking with restrict=on: the guest reaches
nothing; the probed ports are forwarded from 127.0.0.1), and run the
probes. Each phase is timed: restore, boot (until the boot marker on the
serial console) and probes; their sum is the measured RTO.

Probes (--probe, repeatable; or the plan's drill job):
  marker TEXT                 TEXT on the serial console; the first marker
                              ends the boot (default: a login prompt, login:)
  tcp PORT                    the guest's PORT accepts a connection
  http PATH [PORT] [EXPECT]   GET PATH on PORT (80) answers 2xx, or the
                              status EXPECT, or a body holding EXPECT
  unit NAME                   the systemd unit is active (systemctl
                              is-active through the QEMU guest agent: the
                              guest needs qemu-guest-agent)
Each probe is retried until it passes or --timeout (boot and probes
together) runs out.

The drill is recorded in the repository as an event (kind drill) with its
phases and report; a successful drill marks its snapshot "verified by
drill" (rewind snapshots). The VM is killed and its files removed in every
case, unless --keep DIR keeps the disk and serial log. A failed probe
fails the drill (exit 1). Needs root, as export --vm does.

--report lists the recorded drills, oldest first: time, snapshot, result,
the phases and the RTO, with its change against the previous successful
drill of the host and against their median.`,
		Example: `  rewind drill --host web1 --probe "marker login:" --probe "http / 80 200"
  rewind drill --probe "tcp 22" --probe "unit nginx.service" --timeout 15m
  rewind drill --snapshot 4f2a91c3 --keep /var/tmp/drill-web1 --json
  rewind drill --report --host web1
  rewind drill --report --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.report {
				if o.snapshot != "" || len(o.probes) > 0 || o.keep != "" {
					return errors.New("drill --report lists past drills: --snapshot, --probe and --keep are for running one")
				}
				return runDrillReport(cmd.Context(), g, o.host)
			}
			return runDrill(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.host, "host", "", "the `hostname` whose newest snapshot is drilled (default: this machine); with --report, only its drills")
	f.StringVar(&o.snapshot, "snapshot", "", "drill this `snapshot` (an ID or latest) instead of the host's newest")
	f.StringArrayVar(&o.probes, "probe", nil, "a `probe`: marker TEXT, tcp PORT, http PATH [PORT] [EXPECT], unit NAME (repeatable)")
	f.DurationVar(&o.timeout, "timeout", drill.DefaultTimeout, "the most `time` boot and probes may take together")
	f.StringVar(&o.keep, "keep", "", "keep the VM disk and serial log in `DIR` (new or empty)")
	f.IntVar(&o.memory, "memory", 1024, "the VM's memory in `MiB`")
	f.StringVar(&o.job, "job", drillJob, "the job `name` the event is recorded under")
	f.BoolVar(&o.noEvent, "no-event", false, "record no event (the agent records the run itself)")
	f.BoolVar(&o.report, "report", false, "list the recorded drills and the RTO trend")
	return cmd
}

// parseProbes reads the probe lines; none gives the default boot marker.
func parseProbes(lines []string) ([]plan.Probe, error) {
	var ps []plan.Probe
	for _, l := range lines {
		p, err := plan.ParseProbe(l)
		if err != nil {
			return nil, fmt.Errorf("--probe: %w", err)
		}
		ps = append(ps, p)
	}
	if len(ps) == 0 {
		ps = []plan.Probe{{Kind: plan.ProbeMarker, Text: drill.DefaultMarker}}
	}
	return ps, nil
}

func runDrill(ctx context.Context, g *globals, o drillOpts) error {
	probes, err := parseProbes(o.probes)
	if err != nil {
		return err
	}
	if o.timeout < time.Second {
		return fmt.Errorf("drill: --timeout %v is too short to boot a machine", o.timeout)
	}
	if os.Geteuid() != 0 {
		return errors.New("drill: rebuilding a machine as a VM needs root (loop devices, mkfs, mount)")
	}
	r, done, err := g.openLocked(ctx, lock.Shared, "drill", true)
	if err != nil {
		return err
	}
	defer done()
	host := o.host
	if host == "" {
		host = inventoryHost("")
	}
	sn, doc, err := machineSnapshot(ctx, r, o.snapshot, host)
	if err != nil {
		return fmt.Errorf("drill: %w", err)
	}
	start := time.Now()
	rep, derr := drill.Run(ctx, drill.Options{
		Host: sn.Hostname, Snapshot: sn.ID.String(), BootMode: bootMode(doc),
		Probes: probes, Timeout: o.timeout, Keep: o.keep, MemoryMiB: o.memory, Log: g.log,
		Restore: func(ctx context.Context, out string) (*drill.Export, error) {
			return g.exportVM(ctx, r, sn, doc, out, nil)
		},
	})
	out := DrillJSON{MessageType: "summary", Report: *rep}
	if !o.noEvent {
		run := &event.Run{Host: sn.Hostname, Job: o.job, Kind: drill.Kind, Trigger: "manual", Start: start, End: rep.End,
			Result: rep.Result, Error: rep.Error, Snapshot: sn.ID.String(), Phases: rep.Phases, Attempt: 1}
		run.Report, _ = json.Marshal(rep)
		// The record outlives a cancelled drill.
		id, serr := event.Save(context.WithoutCancel(ctx), r, run)
		if serr != nil {
			g.ui.Warnf("warning: the drill's record could not be saved: %v\n", serr)
			if derr == nil {
				derr = serr
			}
		} else {
			out.EventID = id.String()
		}
	}
	if g.json {
		g.ui.JSONLine(out)
	} else if !g.quiet {
		printDrill(g, &out)
	}
	if derr != nil {
		return fmt.Errorf("drill of %s (snapshot %s) failed: %w", sn.Hostname, sn.ID.Short(), derr)
	}
	return nil
}

func printDrill(g *globals, o *DrillJSON) {
	accel := o.Accel
	if accel == "" {
		accel = "not booted"
	}
	g.ui.Printf("drill of %s, snapshot %s (%s, %s): %s\n", o.Host, shortID(o.Snapshot), o.BootMode, accel, o.Result)
	g.ui.Printf("restore %s, boot %s, probes %s: RTO %s\n",
		drillSecs(drill.PhaseSeconds(o.Phases, drill.PhaseRestore)), drillSecs(drill.PhaseSeconds(o.Phases, drill.PhaseBoot)),
		drillSecs(drill.PhaseSeconds(o.Phases, drill.PhaseProbes)), drillSecs(o.RTOSeconds))
	for _, p := range o.Probes {
		if p.Result == event.ResultSuccess {
			g.ui.Printf("  ok      %s (at %s)\n", p.Probe, drillSecs(p.Seconds))
		} else {
			g.ui.Printf("  FAILED  %s: %s\n", p.Probe, p.Error)
		}
	}
	if o.Kept != "" {
		g.ui.Printf("the VM disk and serial log are kept in %s\n", o.Kept)
	}
	if o.Result != event.ResultSuccess && o.Console != "" {
		g.ui.Warnf("the end of the guest's serial console:\n%s\n", o.Console)
	}
	if o.EventID != "" {
		g.ui.Printf("recorded as event %s", shortID(o.EventID))
		if o.Result == event.ResultSuccess {
			g.ui.Printf("; snapshot %s is verified by drill", shortID(o.Snapshot))
		}
		g.ui.Printf("\n")
	}
}

func drillSecs(s float64) string { return fmt.Sprintf("%.1f s", s) }

// signedSecs writes a change of RTO ("+1.5 s"), or "-" when unknown.
func signedSecs(p *float64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%+.1f s", *p)
}

func runDrillReport(ctx context.Context, g *globals, host string) error {
	r, err := g.openRepo(ctx, false)
	if err != nil {
		return err
	}
	defer r.Close()
	rs, bad, err := event.List(ctx, r, event.Filter{})
	if err != nil {
		return err
	}
	for _, b := range bad {
		g.ui.Warnf("event %s cannot be read: %v\n", b.File.Short(), b.Err)
	}
	rows := drill.Trend(rs, host)
	if g.json {
		return g.ui.JSONDoc(rows)
	}
	if len(rows) == 0 {
		g.ui.Printf("no drills recorded (run rewind drill)\n")
		return nil
	}
	t := ui.NewTable("Time", "Host", "Snapshot", "Result", "Restore", "Boot", "Probes", "RTO", "vs prev", "vs median")
	var ok []float64
	for _, p := range rows {
		t.Row(p.Time.Local().Format(timeFormat), p.Host, shortID(p.Snapshot), p.Result,
			drillSecs(p.Restore), drillSecs(p.Boot), drillSecs(p.Probes), drillSecs(p.RTO), signedSecs(p.PrevChange), signedSecs(p.MedianChange))
		if p.Result == event.ResultSuccess {
			ok = append(ok, p.RTO)
		}
	}
	g.ui.Table(t)
	g.ui.Printf("%s, %d successful; median RTO %s\n", ui.Count(int64(len(rows)), "drill", "drills"), len(ok), drillSecs(drill.Median(ok)))
	return nil
}
