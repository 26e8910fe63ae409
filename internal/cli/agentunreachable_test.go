package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rewind-backup/rewind/internal/agent"
	"github.com/rewind-backup/rewind/internal/event"
)

// TestAgentRepositoryUnreachable takes the repository away while the
// agent runs a job with a "stop" before step and an always-run "restart"
// after step (command steps standing in for units; docs/STEPS.md). The
// backup fails; the restart still runs after every stop; the failure
// reaches the webhook and the metrics; the run waits in the outbox and is
// in the repository's event log once the repository is back.
func TestAgentRepositoryUnreachable(t *testing.T) {
	var mu sync.Mutex
	var kinds []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		if json.Unmarshal(b, &m) == nil && m["job"] == "www" {
			mu.Lock()
			kinds = append(kinds, m["kind"].(string))
			mu.Unlock()
		}
	}))
	defer srv.Close()
	notified := func(kind string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, k := range kinds {
			if k == kind {
				return true
			}
		}
		return false
	}
	a := newAgentEnv(t)
	order := a.path("order")
	textfile := a.path("rewind.prom")
	step := func(word string) string {
		return `[sh, -c, "echo ` + word + ` >> ` + order + `"]`
	}
	a.writePlan(a.filesJob("www", "*:*:0/2",
		"    retry: {attempts: 1}\n    before:\n      - run: "+step("stop")+"\n    after:\n      - run: "+step("restart")+"\n        always: true\n"),
		"notify:\n  webhook: "+srv.URL+"\n  on: [failure, recovery]\nmetrics:\n  textfile: "+textfile+"\n")
	p := a.start()
	a.waitFor("a first snapshot", func() bool { return a.snapshotsTagged("job:www") >= 1 })

	// A run under way when the folder goes fails too: the local backend
	// does not make a vanished repository folder again.
	away := a.repo + ".away"
	if err := os.Rename(a.repo, away); err != nil {
		t.Fatal(err)
	}
	a.waitFor("a failure notification", func() bool { return notified("failure") })
	outbox := agent.Store{Dir: a.state}.OutboxDir("www")
	a.waitFor("the failed run in the outbox", func() bool {
		m, _ := filepath.Glob(filepath.Join(outbox, "*.json"))
		return len(m) > 0
	})
	prom, err := os.ReadFile(textfile)
	if err != nil {
		t.Fatal(err)
	}
	if want := `rewind_job_last_run_success{host="testhost",job="www"} 0`; !strings.Contains(string(prom), want) {
		t.Errorf("the textfile lacks %s:\n%s", want, prom)
	}
	if err := os.Rename(away, a.repo); err != nil {
		t.Fatal(err)
	}
	a.waitFor("a recovery notification", func() bool { return notified("recovery") })
	a.waitFor("the outbox to empty", func() bool {
		m, _ := filepath.Glob(filepath.Join(outbox, "*.json"))
		return len(m) == 0
	})
	p.stop()

	evs := a.events("--job", "www")
	failed := count(evs, func(e event.Stored) bool {
		return e.Result == event.ResultFailed && strings.Contains(e.Error, "repo")
	})
	if failed == 0 {
		t.Errorf("no failed run naming the repository in the event log: %+v", evs)
	}
	b, err := os.ReadFile(order)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(b))
	for i := 0; i < len(lines); i += 2 {
		if lines[i] != "stop" || i+1 >= len(lines) || lines[i+1] != "restart" {
			t.Fatalf("steps ran as %q: every stop must be followed by its restart", lines)
		}
	}
}
