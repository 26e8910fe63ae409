package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestPlanValidateBrokenAndGood runs `plan validate` on a broken plan,
// which must name each problem by line and column and exit 1, and on a
// good one whose repository really opens with its password file.
func TestPlanValidateBrokenAndGood(t *testing.T) {
	e := newEnv(t)
	initRepo(t, e.path("repo"), testPassword, 0)
	if err := os.WriteFile(e.path("pw"), []byte(testPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(e.path("data"), 0o755); err != nil {
		t.Fatal(err)
	}
	good := fmt.Sprintf(`repositories:
  local:
    location: %[1]s
    password_file: %[2]s
jobs:
  data:
    kind: files
    paths: [%[3]s]
    schedule: "*:0/15"
    rpo: 20m
    before:
      - run: [sh, -c, "sync"]
  verify:
    kind: check
    read_data_subset: 1/7
    schedule: Sun 04:00
`, e.path("repo"), e.path("pw"), e.path("data"))
	os.WriteFile(e.path("good.yaml"), []byte(good), 0o600)
	r := e.mustRun("plan", "validate", "--config", e.path("good.yaml"))
	if got := strings.TrimSpace(string(r.stdout)); got != "plan OK: 2 jobs, 1 repository" {
		t.Errorf("good plan: %v", r)
	}

	// The same plan with a wrong password must fail at the location.
	os.WriteFile(e.path("pw"), []byte("wrong\n"), 0o600)
	r = e.expectCode(1, "plan", "validate", "--config", e.path("good.yaml"))
	if !strings.Contains(string(r.stdout), "good.yaml:3:15: repositories.local.location: cannot open the repository") {
		t.Errorf("wrong password: %v", r)
	}

	broken := `repositories:
  local: {location: /nonexistent/repo, password_file: /nonexistent/pw}
jobs:
  www:
    kind: files
    paths: [/nonexistent/www]
    schedule: "*-*-* 02:00"
    rpo: 1h
    scedule: daily
`
	os.WriteFile(e.path("broken.yaml"), []byte(broken), 0o600)
	r = e.expectCode(1, "plan", "validate", "--config", e.path("broken.yaml"))
	for _, want := range []string{
		"broken.yaml:2:55: repositories.local.password_file: password file: /nonexistent/pw does not exist",
		"broken.yaml:6:13: jobs.www.paths[0]: path: /nonexistent/www does not exist",
		`broken.yaml:8:10: jobs.www.rpo: the schedule "*-*-* 02:00" leaves up to 1d between runs, more than the rpo of 1h`,
		`broken.yaml:9:5: jobs.www.scedule: unknown key "scedule" in a job; did you mean "schedule"?`,
	} {
		if !strings.Contains(string(r.stdout), want) {
			t.Errorf("missing %q in %v", want, r)
		}
	}
	if !strings.Contains(string(r.stderr), "has 4 errors") {
		t.Errorf("stderr: %v", r)
	}

	r = e.expectCode(1, "plan", "validate", "--json", "--config", e.path("broken.yaml"))
	var probs []struct {
		File     string `json:"file"`
		Pos      struct{ Line, Column int }
		Field    string `json:"field"`
		Message  string `json:"message"`
		Severity string `json:"severity"`
	}
	if err := json.Unmarshal(r.stdout, &probs); err != nil {
		t.Fatalf("--json: %v\n%v", err, r)
	}
	if len(probs) != 4 || probs[3].Pos.Line != 9 || probs[3].Pos.Column != 5 || probs[3].Severity != "error" {
		t.Errorf("--json problems: %+v", probs)
	}
}

func TestPlanShow(t *testing.T) {
	e := newEnv(t)
	os.WriteFile(e.path("plan.yaml"), []byte(`repositories:
  local: {location: /r, password_file: /p}
jobs:
  nightly:
    kind: files
    paths: [/srv]
    schedule: "*-*-* 02:00:00"
    rpo: 25h
    before:
      - stop: nginx.service
      - fsfreeze: /srv
        max: 20s
    after:
      - run: /usr/local/bin/done
`), 0o600)
	r := e.with("REWIND_CONFIG", e.path("plan.yaml")).mustRun("plan", "show", "nightly")
	for _, want := range []string{
		"job nightly (files) -> repository local",
		"  next run:  ",
		"    1. before     systemctl stop nginx.service",
		"    2. before     fsfreeze --freeze /srv  (at most 20s)",
		"    3. main       rewind backup /srv",
		"    4. after      fsfreeze --unfreeze /srv  (added by rewind, also on failure)",
		"    5. after      systemctl start nginx.service  (added by rewind, also on failure)",
		"    6. after      run /usr/local/bin/done",
	} {
		if !strings.Contains(string(r.stdout), want) {
			t.Errorf("missing %q in %v", want, r)
		}
	}
	r = e.mustRun("plan", "show", "--json", "--config", e.path("plan.yaml"))
	var jobs []PlanShowJob
	if err := json.Unmarshal(r.stdout, &jobs); err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 1 || len(jobs[0].NextRuns) != 3 || len(jobs[0].Steps) != 6 || !jobs[0].Steps[3].Implicit {
		t.Errorf("--json: %s", r.stdout)
	}
	e.expectCode(1, "plan", "show", "nosuchjob", "--config", e.path("plan.yaml"))
}
