// Package metrics keeps the agent's Prometheus metrics, one series per
// job, and exposes them on an HTTP endpoint or as a node_exporter
// textfile. docs/AGENT.md ("Metrics") lists them with example alert rules.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"

	"github.com/rewind-backup/rewind/internal/event"
)

// Results counted by rewind_job_runs_total.
var results = []string{event.ResultSuccess, event.ResultWarning, event.ResultFailed}

// Metrics holds the job metrics of one host. It is safe for concurrent
// use.
type Metrics struct {
	host string
	now  func() time.Time

	// reg has the job metrics only: it is what the textfile holds.
	// endpoint adds the Go runtime and process collectors for /metrics.
	reg, endpoint *prometheus.Registry

	lastSuccess, lastRun, lastOK, duration *prometheus.GaugeVec
	files, bytes, added                    *prometheus.GaugeVec
	target, running                        *prometheus.GaugeVec
	runs                                   *prometheus.CounterVec
	lag                                    *lagCollector
	drill                                  drillGauges
}

// New returns the metrics of host's jobs, labelled host and job.
func New(host string) *Metrics { return newMetrics(host, time.Now) }

func newMetrics(host string, now func() time.Time) *Metrics {
	m := &Metrics{host: host, now: now, reg: prometheus.NewRegistry()}
	gauge := func(name, help string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, []string{"host", "job"})
		m.reg.MustRegister(g)
		return g
	}
	m.lastSuccess = gauge("rewind_job_last_success_timestamp_seconds", "End of the job's last run that ended well (success or warning), in Unix seconds.")
	m.lastRun = gauge("rewind_job_last_run_timestamp_seconds", "End of the job's last run, in Unix seconds.")
	m.lastOK = gauge("rewind_job_last_run_success", "1 if the job's last run ended well (success or warning), 0 if it failed.")
	m.duration = gauge("rewind_job_last_run_duration_seconds", "How long the job's last run took.")
	m.files = gauge("rewind_job_files", "Files in the snapshot of the job's last run that saved one.")
	m.bytes = gauge("rewind_job_bytes", "Bytes in the snapshot of the job's last run that saved one.")
	m.added = gauge("rewind_job_bytes_added", "Bytes the job's last run that saved a snapshot added to the repository.")
	m.target = gauge("rewind_job_rpo_target_seconds", "The job's RPO target: the most time that may pass without a new restorable point.")
	m.running = gauge("rewind_job_running", "1 while a run of the job is in progress.")
	m.runs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rewind_job_runs_total",
		Help: "Runs of the job that ended, by result: success, warning (snapshot saved, some files unreadable) or failed.",
	}, []string{"host", "job", "result"})
	m.reg.MustRegister(m.runs)
	m.drill = newDrillGauges(m.reg)
	m.lag = &lagCollector{
		desc:   prometheus.NewDesc("rewind_job_rpo_lag_seconds", "Time since the job's newest restorable point, at scrape time.", []string{"host", "job"}, nil),
		host:   host,
		now:    now,
		points: map[string]time.Time{},
	}
	m.reg.MustRegister(m.lag)

	m.endpoint = prometheus.NewRegistry()
	m.endpoint.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// SetTarget makes job known with its RPO target (0: none). Call it for
// each job of the plan, at start and on reload: it starts the job's run
// counters at 0, so that rates work from the first run.
func (m *Metrics) SetTarget(job string, rpo time.Duration) {
	if rpo > 0 {
		m.target.WithLabelValues(m.host, job).Set(rpo.Seconds())
	} else {
		m.target.DeleteLabelValues(m.host, job)
	}
	for _, r := range results {
		m.runs.WithLabelValues(m.host, job, r)
	}
	m.running.WithLabelValues(m.host, job)
}

// RunStarted marks a run of job in progress.
func (m *Metrics) RunStarted(job string) {
	m.running.WithLabelValues(m.host, job).Set(1)
}

// RunFinished records an ended run. A run that saved a snapshot also
// sets the job's newest restorable point to its end, and its files and
// bytes.
func (m *Metrics) RunFinished(r *event.Run) {
	job := r.Job
	m.running.WithLabelValues(m.host, job).Set(0)
	result := r.Result
	switch result {
	case event.ResultSuccess, event.ResultWarning, event.ResultFailed:
	default:
		result = event.ResultFailed
	}
	m.runs.WithLabelValues(m.host, job, result).Inc()
	end := unix(r.End)
	m.lastRun.WithLabelValues(m.host, job).Set(end)
	if !r.Start.IsZero() && !r.End.IsZero() {
		m.duration.WithLabelValues(m.host, job).Set(r.End.Sub(r.Start).Seconds())
	}
	if result == event.ResultFailed {
		m.lastOK.WithLabelValues(m.host, job).Set(0)
	} else {
		m.lastOK.WithLabelValues(m.host, job).Set(1)
		m.lastSuccess.WithLabelValues(m.host, job).Set(end)
	}
	if r.Kind == drillKind {
		m.drill.finished(r, m.host)
		return
	}
	if r.Snapshot != "" {
		m.files.WithLabelValues(m.host, job).Set(float64(r.Files))
		m.bytes.WithLabelValues(m.host, job).Set(float64(r.Bytes))
		m.added.WithLabelValues(m.host, job).Set(float64(r.Added))
		m.SetLastPoint(job, r.End)
	}
}

// SetLastPoint sets the time of job's newest restorable point, from
// which rewind_job_rpo_lag_seconds counts. A time older than the one
// known is ignored; the zero time forgets it.
func (m *Metrics) SetLastPoint(job string, t time.Time) {
	m.lag.set(job, t)
}

// RemoveJob drops every series of job (a plan reload removed it).
func (m *Metrics) RemoveJob(job string) {
	l := prometheus.Labels{"host": m.host, "job": job}
	for _, g := range []*prometheus.GaugeVec{m.lastSuccess, m.lastRun, m.lastOK, m.duration, m.files, m.bytes, m.added, m.target, m.running} {
		g.DeletePartialMatch(l)
	}
	m.runs.DeletePartialMatch(l)
	m.lag.set(job, time.Time{})
}

// Handler serves the job metrics, with the agent's Go runtime and
// process metrics, in Prometheus's formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(prometheus.Gatherers{m.reg, m.endpoint}, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Serve serves Handler at /metrics on the listen address until ctx ends.
func (m *Metrics) Serve(ctx context.Context, listen string) error {
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return m.ServeListener(ctx, l)
}

// ServeListener is Serve on a listener the caller opened; it closes it.
func (m *Metrics) ServeListener(ctx context.Context, l net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "rewind agent: metrics at /metrics")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	err := srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		<-done
		return nil
	}
	// Serve failed on its own: let the shutdown goroutine go.
	_ = srv.Close()
	return fmt.Errorf("metrics: %w", err)
}

// WriteTextfile writes the job metrics (without the runtime ones, which
// node_exporter has of its own) to path in the text format, for
// node_exporter's textfile collector: to a temporary file in the same
// folder first, then renamed over path, so that a scrape never reads half
// a file. path should end in .prom.
func (m *Metrics) WriteTextfile(path string) error {
	mfs, err := m.reg.Gather()
	if err != nil {
		return fmt.Errorf("metrics textfile: %w", err)
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	// The temporary name does not end in .prom: node_exporter skips it.
	f, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return fmt.Errorf("metrics textfile: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename, there is nothing to remove
	enc := expfmt.NewEncoder(f, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err = enc.Encode(mf); err != nil {
			break
		}
	}
	if err == nil {
		// node_exporter often runs as another user.
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("metrics textfile %s: %w", path, err)
	}
	return nil
}

// unix is t in Unix seconds, with its fraction.
func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// lagCollector reports the RPO lag of each job with a known restorable
// point, computed when scraped.
type lagCollector struct {
	desc *prometheus.Desc
	host string
	now  func() time.Time

	mu     sync.Mutex
	points map[string]time.Time // mu
}

func (c *lagCollector) set(job string, t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.IsZero() {
		delete(c.points, job)
		return
	}
	if old, ok := c.points[job]; !ok || t.After(old) {
		c.points[job] = t
	}
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for job, t := range c.points {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, now.Sub(t).Seconds(), c.host, job)
	}
}
