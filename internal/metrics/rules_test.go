package metrics

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/testutil"
)

// alertRules returns the example rules of docs/AGENT.md: the yaml block
// of its Metrics section that holds "groups:".
func alertRules(t *testing.T) []byte {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "AGENT.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, metrics, ok := strings.Cut(string(doc), "\n## Metrics\n")
	if !ok {
		t.Fatal("docs/AGENT.md has no Metrics section")
	}
	metrics, _, _ = strings.Cut(metrics, "\n## ")
	for _, block := range strings.Split(metrics, "```yaml\n")[1:] {
		block, _, _ = strings.Cut(block, "```")
		if strings.HasPrefix(block, "groups:") {
			return []byte(block)
		}
	}
	t.Fatal("docs/AGENT.md's Metrics section has no rules (a yaml block starting with groups:)")
	return nil
}

// rulesTests are `promtool test rules` cases for the example rules: each
// alert fires on the series that should make it, and not before.
const rulesTests = `rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'rewind_job_last_run_success{host="web1",job="www"}'
        values: '1 1 0 0 0'
      - series: 'rewind_job_rpo_lag_seconds{host="web1",job="www"}'
        values: '60+60x10'
      - series: 'rewind_job_rpo_target_seconds{host="web1",job="www"}'
        values: '300x10'
      - series: 'rewind_job_rpo_target_seconds{host="web1",job="db"}'
        values: '3600x80'
      - series: 'rewind_job_last_success_timestamp_seconds{host="web1",job="nightly"}'
        values: '-172400x10' # time() - v passes 2 days between 5m and 10m
    alert_rule_test:
      - eval_time: 1m
        alertname: RewindJobFailed
        exp_alerts: []
      - eval_time: 2m
        alertname: RewindJobFailed
        exp_alerts:
          - exp_labels: {severity: warning, host: web1, job: www}
            exp_annotations:
              summary: "rewind job www on web1 failed"
              description: "The last run of www failed; ` + "`rewind events --job www`" + ` on the host says why."
      - eval_time: 4m
        alertname: RewindRPOExceeded
        exp_alerts: []
      - eval_time: 5m
        alertname: RewindRPOExceeded
        exp_alerts:
          - exp_labels: {severity: critical, host: web1, job: www}
            exp_annotations:
              summary: "rewind job www on web1 is behind its RPO"
              description: "The newest restorable point is 6m 0s old, more than the job's RPO target."
      - eval_time: 30m
        alertname: RewindRPONoRestorablePoint
        exp_alerts: []
      - eval_time: 70m
        alertname: RewindRPONoRestorablePoint
        exp_alerts:
          - exp_labels: {severity: warning, host: web1, job: db}
            exp_annotations:
              summary: "rewind job db on web1 has no restorable point"
      - eval_time: 5m
        alertname: RewindNoRecentSuccess
        exp_alerts: []
      - eval_time: 10m
        alertname: RewindNoRecentSuccess
        exp_alerts:
          - exp_labels: {severity: critical, host: web1, job: nightly}
            exp_annotations:
              summary: "rewind job nightly on web1 has not succeeded for 2 schedule periods"
`

func TestAlertRules(t *testing.T) {
	promtool := testutil.RequireTool(t, "promtool")
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yml")
	if err := os.WriteFile(rules, alertRules(t), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := filepath.Join(dir, "rules_test.yml")
	if err := os.WriteFile(tests, []byte(rulesTests), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"check", "rules", rules}, {"test", "rules", tests}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil || bytes.Contains(out, []byte("FAILED")) {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
