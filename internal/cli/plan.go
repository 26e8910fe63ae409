package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/plan"
	"github.com/rewind-backup/rewind/internal/schedule"
	"github.com/rewind-backup/rewind/internal/systemd"
	"github.com/spf13/cobra"
)

// planOptions are the flags every `rewind plan` subcommand shares.
type planOptions struct {
	config string
}

// planSubcommands build the subcommands of `rewind plan`; a new one is
// added by appending its constructor.
var planSubcommands = []func(*globals, *planOptions) *cobra.Command{
	newPlanValidateCmd,
	newPlanShowCmd,
	newPlanRunCmd,
}

func newPlanCmd(g *globals) *cobra.Command {
	po := &planOptions{}
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Check, show and run the backup plan",
		Long: `A plan is the one file that says what this server backs up, where, when,
and which steps surround each job (docs/PLAN.md). It is read from --config,
else REWIND_CONFIG, else ` + plan.DefaultPath + `.`,
		Example: `  rewind plan validate
  rewind plan show nightly
  rewind plan validate --config ./rewind.yaml --json`,
	}
	def := os.Getenv("REWIND_CONFIG")
	if def == "" {
		def = plan.DefaultPath
	}
	cmd.PersistentFlags().StringVar(&po.config, "config", def, "read the plan from `file` (env REWIND_CONFIG)")
	for _, sub := range planSubcommands {
		cmd.AddCommand(sub(g, po))
	}
	return cmd
}

// load reads the plan and applies its static rules: a plan that does not
// decode or breaks a rule is returned as plan.Problems.
func (po *planOptions) load() (*plan.Plan, error) {
	p, err := plan.Load(po.config)
	if err != nil {
		return nil, err
	}
	if probs := p.Check(context.Background(), nil); probs.Errors() > 0 {
		return nil, probs
	}
	return p, nil
}

func newPlanValidateCmd(g *globals, po *planOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "validate",
		Short: "Check the plan before its first run",
		Long: `Check everything about the plan that can be known before it runs: the
YAML and its keys, each job's kind and required fields, the schedules and
whether they can meet each job's rpo, and on this machine that the paths
exist, the commands are in PATH, the systemd units are known, and each
repository opens with its password.

Each problem is printed as FILE:LINE:COL: field: message. A unit that
cannot be checked because systemd is not running is a warning. The exit
status is 1 when any problem is an error. --json prints the problems as one
JSON array.`,
		Example: `  rewind plan validate
  rewind plan validate --config ./rewind.yaml
  rewind plan validate --json | jq '.[] | select(.severity == "error")'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPlanValidate(cmd.Context(), g, po)
		},
	}
}

func runPlanValidate(ctx context.Context, g *globals, po *planOptions) error {
	p, err := plan.Load(po.config)
	var probs plan.Problems
	switch {
	case errors.As(err, &probs):
	case err != nil:
		return err
	}
	if p != nil {
		probs = append(probs, p.Check(ctx, &planEnv{g: g})...)
	}
	probs.Sort()
	if g.json {
		if probs == nil {
			probs = plan.Problems{}
		}
		if err := g.ui.JSONDoc(probs); err != nil {
			return err
		}
	} else {
		for _, pr := range probs {
			g.ui.Printf("%s\n", pr)
		}
	}
	if n := probs.Errors(); n > 0 {
		return withCode(ExitFatal, fmt.Errorf("the plan %s has %s", po.config, plural(n, "error", "errors")))
	}
	g.ui.Printf("plan OK: %s, %s\n", plural(len(p.Jobs), "job", "jobs"),
		plural(len(p.Repositories), "repository", "repositories"))
	return nil
}

// planEnv answers plan.Check's questions about this machine.
type planEnv struct {
	g  *globals
	sd systemd.Manager
}

func (e *planEnv) PathExists(p string) error {
	_, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s does not exist", p)
	}
	return err
}

func (e *planEnv) CommandExists(name string) error {
	if _, err := exec.LookPath(name); err != nil {
		if strings.Contains(name, "/") {
			return fmt.Errorf("%s is not an executable file", name)
		}
		return fmt.Errorf("%s is not found in PATH", name)
	}
	return nil
}

func (e *planEnv) UnitKnown(ctx context.Context, unit string) error {
	known, err := e.sd.Known(ctx, unit)
	if errors.Is(err, systemd.ErrNoSystemd) {
		return fmt.Errorf("%w: no systemd", plan.ErrUncheckable)
	}
	if err != nil {
		return err
	}
	if !known {
		return errors.New("is not known to systemd")
	}
	return nil
}

// OpenRepository opens r as `rewind --repo LOCATION --password-file FILE`
// (or --password-command) would, then closes it.
func (e *planEnv) OpenRepository(ctx context.Context, r *plan.Repository) error {
	g := *e.g
	g.repo, g.passwordFile, g.passwordCommand = r.Location, r.PasswordFile, r.PasswordCommand
	repo, err := g.openRepo(ctx, false)
	if err != nil {
		return err
	}
	return repo.Close()
}

// PlanShowJob is one element of `plan show --json` (docs/JSON.md).
type PlanShowJob struct {
	Name       string          `json:"name"`
	Kind       string          `json:"kind"`
	Repository string          `json:"repository,omitempty"`
	Paths      []string        `json:"paths,omitempty"`
	Schedule   string          `json:"schedule,omitempty"`
	NextRuns   []time.Time     `json:"next_runs"`
	RPO        plan.Duration   `json:"rpo,omitempty"`
	Retention  *plan.Retention `json:"retention,omitempty"`
	CopyTo     []string        `json:"copy_to,omitempty"`
	Steps      []PlanShowStep  `json:"steps"`
}

// PlanShowStep is one numbered step of PlanShowJob.
type PlanShowStep struct {
	N int `json:"n"`
	plan.SeqStep
	Description string `json:"description"`
}

func newPlanShowCmd(g *globals, po *planOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "show [JOB]",
		Short: "Print each job's steps in order, with its next run times",
		Long: `Print each job (or the one named) as a control list: its schedule and next
three run times, rpo, retention and copies, then its steps numbered in the
order they run: before steps, the job's own work, after steps (starting
with the undo steps rewind adds: start a stopped unit, thaw, remove a btrfs
snapshot), and on_failure steps. Steps marked "also on failure" run even
when an earlier step or the job failed.`,
		Example: `  rewind plan show
  rewind plan show nightly
  rewind plan show --json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := po.load()
			if err != nil {
				return err
			}
			jobs, err := planShow(p, args, time.Now())
			if err != nil {
				return err
			}
			if g.json {
				return g.ui.JSONDoc(jobs)
			}
			for i, j := range jobs {
				if i > 0 {
					g.ui.Printf("\n")
				}
				printPlanJob(g, j)
			}
			return nil
		},
	}
}

func planShow(p *plan.Plan, args []string, now time.Time) ([]PlanShowJob, error) {
	var names []string
	for n := range p.Jobs {
		names = append(names, n)
	}
	slices.Sort(names)
	if len(args) == 1 {
		if _, ok := p.Jobs[args[0]]; !ok {
			return nil, fmt.Errorf("the plan has no job %q (jobs: %s)", args[0], strings.Join(names, ", "))
		}
		names = args
	}
	out := []PlanShowJob{}
	for _, n := range names {
		j := p.Jobs[n]
		sj := PlanShowJob{Name: n, Kind: j.Kind, Repository: j.Repository, Paths: j.Paths, Schedule: j.Schedule,
			NextRuns: []time.Time{}, RPO: j.RPO, Retention: j.Retention, CopyTo: j.CopyTo}
		if j.Schedule != "" && j.Schedule != plan.ScheduleContinuous {
			if s, err := schedule.Parse(j.Schedule); err == nil {
				at := now
				for range 3 {
					if at = s.Next(at); at.IsZero() {
						break
					}
					sj.NextRuns = append(sj.NextRuns, at.UTC()) // JSON times are UTC
				}
			}
		}
		for i, st := range j.Sequence() {
			d := st.Describe()
			if st.Kind == plan.StepJob && len(j.Paths) > 0 {
				d += " " + strings.Join(j.Paths, " ")
			}
			sj.Steps = append(sj.Steps, PlanShowStep{N: i + 1, SeqStep: st, Description: d})
		}
		out = append(out, sj)
	}
	return out, nil
}

func printPlanJob(g *globals, j PlanShowJob) {
	g.ui.Printf("job %s (%s) -> repository %s\n", j.Name, j.Kind, j.Repository)
	switch j.Schedule {
	case "":
		g.ui.Printf("  schedule:  none (runs only with rewind plan run)\n")
	case plan.ScheduleContinuous:
		g.ui.Printf("  schedule:  continuous (rewind watch)\n")
	default:
		g.ui.Printf("  schedule:  %s\n", j.Schedule)
		for _, t := range j.NextRuns {
			g.ui.Printf("  next run:  %s\n", t.Format("Mon 2006-01-02 15:04:05 MST"))
		}
	}
	if j.RPO != 0 {
		g.ui.Printf("  rpo:       %s\n", j.RPO)
	}
	if r := j.Retention; r != nil {
		g.ui.Printf("  retention: %s\n", retentionText(r))
	}
	if len(j.CopyTo) > 0 {
		g.ui.Printf("  copy to:   %s\n", strings.Join(j.CopyTo, ", "))
	}
	g.ui.Printf("  steps:\n")
	for _, s := range j.Steps {
		var notes []string
		if s.Implicit {
			notes = append(notes, "added by rewind")
		}
		if s.RunsOnFailure && s.Phase != plan.PhaseOnFailure {
			notes = append(notes, "also on failure")
		}
		if s.Timeout != 0 {
			notes = append(notes, "timeout "+s.Timeout.String())
		}
		if s.Max != 0 {
			notes = append(notes, "at most "+s.Max.String())
		}
		note := ""
		if len(notes) > 0 {
			note = "  (" + strings.Join(notes, ", ") + ")"
		}
		g.ui.Printf("  %3d. %-10s %s%s\n", s.N, s.Phase, s.Description, note)
	}
}

func retentionText(r *plan.Retention) string {
	var parts []string
	for _, k := range []struct {
		name string
		n    int
	}{{"last", r.KeepLast}, {"hourly", r.KeepHourly}, {"daily", r.KeepDaily}, {"weekly", r.KeepWeekly}, {"monthly", r.KeepMonthly}, {"yearly", r.KeepYearly}} {
		if k.n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k.name, k.n))
		}
	}
	if r.KeepWithin != 0 {
		parts = append(parts, "within "+r.KeepWithin.String())
	}
	if r.Prune != nil && !*r.Prune {
		parts = append(parts, "no prune")
	}
	return "keep " + strings.Join(parts, ", ")
}
