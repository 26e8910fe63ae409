package cli

// This file is a stand-in for the job runner (internal/job, branch
// i11-runner) until it is merged: it runs a files job's "run" before and
// after steps and `rewind backup --json`. At merge, newAgentRunner
// returns the real job.Runner and this file goes.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/agent"
	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/plan"
)

type stopgapRunner struct {
	p   *plan.Plan
	bin string
}

func newAgentRunner(p *plan.Plan, bin string) agent.Runner { return stopgapRunner{p: p, bin: bin} }

func (s stopgapRunner) Run(ctx context.Context, j *plan.Job, trigger string) (*event.Run, error) {
	run := &event.Run{Host: s.p.Host, Job: j.Name, Kind: j.Kind, Trigger: trigger, Start: time.Now()}
	fail := func(err error) (*event.Run, error) {
		run.End, run.Result, run.Error = time.Now(), event.ResultFailed, err.Error()
		return run, nil
	}
	if j.Kind != plan.KindFiles {
		return fail(fmt.Errorf("job kind %s is not supported yet", j.Kind))
	}
	for _, st := range j.Before {
		if err := s.step(ctx, run, "before", st); err != nil {
			return fail(err)
		}
	}
	repo := s.p.Repositories[j.Repository]
	if repo == nil {
		return fail(fmt.Errorf("job %s: no repository %q", j.Name, j.Repository))
	}
	args := append([]string{"backup", "--json", "-r", repo.Location}, repoPasswordArgs(repo)...)
	args = append(args, "--tag", "job:"+j.Name, "--host", s.p.Host)
	for _, e := range j.Exclude {
		args = append(args, "--exclude", e)
	}
	args = append(args, "--")
	args = append(args, j.Paths...)
	cmd := exec.CommandContext(ctx, s.bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var sum struct {
		Type      string `json:"message_type"`
		Snapshot  string `json:"snapshot_id"`
		Files     int64  `json:"total_files_processed"`
		Bytes     int64  `json:"total_bytes_processed"`
		DataAdded int64  `json:"data_added"`
	}
	sc := bufio.NewScanner(&out)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var line struct {
			Type string `json:"message_type"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Type == "summary" {
			json.Unmarshal(sc.Bytes(), &sum)
		}
	}
	run.Snapshot, run.Files, run.Bytes, run.Added = sum.Snapshot, sum.Files, sum.Bytes, sum.DataAdded
	var ee *exec.ExitError
	switch {
	case err == nil:
		run.Result = event.ResultSuccess
	case errors.As(err, &ee) && ee.ExitCode() == 3 && sum.Snapshot != "":
		run.Result = event.ResultWarning
	default:
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = err.Error()
		}
		return fail(fmt.Errorf("backup: %s", msg))
	}
	for _, st := range j.After {
		if err := s.step(ctx, run, "after", st); err != nil {
			return fail(err)
		}
	}
	run.End = time.Now()
	return run, nil
}

func (s stopgapRunner) step(ctx context.Context, run *event.Run, phase string, st *plan.Step) error {
	t0 := time.Now()
	rec := event.Step{Phase: phase, Kind: st.Kind, Arg: st.Arg, Result: event.ResultSuccess}
	var err error
	if st.Kind == plan.StepRun || st.Kind == plan.StepCheck {
		timeout := 5 * time.Minute
		if st.Timeout > 0 {
			timeout = st.Timeout.D()
		}
		sctx, cancel := context.WithTimeout(ctx, timeout)
		cmd := exec.CommandContext(sctx, st.Command[0], st.Command[1:]...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		err = cmd.Run()
		cancel()
		rec.Arg = strings.Join(st.Command, " ")
	} else {
		err = fmt.Errorf("step %s is not supported yet", st.Kind)
	}
	rec.Duration = time.Since(t0)
	if err != nil {
		rec.Result, rec.Error = event.ResultFailed, err.Error()
		err = fmt.Errorf("%s step %s: %w", phase, rec.Arg, err)
	}
	run.Steps = append(run.Steps, rec)
	return err
}

// newAgentNotifier stands in for internal/notify (branch i11-notify): it
// posts each alert to the plan's webhook as JSON.
func newAgentNotifier(p *plan.Plan) agent.Notifier {
	if p.Notify == nil || p.Notify.Webhook == "" {
		return nil
	}
	on := p.Notify.On
	if len(on) == 0 {
		on = []string{agent.AlertFailure, agent.AlertRecovery, agent.AlertRPO, agent.AlertPlan}
	}
	return webhookNotifier{url: p.Notify.Webhook, on: on}
}

type webhookNotifier struct {
	url string
	on  []string
}

func (w webhookNotifier) Notify(ctx context.Context, a agent.Alert) {
	if a.Kind != agent.AlertPlan && !slicesContains(w.on, a.Kind) {
		return
	}
	body, _ := json.Marshal(map[string]any{"event": a.Kind, "host": a.Host, "job": a.Job, "message": a.Message,
		"lag_seconds": a.Lag.Seconds(), "rpo_seconds": a.Target.Seconds(), "run": a.Run})
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
}

func slicesContains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// newAgentMetrics stands in for internal/metrics (branch i11-notify).
func newAgentMetrics(_ context.Context, g *globals, p *plan.Plan, o *agentOpts) (agent.Metrics, error) {
	if o.metricsListen != "" || o.textfile != "" || (p.Metrics != nil && (p.Metrics.Listen != "" || p.Metrics.Textfile != "")) {
		g.log.Warn("metrics are not available in this build yet")
	}
	return nil, nil
}
