package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/testutil"
)

// jsonTimelineSource is the strict copy of `timeline --json`'s elements.
type jsonTimelineSource struct {
	Hostname string   `json:"hostname"`
	Kind     string   `json:"kind"`
	Name     string   `json:"name"`
	Paths    []string `json:"paths"`
	SystemID string   `json:"system_identifier"`
	DataDir  string   `json:"data_directory"`
	ServerID uint32   `json:"server_id"`
	Ranges   []struct {
		From              time.Time  `json:"from"`
		To                time.Time  `json:"to"`
		Continuous        bool       `json:"continuous"`
		Snapshots         int        `json:"snapshots"`
		LargestGapSeconds float64    `json:"largest_gap_seconds"`
		WALArchivedUpTo   *time.Time `json:"wal_archived_up_to"`
		BinlogStoredUpTo  *time.Time `json:"binlog_stored_up_to"`
	} `json:"ranges"`
	Gaps []struct {
		RestorableUntil time.Time  `json:"restorable_until"`
		RestorableAgain *time.Time `json:"restorable_again"`
		SnapshotID      string     `json:"snapshot_id"`
		MissingFirst    string     `json:"missing_first"`
		MissingLast     string     `json:"missing_last"`
		Description     string     `json:"description"`
	} `json:"gaps"`
	Switches []struct {
		Timeline uint32    `json:"timeline"`
		Parent   uint32    `json:"parent"`
		LSN      string    `json:"lsn"`
		Reason   string    `json:"reason"`
		Created  time.Time `json:"created"`
	} `json:"timeline_switches"`
	Timeline uint32 `json:"timeline"`
	At       *struct {
		Time           time.Time  `json:"time"`
		Restorable     bool       `json:"restorable"`
		SnapshotID     string     `json:"snapshot_id"`
		Shows          *time.Time `json:"shows"`
		ReplayWALTo    *time.Time `json:"replay_wal_to"`
		ReplayBinlogTo *time.Time `json:"replay_binlog_to"`
		SecondsBefore  float64    `json:"seconds_before"`
		Earliest       *time.Time `json:"earliest"`
		Note           string     `json:"note"`
	} `json:"at"`
}

func init() { schemaTypes["timeline.source"] = reflect.TypeFor[jsonTimelineSource]() }

// timelineJSON runs `timeline --json` with args.
func timelineJSON(t *testing.T, e *env, args ...string) []jsonTimelineSource {
	t.Helper()
	var out []jsonTimelineSource
	checkDoc(t, "timeline.source", e.mustRun(append([]string{"timeline", "--json"}, args...)...).stdout, &out)
	return out
}

func findSource(t *testing.T, srcs []jsonTimelineSource, kind, name string) jsonTimelineSource {
	t.Helper()
	for _, s := range srcs {
		if s.Kind == kind && s.Name == name {
			return s
		}
	}
	t.Fatalf("no %s source %q in %+v", kind, name, srcs)
	return jsonTimelineSource{}
}

// snapshotAsOf returns the snapshots (newest last) with the moment each
// shows: the end of its capture.
func snapshotsAsOf(t *testing.T, e *env) map[string]time.Time {
	t.Helper()
	var sns []struct {
		ID      string    `json:"id"`
		Time    time.Time `json:"time"`
		Summary *struct {
			BackupEnd time.Time `json:"backup_end"`
		} `json:"summary"`
	}
	if err := json.Unmarshal(e.mustRun("snapshots", "--json").stdout, &sns); err != nil {
		t.Fatal(err)
	}
	out := map[string]time.Time{}
	for _, s := range sns {
		out[s.ID] = s.Time
		if s.Summary != nil && s.Summary.BackupEnd.After(s.Time) {
			out[s.ID] = s.Summary.BackupEnd
		}
	}
	return out
}

// walIndexFiles lists the repository's WAL index files.
func walIndexFiles(t *testing.T, p *pgRepo) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(p.repo, "wal"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// TestTimeline: files in two path sets and a PostgreSQL cluster that
// archives its WAL into the repository, with a base backup; the timeline
// shows every source, the cluster's range starts at the backup's end,
// --at picks the snapshot restore --at would, and a WAL segment whose
// index entry is gone shows as a named gap.
func TestTimeline(t *testing.T) {
	p := newPgRepo(t)
	e := p.env(t)

	// Files: /a backed up twice with a label between, /b and /c together once.
	a, b, c := e.path("a"), e.path("b"), e.path("c")
	for _, d := range []string{a, b, c} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "f"), []byte("one"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e.mustRun("backup", a)
	e.mustRun("backup", b, c)
	e.mustRun("mark", "before-upgrade")
	if err := os.WriteFile(filepath.Join(a, "f"), []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.mustRun("backup", a)
	asOf := snapshotsAsOf(t, e)

	// PostgreSQL: a base backup, then WAL after it. From here on what
	// writes to the repository runs as the cluster's user, as
	// archive_command does.
	p.chown(t)
	pg := testutil.StartPostgres(t, testutil.PGOptions{ArchiveCommand: p.archiveCommand()})
	backupAs := func() {
		t.Helper()
		if r := p.runAs(t, pg, p.dir, "pg", "backup", "--dsn", pg.DSN(), "--fast"); r.code != 0 {
			t.Fatalf("pg backup: %v", r)
		}
	}
	backupAs()
	names := switchWAL(t, pg, 1)
	waitArchived(t, pg, names[0])

	srcs := timelineJSON(t, e)
	if len(srcs) != 3 {
		t.Fatalf("want 3 sources, got %+v", srcs)
	}
	fa := findSource(t, srcs, "files", a)
	if len(fa.Ranges) != 1 || fa.Ranges[0].Snapshots != 2 || fa.Ranges[0].Continuous {
		t.Errorf("files %s: %+v", a, fa.Ranges)
	}
	fbc := findSource(t, srcs, "files", b+", "+c)
	if !slices.Equal(fbc.Paths, []string{b, c}) || len(fbc.Ranges) != 1 || fbc.Ranges[0].Snapshots != 1 {
		t.Errorf("files %s, %s: %+v", b, c, fbc)
	}
	ps := findSource(t, srcs, "postgres", "main")
	newAsOf := snapshotsAsOf(t, e)
	var backupID string
	for id := range newAsOf {
		if _, ok := asOf[id]; !ok {
			backupID = id
		}
	}
	if ps.DataDir != pg.DataDir || len(ps.Ranges) != 1 || !ps.Ranges[0].Continuous || ps.Ranges[0].WALArchivedUpTo == nil || len(ps.Gaps) != 0 {
		t.Fatalf("postgres source: %+v", ps)
	}
	if !ps.Ranges[0].From.Equal(newAsOf[backupID]) {
		t.Errorf("postgres range starts at %v, the base backup %s ended at %v", ps.Ranges[0].From, backupID, newAsOf[backupID])
	}
	if ps.Ranges[0].To.Before(ps.Ranges[0].From) {
		t.Errorf("postgres range ends before it starts: %+v", ps.Ranges[0])
	}
	// restore --at without a path puts back the files, and leaves the
	// cluster to pg restore.
	rr := e.mustRun("restore", "--at", "now", "--target", e.path("everything"))
	if !strings.Contains(string(rr.stdout)+string(rr.stderr), pg.DataDir+" is a PostgreSQL cluster") {
		t.Errorf("restore --at does not say it leaves the cluster out:\n%s", rr)
	}
	if _, err := os.Lstat(e.path("everything", pg.DataDir)); err == nil {
		t.Errorf("restore --at restored the PostgreSQL data directory as files")
	}
	if _, err := os.Lstat(e.path("everything", a)); err != nil {
		t.Errorf("restore --at did not restore %s: %v", a, err)
	}
	text := string(e.mustRun("timeline").stdout)
	for _, want := range []string{a, b + ", " + c, "postgres", "WAL archived up to"} {
		if !strings.Contains(text, want) {
			t.Errorf("timeline does not say %q:\n%s", want, text)
		}
	}

	// --at the label: /a's first snapshot, as restore --at picks it; /b,
	// /c's only one; PostgreSQL not yet backed up then.
	srcs = timelineJSON(t, e, "--at", "before-upgrade")
	fa = findSource(t, srcs, "files", a)
	var first string
	for id, tm := range asOf {
		if first == "" || tm.Before(asOf[first]) {
			first = id
		}
	}
	if fa.At == nil || !fa.At.Restorable || fa.At.SnapshotID != first {
		t.Errorf("at the label, %s: %+v, want snapshot %s", a, fa.At, first)
	}
	ps = findSource(t, srcs, "postgres", "main")
	if ps.At == nil || ps.At.Restorable || ps.At.Earliest == nil || !ps.At.Earliest.Equal(newAsOf[backupID]) {
		t.Errorf("at the label, postgres: %+v", ps.At)
	}
	out := string(e.mustRun("timeline", "--at", "before-upgrade").stdout)
	if !strings.Contains(out, "snapshot "+first[:8]) || !strings.Contains(out, "not restorable to") {
		t.Errorf("timeline --at:\n%s", out)
	}
	// --at now: the base backup, replaying WAL.
	ps = findSource(t, timelineJSON(t, e, "--at", "now"), "postgres", "main")
	if ps.At == nil || !ps.At.Restorable || ps.At.SnapshotID != backupID || ps.At.ReplayWALTo == nil {
		t.Errorf("at now, postgres: %+v", ps.At)
	}

	// A gap: the index entry of a segment after the backup goes, a
	// second base backup follows.
	before := walIndexFiles(t, p)
	lost := switchWAL(t, pg, 1)[0]
	waitArchived(t, pg, lost)
	var gone string
	for _, f := range walIndexFiles(t, p) {
		if !slices.Contains(before, f) {
			gone = f
		}
	}
	if gone == "" {
		t.Fatal("the push of the segment wrote no WAL index file")
	}
	if err := os.Remove(filepath.Join(p.repo, "wal", gone)); err != nil {
		t.Fatal(err)
	}
	more := switchWAL(t, pg, 1)
	waitArchived(t, pg, more[0])
	backupAs()
	more = switchWAL(t, pg, 1)
	waitArchived(t, pg, more[0])

	ps = findSource(t, timelineJSON(t, e), "postgres", "main")
	if len(ps.Ranges) != 2 || len(ps.Gaps) != 1 {
		t.Fatalf("after losing %s: %+v", lost, ps)
	}
	g := ps.Gaps[0]
	if g.MissingFirst != lost || g.RestorableAgain == nil || !g.RestorableAgain.Equal(ps.Ranges[1].From) || !g.RestorableUntil.Equal(ps.Ranges[0].To) || !strings.Contains(g.Description, lost) {
		t.Errorf("gap: %+v, want %s missing", g, lost)
	}
	text = string(e.mustRun("timeline").stdout)
	if !strings.Contains(text, "gap: segment") || !strings.Contains(text, lost) || !strings.Contains(text, "again from the next base backup") {
		t.Errorf("timeline does not name the gap:\n%s", text)
	}

	// Bad input: a moment that is neither a time nor a label.
	r := e.expectCode(1, "timeline", "--at", "yesterday-ish")
	if !strings.Contains(string(r.stderr), "no label is called") {
		t.Errorf("bad --at: %s", r.stderr)
	}
	// Another host: nothing backed up.
	if out := string(e.mustRun("timeline", "--host", "nosuchhost").stdout); !strings.Contains(out, "nothing backed up") {
		t.Errorf("another host: %s", out)
	}
}
