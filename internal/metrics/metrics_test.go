package metrics

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/testutil"
)

var t0 = time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)

// promtoolCheck runs the real `promtool check metrics` on text and fails
// the test on any problem it reports.
func promtoolCheck(t *testing.T, text []byte) {
	t.Helper()
	promtool := testutil.RequireTool(t, "promtool")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Fatalf("promtool check metrics: %v\n%s\n--- input:\n%s", err, out, text)
	}
}

// parse reads the text format into metric families.
func parse(t *testing.T, text []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("parse metrics: %v\n%s", err, text)
	}
	return mfs
}

// value returns the value of name's series whose labels include want,
// and whether there is one.
func value(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		}
	}
	return 0, false
}

func scrape(t *testing.T, h http.Handler) []byte {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("scrape: %v %s", err, resp.Status)
	}
	return b
}

// sample is a Metrics with two jobs: www saved a snapshot, nightly
// failed after a success, and a third run of www is in progress.
func sample(now time.Time) *Metrics {
	m := newMetrics("web1", func() time.Time { return now })
	m.SetTarget("www", 10*time.Minute)
	m.SetTarget("nightly", 0)
	m.RunStarted("www")
	m.RunFinished(&event.Run{Host: "web1", Job: "www", Start: t0, End: t0.Add(90 * time.Second), Result: event.ResultSuccess,
		Snapshot: "4f2a9c01", Files: 1200, Bytes: 5 << 20, Added: 4096})
	m.RunFinished(&event.Run{Host: "web1", Job: "nightly", Start: t0, End: t0.Add(time.Hour), Result: event.ResultWarning,
		Snapshot: "77aa", Files: 10, Bytes: 100, Added: 1})
	m.RunStarted("nightly")
	m.RunFinished(&event.Run{Host: "web1", Job: "nightly", Start: t0.Add(2 * time.Hour), End: t0.Add(2*time.Hour + 5*time.Second), Result: event.ResultFailed,
		Error: "repository unreachable"})
	m.RunStarted("www")
	return m
}

func TestEndpoint(t *testing.T) {
	now := t0.Add(2*time.Hour + 90*time.Second)
	m := sample(now)
	text := scrape(t, m.Handler())
	promtoolCheck(t, text)
	mfs := parse(t, text)

	www := map[string]string{"host": "web1", "job": "www"}
	nightly := map[string]string{"host": "web1", "job": "nightly"}
	with := func(l map[string]string, k, v string) map[string]string {
		c := map[string]string{k: v}
		for a, b := range l {
			c[a] = b
		}
		return c
	}
	end := float64(t0.Add(90 * time.Second).Unix())
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"rewind_job_last_success_timestamp_seconds", www, end},
		{"rewind_job_last_run_timestamp_seconds", www, end},
		{"rewind_job_last_run_success", www, 1},
		{"rewind_job_last_run_duration_seconds", www, 90},
		{"rewind_job_files", www, 1200},
		{"rewind_job_bytes", www, 5 << 20},
		{"rewind_job_bytes_added", www, 4096},
		{"rewind_job_runs_total", with(www, "result", "success"), 1},
		{"rewind_job_runs_total", with(www, "result", "failed"), 0},
		{"rewind_job_rpo_target_seconds", www, 600},
		{"rewind_job_rpo_lag_seconds", www, 2 * 3600},
		{"rewind_job_running", www, 1},

		{"rewind_job_last_success_timestamp_seconds", nightly, float64(t0.Add(time.Hour).Unix())},
		{"rewind_job_last_run_timestamp_seconds", nightly, float64(t0.Add(2*time.Hour + 5*time.Second).Unix())},
		{"rewind_job_last_run_success", nightly, 0},
		{"rewind_job_last_run_duration_seconds", nightly, 5},
		{"rewind_job_files", nightly, 10}, // from the warning run: the failed one saved nothing
		{"rewind_job_runs_total", with(nightly, "result", "warning"), 1},
		{"rewind_job_runs_total", with(nightly, "result", "failed"), 1},
		{"rewind_job_runs_total", with(nightly, "result", "success"), 0},
		{"rewind_job_rpo_lag_seconds", nightly, 3600 + 90},
		{"rewind_job_running", nightly, 0},
	}
	for _, c := range checks {
		got, ok := value(mfs, c.name, c.labels)
		if !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if _, ok := value(mfs, "rewind_job_rpo_target_seconds", nightly); ok {
		t.Error("nightly has an RPO target series without a target")
	}
	if _, ok := value(mfs, "go_goroutines", nil); !ok {
		t.Error("the endpoint lacks the Go runtime metrics")
	}
	if _, ok := value(mfs, "process_resident_memory_bytes", nil); !ok {
		t.Error("the endpoint lacks the process metrics")
	}
}

func TestLagAtScrapeTime(t *testing.T) {
	now := t0
	m := newMetrics("web1", func() time.Time { return now })
	m.SetTarget("db", time.Hour)
	lag := func() (float64, bool) {
		return value(parse(t, scrape(t, m.Handler())), "rewind_job_rpo_lag_seconds", map[string]string{"job": "db"})
	}
	if _, ok := lag(); ok {
		t.Fatal("a lag without a restorable point")
	}
	m.SetLastPoint("db", t0.Add(-time.Minute))
	if v, _ := lag(); v != 60 {
		t.Errorf("lag %v, want 60", v)
	}
	now = now.Add(time.Hour)
	if v, _ := lag(); v != 3660 {
		t.Errorf("lag an hour later %v, want 3660", v)
	}
	m.SetLastPoint("db", t0.Add(-time.Hour)) // older: ignored
	m.SetLastPoint("db", now.Add(-5*time.Second))
	if v, _ := lag(); v != 5 {
		t.Errorf("lag after a new point %v, want 5", v)
	}
}

func TestRemoveJob(t *testing.T) {
	m := sample(t0.Add(3 * time.Hour))
	m.RemoveJob("www")
	text := scrape(t, m.Handler())
	promtoolCheck(t, text)
	if bytes.Contains(text, []byte(`job="www"`)) {
		t.Errorf("www still has series:\n%s", text)
	}
	if !bytes.Contains(text, []byte(`job="nightly"`)) {
		t.Error("nightly lost its series")
	}
}

func TestTextfile(t *testing.T) {
	m := sample(t0.Add(3 * time.Hour))
	dir := t.TempDir()
	path := filepath.Join(dir, "rewind.prom")
	if err := m.WriteTextfile(path); err != nil {
		t.Fatal(err)
	}
	old, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	promtoolCheck(t, first)
	mfs := parse(t, first)
	if v, ok := value(mfs, "rewind_job_files", map[string]string{"job": "www"}); !ok || v != 1200 {
		t.Errorf("rewind_job_files{job=www} = %v %v", v, ok)
	}
	if _, ok := mfs["go_goroutines"]; ok {
		t.Error("the textfile has the Go runtime metrics, which node_exporter has of its own")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644 for node_exporter", fi.Mode().Perm())
	}

	// A second write replaces the file whole: a reader that opened the
	// first one still reads all of it, and nothing else is left behind.
	m.RunFinished(&event.Run{Job: "www", Start: t0, End: t0.Add(time.Hour), Result: event.ResultSuccess, Snapshot: "x", Files: 7})
	if err := m.WriteTextfile(path); err != nil {
		t.Fatal(err)
	}
	still, err := io.ReadAll(old)
	if err != nil || !bytes.Equal(still, first) {
		t.Errorf("the first file changed under its reader (%v)", err)
	}
	second, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	promtoolCheck(t, second)
	if v, _ := value(parse(t, second), "rewind_job_files", map[string]string{"job": "www"}); v != 7 {
		t.Errorf("after the second write rewind_job_files{job=www} = %v, want 7", v)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("files in the folder: %v, want only rewind.prom", names)
	}
	if err := m.WriteTextfile(filepath.Join(dir, "missing", "rewind.prom")); err == nil {
		t.Error("writing into a missing folder succeeded")
	}
}

func TestServe(t *testing.T) {
	m := sample(t0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- m.ServeListener(ctx, l) }()
	resp, err := http.Get("http://" + l.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "rewind_job_runs_total") {
		t.Errorf("/metrics:\n%s", body)
	}
	cancel()
	if err := <-served; err != nil {
		t.Errorf("Serve after cancel: %v", err)
	}
	// An address in use is an error, at once.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	if err := m.Serve(context.Background(), busy.Addr().String()); err == nil {
		t.Error("Serve on an address in use succeeded")
	}
}

// TestDrillMetrics: a successful drill sets the drilled host's RTO, its
// phases and the time of its success; a failed one only marks the last
// run failed and keeps the measured figures.
func TestDrillMetrics(t *testing.T) {
	m := newMetrics("agent1", func() time.Time { return t0 })
	ok := &event.Run{Host: "agent1", Job: "weekly-drill", Kind: "drill", Result: event.ResultSuccess, Start: t0, End: t0.Add(time.Minute),
		Snapshot: "abc", Report: []byte(`{"hostname":"web1"}`),
		Phases: []event.Phase{{Name: "restore", Duration: 30 * time.Second}, {Name: "boot", Duration: 20 * time.Second}, {Name: "probes", Duration: 2 * time.Second}}}
	m.RunFinished(ok)
	failed := *ok
	failed.Result, failed.End = event.ResultFailed, t0.Add(2*time.Hour)
	m.RunFinished(&failed)
	var buf bytes.Buffer
	path := filepath.Join(t.TempDir(), "m.prom")
	if err := m.WriteTextfile(path); err != nil {
		t.Fatal(err)
	}
	text, _ := os.ReadFile(path)
	buf.Write(text)
	promtoolCheck(t, buf.Bytes())
	mfs := parse(t, buf.Bytes())
	web1 := map[string]string{"host": "web1"}
	for name, want := range map[string]float64{
		"rewind_drill_rto_seconds":                    52,
		"rewind_drill_last_success_timestamp_seconds": float64(t0.Add(time.Minute).Unix()),
		"rewind_drill_last_run_success":               0,
	} {
		if v, ok := value(mfs, name, web1); !ok || v != want {
			t.Errorf("%s{host=web1} = %v (%v), want %v", name, v, ok, want)
		}
	}
	if v, ok := value(mfs, "rewind_drill_phase_seconds", map[string]string{"host": "web1", "phase": "boot"}); !ok || v != 20 {
		t.Errorf("boot phase %v (%v), want 20", v, ok)
	}
	if _, ok := value(mfs, "rewind_job_rpo_lag_seconds", nil); ok {
		t.Error("a drill set a restorable point")
	}
}
