package cli

// The --json output is a contract documented in docs/JSON.md. This file
// holds the test's own strict copy of every documented object, a reader
// for the field tables of docs/JSON.md, and the checks that tie the three
// together: output against docs (field names, types, required fields),
// output against the strict structs (json.Decoder with
// DisallowUnknownFields), and structs against docs.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

type jsonStatus struct {
	MessageType    string  `json:"message_type"`
	Action         string  `json:"action"`
	SecondsElapsed float64 `json:"seconds_elapsed"`
	PercentDone    float64 `json:"percent_done"`
	FilesDone      int64   `json:"files_done"`
	TotalFiles     int64   `json:"total_files"`
	BytesDone      int64   `json:"bytes_done"`
	TotalBytes     int64   `json:"total_bytes"`
	Scanning       bool    `json:"scanning"`
}

type jsonFileError struct {
	Path  string `json:"path"`
	Error string `json:"error"`
}

// jsonBoundary is a directory --one-file-system did not go into.
type jsonBoundary struct {
	Path string `json:"path"`
	Kind string `json:"kind"`
}

// jsonKindError is an entry a backup could not read.
type jsonKindError struct {
	Path  string `json:"path"`
	Error string `json:"error"`
	Kind  string `json:"kind"`
}

type jsonErrorCounts struct {
	Files       int `json:"files"`
	Directories int `json:"directories"`
	Other       int `json:"other"`
}

type jsonBackupError struct {
	MessageType string `json:"message_type"`
	Path        string `json:"path"`
	Kind        string `json:"kind"`
	Error       string `json:"error"`
}

type jsonBackupSummary struct {
	MessageType string `json:"message_type"`
	SnapshotID  string `json:"snapshot_id"`
	Parent      string `json:"parent"`
	jsonSnapshotSummary
	ErrorCounts     jsonErrorCounts   `json:"error_counts"`
	DurationSeconds float64           `json:"duration_seconds"`
	FilesVanished   int64             `json:"files_vanished"`
	Skipped         []jsonFileError   `json:"skipped"`
	NotCrossed      []jsonBoundary    `json:"not_crossed"`
	FilesTooLarge   int64             `json:"files_too_large"`
	TooLarge        []jsonLargeFile   `json:"too_large"`
	Backend         jsonBackend       `json:"backend"`
	SQLiteSiblings  int64             `json:"sqlite_siblings_left_out"`
	SQLiteStoredRaw []jsonFileError   `json:"sqlite_stored_raw"`
	Image           *jsonImageSummary `json:"image"`
}

// jsonLargeFile is a file --exclude-larger-than left out.
type jsonLargeFile struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// jsonBackend is the "backend" object of summaries (backend_wrap.go).
type jsonBackend struct {
	Requests struct {
		Save   int64 `json:"save"`
		Load   int64 `json:"load"`
		Stat   int64 `json:"stat"`
		Remove int64 `json:"remove"`
		List   int64 `json:"list"`
	} `json:"requests"`
	BytesUp   int64 `json:"bytes_up"`
	BytesDown int64 `json:"bytes_down"`
}

type jsonRestoreSummary struct {
	Backend        jsonBackend     `json:"backend"`
	MessageType    string          `json:"message_type"`
	SnapshotID     string          `json:"snapshot_id"`
	Path           string          `json:"path"`
	FilesRestored  int64           `json:"files_restored"`
	DirsRestored   int64           `json:"dirs_restored"`
	OtherRestored  int64           `json:"other_restored"`
	BytesRestored  int64           `json:"bytes_restored"`
	FilesUnchanged int64           `json:"files_unchanged"`
	FilesVerified  int64           `json:"files_verified"`
	EntriesRemoved int64           `json:"entries_removed"`
	Duration       float64         `json:"duration_seconds"`
	BytesPerSecond float64         `json:"bytes_per_second"`
	DryRun         bool            `json:"dry_run"`
	Errors         []jsonFileError `json:"errors"`
	NotBackedUp    []jsonFileError `json:"not_backed_up"`
	Warnings       []jsonFileError `json:"warnings"`
}

type jsonRestoreDryRun struct {
	MessageType string `json:"message_type"`
	Action      string `json:"action"`
	Path        string `json:"path"`
	Type        string `json:"type"`
	Size        int64  `json:"size"`
	LinkTo      string `json:"link_to"`
}

// jsonSnapshotSummary is the summary a snapshot stores; a backup's
// summary line holds the same counts and more.
type jsonSnapshotSummary struct {
	BackupStart     time.Time       `json:"backup_start"`
	BackupEnd       time.Time       `json:"backup_end"`
	FilesNew        int64           `json:"files_new"`
	FilesChanged    int64           `json:"files_changed"`
	FilesUnchanged  int64           `json:"files_unchanged"`
	DirsNew         int64           `json:"dirs_new"`
	DirsChanged     int64           `json:"dirs_changed"`
	DirsUnchanged   int64           `json:"dirs_unchanged"`
	TotalFiles      int64           `json:"total_files_processed"`
	TotalBytes      int64           `json:"total_bytes_processed"`
	BytesRead       int64           `json:"bytes_read"`
	FilesReread     int64           `json:"files_reread"`
	BytesReread     int64           `json:"bytes_reread"`
	FilesTorn       int64           `json:"files_changed_during_backup"`
	DataBlobs       int64           `json:"data_blobs"`
	TreeBlobs       int64           `json:"tree_blobs"`
	DataAdded       int64           `json:"data_added"`
	DataAddedPacked int64           `json:"data_added_packed"`
	SQLiteCaptured  int64           `json:"sqlite_captured"`
	Errors          []jsonKindError `json:"errors"`
}

type jsonSnapshot struct {
	ID              string               `json:"id"`
	ShortID         string               `json:"short_id"`
	Time            time.Time            `json:"time"`
	Parent          string               `json:"parent"`
	Tree            []string             `json:"tree"`
	Paths           []string             `json:"paths"`
	Hostname        string               `json:"hostname"`
	Username        string               `json:"username"`
	UID             uint32               `json:"uid"`
	GID             uint32               `json:"gid"`
	Tags            []string             `json:"tags"`
	Excludes        []string             `json:"excludes"`
	ProgramVersion  string               `json:"program_version"`
	Protected       bool                 `json:"protected"`
	VerifiedByDrill *time.Time           `json:"verified_by_drill"`
	Original        string               `json:"original"`
	CopiedFrom      string               `json:"copied_from"`
	Rewrite         *jsonRewriteRecord   `json:"rewrite"`
	TaggedFrom      string               `json:"tagged_from"`
	Inventory       string               `json:"inventory"`
	Postgres        *jsonPGInfo          `json:"postgres"`
	SQLite          []jsonSQLiteCapture  `json:"sqlite"`
	MySQL           *jsonMySQLInfo       `json:"mysql"`
	Image           *jsonImageSummary    `json:"image"`
	Summary         *jsonSnapshotSummary `json:"summary"`
}

// jsonSQLiteCapture is an element of a snapshot's "sqlite" field.
type jsonSQLiteCapture struct {
	Path       string    `json:"path"`
	Mode       string    `json:"mode"`
	PageSize   int       `json:"page_size"`
	Pages      int64     `json:"pages"`
	Method     string    `json:"method"`
	CapturedAt time.Time `json:"captured_at"`
	Source     *struct {
		DB  jsonSQLiteFileStat  `json:"database"`
		WAL *jsonSQLiteFileStat `json:"wal"`
	} `json:"source"`
	WALSalts string `json:"wal_salts"`
	Delta    *struct {
		Used         bool   `json:"used"`
		Fallback     string `json:"fallback"`
		ChangedPages int64  `json:"changed_pages"`
		BytesRead    int64  `json:"bytes_read"`
		BytesReused  int64  `json:"bytes_reused"`
	} `json:"delta"`
}

// jsonSQLiteFileStat is a file's size and times in a capture's source.
type jsonSQLiteFileStat struct {
	Size  int64 `json:"size"`
	MTime int64 `json:"mtime_ns"`
	CTime int64 `json:"ctime_ns"`
}

// jsonMySQLInfo is a MariaDB/MySQL backup's "mysql" field.
type jsonMySQLInfo struct {
	Method        string    `json:"method"`
	ServerVersion string    `json:"server_version"`
	ServerID      uint32    `json:"server_id"`
	ServerUUID    string    `json:"server_uuid"`
	DataDir       string    `json:"datadir"`
	GTID          string    `json:"gtid"`
	BinlogFile    string    `json:"binlog_file"`
	BinlogPos     uint64    `json:"binlog_pos"`
	BackupStart   time.Time `json:"backup_start"`
	BackupEnd     time.Time `json:"backup_end"`
	Tool          string    `json:"tool"`
	DumpPath      string    `json:"dump_path"`
	UID           uint32    `json:"uid"`
	GID           uint32    `json:"gid"`
}

// jsonPGInfo is a base backup's "postgres" field.
type jsonPGInfo struct {
	Method         string   `json:"method"`
	Version        int      `json:"version"`
	VersionText    string   `json:"version_text"`
	SystemID       string   `json:"system_identifier"`
	DataDir        string   `json:"data_directory"`
	Timeline       uint32   `json:"timeline"`
	StartLSN       string   `json:"start_lsn"`
	StopLSN        string   `json:"stop_lsn"`
	Label          string   `json:"label"`
	WALSegmentSize uint64   `json:"wal_segment_size"`
	WALFiles       []string `json:"wal_files"`
	TablespaceMap  bool     `json:"tablespace_map"`
	Manifest       bool     `json:"manifest"`
	Amcheck        *struct {
		OK     bool   `json:"ok"`
		Output string `json:"output"`
	} `json:"amcheck"`
	Delta *struct {
		Parent         string `json:"parent"`
		FromLSN        string `json:"from_lsn"`
		ToLSN          string `json:"to_lsn"`
		Used           bool   `json:"used"`
		Fallback       string `json:"fallback"`
		Records        int64  `json:"records"`
		ChangedBlocks  int64  `json:"changed_blocks"`
		SegmentsStored int    `json:"segments_stored"`
		SegmentsLocal  int    `json:"segments_local"`
		Files          int64  `json:"files"`
		BytesRead      int64  `json:"bytes_read"`
		BytesReused    int64  `json:"bytes_reused"`
	} `json:"delta"`
}

// jsonRewriteRecord is a snapshot's "rewrite" field.
type jsonRewriteRecord struct {
	From     string    `json:"from"`
	Time     time.Time `json:"time"`
	Excludes []string  `json:"excludes"`
}

type jsonNode struct {
	MessageType string    `json:"message_type"`
	SnapshotID  string    `json:"snapshot_id"`
	Path        string    `json:"path"`
	Name        string    `json:"name"`
	Type        string    `json:"type"`
	Size        uint64    `json:"size"`
	Mode        string    `json:"mode"`
	UID         uint32    `json:"uid"`
	GID         uint32    `json:"gid"`
	User        string    `json:"user"`
	Group       string    `json:"group"`
	MTime       time.Time `json:"mtime"`
	LinkTarget  string    `json:"link_target"`
	Flags       []string  `json:"flags"`
	NameError   string    `json:"name_error"`
}

type jsonChange struct {
	MessageType string `json:"message_type"`
	Path        string `json:"path"`
	Modifier    string `json:"modifier"`
}

type jsonDiffStatistics struct {
	MessageType  string `json:"message_type"`
	Added        int    `json:"added"`
	Removed      int    `json:"removed"`
	Changed      int    `json:"changed"`
	MetadataOnly int    `json:"metadata_only"`
	Unknown      int    `json:"unknown"`
}

type jsonProblem struct {
	Object string `json:"object"`
	Error  string `json:"error"`
}

type jsonCheckSummary struct {
	Backend        jsonBackend   `json:"backend"`
	MessageType    string        `json:"message_type"`
	Packs          int           `json:"packs"`
	Snapshots      int           `json:"snapshots"`
	Trees          int           `json:"trees"`
	Inventories    int           `json:"inventories"`
	WALFiles       int           `json:"wal_files"`
	DataBlobs      int           `json:"data_blobs"`
	BlobsRead      int           `json:"blobs_read"`
	PacksRead      int           `json:"packs_read"`
	Subset         string        `json:"subset"`
	UnindexedPacks []string      `json:"unindexed_packs"`
	CondemnedPacks int           `json:"condemned_packs"`
	Problems       []jsonProblem `json:"problems"`
	OK             bool          `json:"ok"`
}

type jsonKey struct {
	ID       string    `json:"id"`
	Current  bool      `json:"current"`
	Created  time.Time `json:"created"`
	Hostname string    `json:"hostname"`
	Username string    `json:"username"`
}

type jsonLock struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	Command   string    `json:"command"`
	Hostname  string    `json:"hostname"`
	User      string    `json:"username"`
	PID       int       `json:"pid"`
	Created   time.Time `json:"created"`
	Refreshed time.Time `json:"refreshed"`
	Stale     bool      `json:"stale"`
}

type jsonVersion struct {
	Version       string `json:"version"`
	FormatVersion int    `json:"format_version"`
	Go            string `json:"go"`
	OS            string `json:"os"`
	Arch          string `json:"arch"`
}

type jsonInit struct {
	MessageType string `json:"message_type"`
	ID          string `json:"id"`
	Repository  string `json:"repository"`
}

// jsonPlanProblem is one problem `plan validate --json` prints.
type jsonPlanProblem struct {
	File string `json:"file"`
	Pos  struct {
		Line   int `json:"line"`
		Column int `json:"column"`
	} `json:"pos"`
	Field    string `json:"field"`
	Message  string `json:"message"`
	Severity string `json:"severity"`
}

// jsonPlanJob is one job `plan show --json` prints.
type jsonPlanJob struct {
	Name       string      `json:"name"`
	Kind       string      `json:"kind"`
	Repository string      `json:"repository"`
	Paths      []string    `json:"paths"`
	Schedule   string      `json:"schedule"`
	NextRuns   []time.Time `json:"next_runs"`
	RPO        string      `json:"rpo"`
	Retention  *struct {
		KeepLast    int    `json:"keep_last"`
		KeepHourly  int    `json:"keep_hourly"`
		KeepDaily   int    `json:"keep_daily"`
		KeepWeekly  int    `json:"keep_weekly"`
		KeepMonthly int    `json:"keep_monthly"`
		KeepYearly  int    `json:"keep_yearly"`
		KeepWithin  string `json:"keep_within"`
		Prune       *bool  `json:"prune"`
	} `json:"retention"`
	CopyTo []string `json:"copy_to"`
	Steps  []struct {
		N             int      `json:"n"`
		Phase         string   `json:"phase"`
		Kind          string   `json:"kind"`
		Arg           string   `json:"arg"`
		Command       []string `json:"command"`
		Timeout       string   `json:"timeout"`
		Max           string   `json:"max"`
		Always        bool     `json:"always"`
		Implicit      bool     `json:"implicit"`
		Undo          bool     `json:"undo"`
		RunsOnFailure bool     `json:"runs_on_failure"`
		Description   string   `json:"description"`
	} `json:"steps"`
}

// jsonRun is the record of a job's run (plan run, events, status).
type jsonRun struct {
	Hostname   string    `json:"hostname"`
	Job        string    `json:"job"`
	Kind       string    `json:"kind"`
	Trigger    string    `json:"trigger"`
	Action     string    `json:"action"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	Result     string    `json:"result"`
	Error      string    `json:"error"`
	SnapshotID string    `json:"snapshot_id"`
	Files      int64     `json:"files"`
	Bytes      int64     `json:"bytes"`
	BytesAdded int64     `json:"bytes_added"`
	Steps      []struct {
		Phase      string `json:"phase"`
		Kind       string `json:"kind"`
		Arg        string `json:"arg"`
		Result     string `json:"result"`
		Error      string `json:"error"`
		DurationNS int64  `json:"duration_ns"`
	} `json:"steps"`
	Attempt int `json:"attempt"`
	Phases  []struct {
		Name       string `json:"name"`
		DurationNS int64  `json:"duration_ns"`
	} `json:"phases"`
	Report map[string]any `json:"report"`
}

// jsonStoredRun is one element of `events --json`.
type jsonStoredRun struct {
	jsonRun
	ID string `json:"id"`
}

// jsonStatusReport is what `status --json` prints.
type jsonStatusReport struct {
	StateDir     string     `json:"state_dir"`
	AgentRunning bool       `json:"agent_running"`
	AgentPID     int        `json:"agent_pid"`
	AgentStarted *time.Time `json:"agent_started"`
	Jobs         []struct {
		Job          string     `json:"job"`
		Kind         string     `json:"kind"`
		Schedule     string     `json:"schedule"`
		LastRun      *jsonRun   `json:"last_run"`
		LastSuccess  *time.Time `json:"last_success"`
		NextRun      *time.Time `json:"next_run"`
		LastPoint    *time.Time `json:"last_point"`
		RPOSeconds   float64    `json:"rpo_seconds"`
		LagSeconds   float64    `json:"lag_seconds"`
		RPOState     string     `json:"rpo_state"`
		Failures     int        `json:"consecutive_failures"`
		Running      bool       `json:"running"`
		RunningSince *time.Time `json:"running_since"`
		Error        string     `json:"error"`
	} `json:"jobs"`
}

// jsonInventory is the top of the inventory document `inventory show
// --json` prints; docs/FORMAT.md §15 specifies the objects in it.
type jsonInventory struct {
	Version     int              `json:"version"`
	Hostname    string           `json:"hostname"`
	Time        time.Time        `json:"time"`
	Disks       []map[string]any `json:"disks"`
	Filesystems []map[string]any `json:"filesystems"`
	Fstab       map[string]any   `json:"fstab"`
	Crypttab    map[string]any   `json:"crypttab"`
	MD          map[string]any   `json:"md"`
	LUKS        []map[string]any `json:"luks"`
	LVM         map[string]any   `json:"lvm"`
	Boot        map[string]any   `json:"boot"`
	Kernel      map[string]any   `json:"kernel"`
	OS          map[string]any   `json:"os"`
	HostNames   map[string]any   `json:"host_names"`
	Network     map[string]any   `json:"network"`
	Packages    map[string]any   `json:"packages"`
	Units       []map[string]any `json:"units"`
	Users       []map[string]any `json:"users"`
	Groups      []map[string]any `json:"groups"`
	Crontabs    []map[string]any `json:"crontabs"`
	Warnings    []string         `json:"warnings"`
}

// jsonInventoryDiff is what `inventory diff --json` prints.
type jsonInventoryDiff struct {
	From    string `json:"from"`
	To      string `json:"to"`
	Changes []struct {
		Section string `json:"section"`
		Item    string `json:"item"`
		Change  string `json:"change"`
		Field   string `json:"field"`
		Old     string `json:"old"`
		New     string `json:"new"`
	} `json:"changes"`
}

// schemaTypes maps each schema of docs/JSON.md (its `<!-- schema: NAME -->`
// marker) to the test's strict struct for it.
var schemaTypes = map[string]reflect.Type{
	"status":           reflect.TypeFor[jsonStatus](),
	"backup.error":     reflect.TypeFor[jsonBackupError](),
	"backup.summary":   reflect.TypeFor[jsonBackupSummary](),
	"restore.summary":  reflect.TypeFor[jsonRestoreSummary](),
	"restore.dryrun":   reflect.TypeFor[jsonRestoreDryRun](),
	"snapshot":         reflect.TypeFor[jsonSnapshot](),
	"node":             reflect.TypeFor[jsonNode](),
	"diff.change":      reflect.TypeFor[jsonChange](),
	"diff.statistics":  reflect.TypeFor[jsonDiffStatistics](),
	"check.summary":    reflect.TypeFor[jsonCheckSummary](),
	"key":              reflect.TypeFor[jsonKey](),
	"lock":             reflect.TypeFor[jsonLock](),
	"version":          reflect.TypeFor[jsonVersion](),
	"init.initialized": reflect.TypeFor[jsonInit](),

	"plan.problem":       reflect.TypeFor[jsonPlanProblem](),
	"plan.job":           reflect.TypeFor[jsonPlanJob](),
	"event.run":          reflect.TypeFor[jsonRun](),
	"event.stored":       reflect.TypeFor[jsonStoredRun](),
	"status.report":      reflect.TypeFor[jsonStatusReport](),
	"inventory.document": reflect.TypeFor[jsonInventory](),
	"inventory.diff":     reflect.TypeFor[jsonInventoryDiff](),

	"pg.receive": reflect.TypeFor[PgReceiveJSON](),

	"mysql.binlog.receive": reflect.TypeFor[MysqlBinlogReceiveJSON](),
	"mysql.binlog.list":    reflect.TypeFor[MysqlBinlogListJSON](),
	"mysql.check":          reflect.TypeFor[MysqlCheckJSON](),
	"restore.image":        reflect.TypeFor[jsonRestoreImage](),
	"instant":              reflect.TypeFor[jsonInstant](),
	"export":               reflect.TypeFor[jsonExport](),
	"runbook":              reflect.TypeFor[jsonRunbook](),
	"drill":                reflect.TypeFor[jsonDrill](),
	"drill.past":           reflect.TypeFor[jsonDrillPast](),
}

// fieldSpec is one row of a documented field table.
type fieldSpec struct {
	typ      string // string, id, time, integer, number, boolean, object, external object, "array of X"
	optional bool
}

// docSchemas reads the field tables of docs/JSON.md: name -> dotted field
// path -> spec.
var docSchemas = sync.OnceValues(func() (map[string]map[string]fieldSpec, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	return parseSchemaDoc(filepath.Join(root, "docs", "JSON.md"))
})

var schemaMarker = regexp.MustCompile(`^<!-- schema: ([a-z.]+) -->$`)

func parseSchemaDoc(file string) (map[string]map[string]fieldSpec, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]map[string]fieldSpec{}
	var cur map[string]fieldSpec
	var curName string
	rows := 0 // table lines seen since the marker
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if m := schemaMarker.FindStringSubmatch(line); m != nil {
			if _, dup := out[m[1]]; dup {
				return nil, fmt.Errorf("%s:%d: schema %q documented twice", file, n, m[1])
			}
			curName, cur, rows = m[1], map[string]fieldSpec{}, 0
			out[curName] = cur
			continue
		}
		if cur == nil {
			continue
		}
		if !strings.HasPrefix(line, "|") {
			if rows > 0 {
				cur = nil // end of the table
			}
			continue
		}
		rows++
		if rows <= 2 { // header and separator
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) < 3 {
			return nil, fmt.Errorf("%s:%d: table row with %d cells", file, n, len(cells))
		}
		name := strings.Trim(strings.TrimSpace(cells[0]), "`")
		typ := strings.TrimSpace(cells[1])
		spec := fieldSpec{typ: typ}
		if t, ok := strings.CutSuffix(typ, ", optional"); ok {
			spec = fieldSpec{typ: t, optional: true}
		}
		if !knownDocType(spec.typ) {
			return nil, fmt.Errorf("%s:%d: schema %s: field %s has unknown type %q", file, n, curName, name, typ)
		}
		if _, dup := cur[name]; dup {
			return nil, fmt.Errorf("%s:%d: schema %s: field %s documented twice", file, n, curName, name)
		}
		cur[name] = spec
	}
	return out, sc.Err()
}

func knownDocType(t string) bool {
	base := strings.TrimPrefix(t, "array of ")
	return slices.Contains([]string{"string", "id", "time", "integer", "number", "boolean", "object", "external object"}, base)
}

func schema(t *testing.T, name string) map[string]fieldSpec {
	t.Helper()
	all, err := docSchemas()
	if err != nil {
		t.Fatalf("read docs/JSON.md: %v", err)
	}
	s, ok := all[name]
	if !ok {
		t.Fatalf("docs/JSON.md documents no schema %q", name)
	}
	return s
}

// checkDoc decodes one JSON document (an object, or an array of objects
// when v is a slice) strictly into v, and checks every object in it
// against the schema's documentation.
func checkDoc(t *testing.T, schemaName string, raw []byte, v any) {
	t.Helper()
	decodeStrict(t, raw, v)
	var generic any
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	objs := []any{generic}
	if a, ok := generic.([]any); ok {
		objs = a
	}
	for _, o := range objs {
		m, ok := o.(map[string]any)
		if !ok {
			t.Fatalf("%s: not a JSON object: %s", schemaName, raw)
		}
		for _, err := range validate(schema(t, schemaName), m, "") {
			t.Errorf("%s: %v in %s", schemaName, err, raw)
		}
	}
}

var hexID = regexp.MustCompile(`^[0-9a-f]{64}$`)

// validate checks obj, found at path prefix, against the documented
// fields: nothing undocumented, every type as documented, every field not
// marked optional present.
func validate(spec map[string]fieldSpec, obj map[string]any, prefix string) []error {
	var errs []error
	for k, v := range obj {
		p := prefix + k
		fs, ok := spec[p]
		if !ok {
			errs = append(errs, fmt.Errorf("field %s is not documented", p))
			continue
		}
		if v == nil {
			errs = append(errs, fmt.Errorf("field %s is null", p))
			continue
		}
		elem, isArray := strings.CutPrefix(fs.typ, "array of ")
		if !isArray {
			if err := checkValue(fs.typ, v); err != nil {
				errs = append(errs, fmt.Errorf("field %s: %w", p, err))
			} else if fs.typ == "object" {
				errs = append(errs, validate(spec, v.(map[string]any), p+".")...)
			}
			continue
		}
		a, ok := v.([]any)
		if !ok {
			errs = append(errs, fmt.Errorf("field %s: want an array, got %T", p, v))
			continue
		}
		if fs.optional && len(a) == 0 {
			errs = append(errs, fmt.Errorf("field %s: optional arrays are left out, not empty", p))
		}
		for i, e := range a {
			if err := checkValue(elem, e); err != nil {
				errs = append(errs, fmt.Errorf("field %s[%d]: %w", p, i, err))
			} else if elem == "object" {
				errs = append(errs, validate(spec, e.(map[string]any), p+"[].")...)
			}
		}
	}
	for p, fs := range spec {
		rest, ok := strings.CutPrefix(p, prefix)
		if !ok || strings.Contains(rest, ".") || fs.optional {
			continue
		}
		if _, ok := obj[rest]; !ok {
			errs = append(errs, fmt.Errorf("documented field %s is missing", p))
		}
	}
	return errs
}

func checkValue(typ string, v any) error {
	switch typ {
	case "string":
		if _, ok := v.(string); ok {
			return nil
		}
	case "id":
		if s, ok := v.(string); ok {
			if !hexID.MatchString(s) {
				return fmt.Errorf("%q is not a full ID", s)
			}
			return nil
		}
	case "time":
		if s, ok := v.(string); ok {
			tm, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return err
			}
			if tm.Location() != time.UTC {
				return fmt.Errorf("%q is not in UTC", s)
			}
			return nil
		}
	case "integer":
		if f, ok := v.(float64); ok {
			if f != float64(int64(f)) {
				return fmt.Errorf("%v is not an integer", f)
			}
			return nil
		}
	case "number":
		if _, ok := v.(float64); ok {
			return nil
		}
	case "boolean":
		if _, ok := v.(bool); ok {
			return nil
		}
	case "object", "external object":
		if _, ok := v.(map[string]any); ok {
			return nil
		}
	}
	return fmt.Errorf("want %s, got %T %v", typ, v, v)
}

// structFields lists the JSON fields of a strict struct as dotted paths,
// with the documented type family each Go type stands for.
func structFields(t reflect.Type, prefix string, out map[string]string) {
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" && f.Anonymous && f.Type.Kind() == reflect.Struct {
			structFields(f.Type, prefix, out) // embedded: its fields are this object's
			continue
		}
		if name == "" || name == "-" {
			continue
		}
		p := prefix + name
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		kind := goDocType(ft)
		out[p] = kind
		switch kind {
		case "object":
			structFields(ft, p+".", out)
		case "array of object":
			structFields(ft.Elem(), p+"[].", out)
		}
	}
}

func goDocType(t reflect.Type) string {
	if t == reflect.TypeFor[time.Time]() {
		return "time"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Int, reflect.Int32, reflect.Int64, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float64:
		return "number"
	case reflect.Bool:
		return "boolean"
	case reflect.Struct:
		return "object"
	case reflect.Map:
		// The strict copy of an object another document specifies
		// (docs/JSON.md's "external object") is a map: any fields.
		return "external object"
	case reflect.Slice:
		return "array of " + goDocType(t.Elem())
	}
	return "unsupported " + t.String()
}

// TestJSONDocsMatchStrictStructs: docs/JSON.md and the strict structs
// describe the same fields with the same types, so that neither can drift
// from the other (and, through the output tests, from the program).
func TestJSONDocsMatchStrictStructs(t *testing.T) {
	all, err := docSchemas()
	if err != nil {
		t.Fatalf("read docs/JSON.md: %v", err)
	}
	for name := range all {
		if _, ok := schemaTypes[name]; !ok {
			t.Errorf("docs/JSON.md documents schema %q, which no test checks", name)
		}
	}
	for name, typ := range schemaTypes {
		doc, ok := all[name]
		if !ok {
			t.Errorf("schema %q (%v) is not documented in docs/JSON.md", name, typ)
			continue
		}
		got := map[string]string{}
		structFields(typ, "", got)
		for p, gt := range got {
			fs, ok := doc[p]
			if !ok {
				t.Errorf("%s: field %s of %v is not documented", name, p, typ)
				continue
			}
			dt := strings.NewReplacer("id", "string").Replace(fs.typ)
			if dt != gt {
				t.Errorf("%s: field %s is documented as %s, the test reads it as %s", name, p, fs.typ, gt)
			}
		}
		for p := range doc {
			if _, ok := got[p]; !ok {
				t.Errorf("%s: documented field %s is missing from %v", name, p, typ)
			}
		}
	}
}
