package cli

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/rewind-backup/rewind/internal/agent"
	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/job"
	"github.com/rewind-backup/rewind/internal/metrics"
	"github.com/rewind-backup/rewind/internal/notify"
	"github.com/rewind-backup/rewind/internal/plan"
)

// newAgentRunner is the job runner a run-job child uses.
func newAgentRunner(g *globals, p *plan.Plan, bin, stateDir string) agent.Runner {
	return &job.Runner{Bin: bin, Plan: p, Log: g.log, Stderr: os.Stderr, StateDir: stateDir}
}

// agentNotifier turns the agent's alerts into notify events: runs go
// through a notify.Tracker (failures in a row, repeats held back,
// recoveries), RPO breaches and their end are sent as they are.
type agentNotifier struct {
	mu sync.Mutex // guards n, replaced on reload
	n  *notify.Notifier
	t  *notify.Tracker
}

// replace sends from now on to the channels of p's notify settings; the
// tracker (failures in a row, breaches raised) carries over.
func (a *agentNotifier) replace(g *globals, p *plan.Plan) error {
	n, err := notify.New(p.Notify, g.log)
	if err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	a.mu.Lock()
	a.n = n
	a.mu.Unlock()
	return nil
}

func newAgentNotifier(g *globals, p *plan.Plan) (*agentNotifier, error) {
	n, err := notify.New(p.Notify, g.log)
	if err != nil {
		return nil, err
	}
	return &agentNotifier{n: n, t: notify.NewTracker(p.Host)}, nil
}

func (a *agentNotifier) Seed(run *event.Run) { a.t.Seed(run) }

func (a *agentNotifier) Notify(ctx context.Context, al agent.Alert) {
	var e notify.Event
	switch {
	case al.Kind == agent.AlertStart && al.Run != nil:
		e = a.t.RunStarted(al.Run)
	case al.Run != nil:
		e = a.t.RunFinished(al.Run)
	case al.Kind == agent.AlertRPO:
		e = notify.Event{Kind: notify.KindRPO, Host: al.Host, Job: al.Job, Time: time.Now(), Lag: al.Lag, Target: al.Target, Text: al.Message}
	case al.Kind == agent.AlertRecovery:
		e = notify.Event{Kind: notify.KindRecovery, Host: al.Host, Job: al.Job, Time: time.Now(), Lag: al.Lag, Target: al.Target, Text: al.Message}
	default:
		// A refused reload is about the plan, not a job: told as a
		// failure with the reason.
		e = notify.Event{Kind: notify.KindFailure, Host: al.Host, Job: "(plan)", Time: time.Now(), Text: al.Message}
	}
	a.mu.Lock()
	n := a.n
	a.mu.Unlock()
	_ = n.Notify(ctx, e) // failures are logged by the notifier
}

// agentMetrics is metrics.Metrics with its node_exporter textfile
// rewritten after each change and RPO check.
type agentMetrics struct {
	*metrics.Metrics
	textfile string
	log      func(err error)
	mu       sync.Mutex
}

func (m *agentMetrics) write() {
	if m.textfile == "" {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.Metrics.WriteTextfile(m.textfile); err != nil {
		m.log(err)
	}
}

func (m *agentMetrics) RunStarted(job string) { m.Metrics.RunStarted(job); m.write() }
func (m *agentMetrics) RunFinished(r *event.Run) {
	m.Metrics.RunFinished(r)
	m.write()
}
func (m *agentMetrics) SetLastPoint(job string, t time.Time) {
	m.Metrics.SetLastPoint(job, t)
	m.write()
}

// newAgentMetrics starts the metrics endpoint and textfile the plan or
// the flags ask for; both off gives metrics kept in memory only.
func newAgentMetrics(ctx context.Context, g *globals, p *plan.Plan, o *agentOpts) (agent.Metrics, error) {
	listen, textfile := o.metricsListen, o.textfile
	if p.Metrics != nil {
		if listen == "" {
			listen = p.Metrics.Listen
		}
		if textfile == "" {
			textfile = p.Metrics.Textfile
		}
	}
	m := &agentMetrics{Metrics: metrics.New(p.Host), textfile: textfile,
		log: func(err error) { g.log.Warn("metrics textfile", "err", err) }}
	if listen != "" {
		go func() {
			if err := m.Serve(ctx, listen); err != nil && ctx.Err() == nil {
				g.log.Error("metrics endpoint stopped", "listen", listen, "err", err)
			}
		}()
		g.log.Info("serving metrics", "listen", listen)
	}
	if textfile != "" {
		// The lag in the textfile is computed when written: refresh it
		// at the RPO check interval.
		every := agent.DefaultRPOCheck
		if p.Agent != nil && p.Agent.RPOCheck > 0 {
			every = p.Agent.RPOCheck.D()
		}
		go func() {
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					m.write()
				}
			}
		}()
	}
	return m, nil
}
