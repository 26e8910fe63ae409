// Package plan reads and checks a backup plan: the one declarative file
// (/etc/rewind/rewind.yaml) that says what a server needs backed up, where,
// when, and which steps surround each job. docs/PLAN.md is its reference;
// docs/plan.schema.json is its JSON Schema.
//
// Names in a plan may be added but never changed, so that plans written
// today keep working.
package plan

import "time"

// DefaultPath is where the agent and `rewind plan` look for the plan when
// no --config is given.
const DefaultPath = "/etc/rewind/rewind.yaml"

// Pos is a place in the plan file, for messages: 1-based line and column.
// The zero Pos means "not from a file".
type Pos struct {
	Line   int `json:"line,omitempty"`
	Column int `json:"column,omitempty"`
}

// Plan is one server's backup plan.
type Plan struct {
	// Path is the file the plan was read from ("" when built in memory).
	Path string `yaml:"-" json:"-"`
	// Host is the name jobs, events and metrics carry; the machine's
	// hostname unless the plan sets one.
	Host         string                 `yaml:"host,omitempty" json:"host,omitempty"`
	Repositories map[string]*Repository `yaml:"repositories" json:"repositories"`
	Jobs         map[string]*Job        `yaml:"jobs" json:"jobs"`
	Notify       *Notify                `yaml:"notify,omitempty" json:"notify,omitempty"`
	Metrics      *Metrics               `yaml:"metrics,omitempty" json:"metrics,omitempty"`
	Agent        *AgentSettings         `yaml:"agent,omitempty" json:"agent,omitempty"`

	// pos is where each field was written (by its dotted path, see
	// PosOf), filled by Parse.
	pos map[string]Pos
}

// Repository is where a job's snapshots go, and how to open it.
type Repository struct {
	Name            string `yaml:"-" json:"-"`
	Location        string `yaml:"location" json:"location"`
	PasswordFile    string `yaml:"password_file,omitempty" json:"password_file,omitempty"`
	PasswordCommand string `yaml:"password_command,omitempty" json:"password_command,omitempty"`
	// LimitUpload and LimitDownload are KiB/s; 0 is no limit.
	LimitUpload   int `yaml:"limit_upload,omitempty" json:"limit_upload,omitempty"`
	LimitDownload int `yaml:"limit_download,omitempty" json:"limit_download,omitempty"`
	Pos           Pos `yaml:"-" json:"-"`
}

// Job kinds.
const (
	KindFiles        = "files"         // rewind backup PATH...
	KindStdinCommand = "stdin-command" // rewind backup --stdin-from-command
	KindCheck        = "check"         // rewind check [--read-data-subset]
	KindCopy         = "copy"          // rewind copy to copy_to repositories
	KindForget       = "forget"        // rewind forget --prune with the job's retention
	KindDrill        = "drill"         // rewind drill: restore as a VM, boot, probe
	// KindPostgres, KindMySQL and KindSQLite are reserved for the
	// database backups (issues 12 and 13); a plan naming them is refused
	// until those commands exist.
	KindPostgres = "postgres"
	KindMySQL    = "mysql"
	KindSQLite   = "sqlite"
)

// ScheduleContinuous is the schedule of a job that `rewind watch` keeps
// running.
const ScheduleContinuous = "continuous"

// Job is one unit of work the agent runs on a schedule.
type Job struct {
	Name string `yaml:"-" json:"-"`
	Kind string `yaml:"kind" json:"kind"`
	// Repository names an entry of Plan.Repositories; it may be left out
	// when the plan has exactly one.
	Repository string `yaml:"repository,omitempty" json:"repository,omitempty"`

	// files
	Paths            []string `yaml:"paths,omitempty" json:"paths,omitempty"`
	Exclude          []string `yaml:"exclude,omitempty" json:"exclude,omitempty"`
	ExcludeIfPresent []string `yaml:"exclude_if_present,omitempty" json:"exclude_if_present,omitempty"`
	ExcludeLarger    string   `yaml:"exclude_larger_than,omitempty" json:"exclude_larger_than,omitempty"`
	OneFileSystem    bool     `yaml:"one_file_system,omitempty" json:"one_file_system,omitempty"`
	Tags             []string `yaml:"tags,omitempty" json:"tags,omitempty"`
	// Inventory turns off the machine inventory recorded with a files
	// job when set to false (default true).
	Inventory *bool `yaml:"inventory,omitempty" json:"inventory,omitempty"`

	// stdin-command
	Command       Command `yaml:"command,omitempty" json:"command,omitempty"`
	StdinFilename string  `yaml:"stdin_filename,omitempty" json:"stdin_filename,omitempty"`

	// check
	ReadDataSubset string `yaml:"read_data_subset,omitempty" json:"read_data_subset,omitempty"`

	// drill: the host whose newest snapshot is restored (default the
	// plan's host), the probes (ParseProbe) and the most time the boot
	// and probes may take.
	DrillHost string   `yaml:"host,omitempty" json:"host,omitempty"`
	Probes    []string `yaml:"probes,omitempty" json:"probes,omitempty"`
	Timeout   Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`

	// Schedule is "continuous", a systemd OnCalendar expression, or a
	// five-field cron expression; empty means "only when run by hand".
	Schedule string `yaml:"schedule,omitempty" json:"schedule,omitempty"`
	// RPO is the most time that may pass without a new restorable point.
	RPO       Duration   `yaml:"rpo,omitempty" json:"rpo,omitempty"`
	Retention *Retention `yaml:"retention,omitempty" json:"retention,omitempty"`
	// CopyTo names repositories each new snapshot is copied to.
	CopyTo []string `yaml:"copy_to,omitempty" json:"copy_to,omitempty"`

	Before    []*Step `yaml:"before,omitempty" json:"before,omitempty"`
	After     []*Step `yaml:"after,omitempty" json:"after,omitempty"`
	OnFailure []*Step `yaml:"on_failure,omitempty" json:"on_failure,omitempty"`

	Limits *Limits `yaml:"limits,omitempty" json:"limits,omitempty"`
	Retry  *Retry  `yaml:"retry,omitempty" json:"retry,omitempty"`

	Pos Pos `yaml:"-" json:"-"`
}

// Command is a program and its arguments. In YAML it is a list, or a
// string split into words like a shell would (quotes, backslashes) but
// never run through a shell.
type Command []string

// Retention is forget's policy for a job's snapshots.
type Retention struct {
	KeepLast    int      `yaml:"keep_last,omitempty" json:"keep_last,omitempty"`
	KeepHourly  int      `yaml:"keep_hourly,omitempty" json:"keep_hourly,omitempty"`
	KeepDaily   int      `yaml:"keep_daily,omitempty" json:"keep_daily,omitempty"`
	KeepWeekly  int      `yaml:"keep_weekly,omitempty" json:"keep_weekly,omitempty"`
	KeepMonthly int      `yaml:"keep_monthly,omitempty" json:"keep_monthly,omitempty"`
	KeepYearly  int      `yaml:"keep_yearly,omitempty" json:"keep_yearly,omitempty"`
	KeepWithin  Duration `yaml:"keep_within,omitempty" json:"keep_within,omitempty"`
	// Prune runs prune after forget (default true).
	Prune *bool `yaml:"prune,omitempty" json:"prune,omitempty"`
}

// Limits throttle a job.
type Limits struct {
	UploadKiB int `yaml:"upload,omitempty" json:"upload,omitempty"` // KiB/s
	// Nice is the CPU niceness, -20..19.
	Nice *int `yaml:"nice,omitempty" json:"nice,omitempty"`
	// IONice is "idle", "best-effort[:0-7]" or "realtime[:0-7]".
	IONice string `yaml:"ionice,omitempty" json:"ionice,omitempty"`
	// MaxRuntime stops the job (as a failure) when it runs longer.
	MaxRuntime Duration `yaml:"max_runtime,omitempty" json:"max_runtime,omitempty"`
}

// Retry says how a failed run is retried before the next scheduled one.
type Retry struct {
	Attempts int      `yaml:"attempts,omitempty" json:"attempts,omitempty"`
	Backoff  Duration `yaml:"backoff,omitempty" json:"backoff,omitempty"` // first delay; doubles
	Max      Duration `yaml:"max_backoff,omitempty" json:"max_backoff,omitempty"`
}

// Step kinds: a step in YAML is a map with exactly one of these keys,
// plus the modifiers of Step.
const (
	StepStop          = "stop"           // systemctl stop UNIT
	StepStart         = "start"          // systemctl start UNIT
	StepRestart       = "restart"        // systemctl restart UNIT
	StepReload        = "reload"         // systemctl reload UNIT
	StepRun           = "run"            // a command, with a timeout
	StepCheck         = "check"          // a consistency check: failure stops the job
	StepFsfreeze      = "fsfreeze"       // freeze a mounted filesystem for at most Max
	StepBtrfsSnapshot = "btrfs_snapshot" // read the job's paths from a read-only snapshot
)

// Step is one action before or after a job.
type Step struct {
	Kind string `yaml:"-" json:"kind"`
	// Arg is the unit, mount point or subvolume the step acts on; for run
	// and check, Command is used instead.
	Arg     string  `yaml:"-" json:"arg,omitempty"`
	Command Command `yaml:"-" json:"command,omitempty"`
	// Timeout bounds a run or check step, and a unit step's wait
	// (default 5m for commands, 90s for units).
	Timeout Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// Max bounds how long a filesystem stays frozen (fsfreeze; default
	// 30s): after it, the filesystem is thawed and the job fails.
	Max Duration `yaml:"max,omitempty" json:"max,omitempty"`
	// Always makes an after step run also when the job failed. Steps that
	// undo an earlier one (start after stop, thaw, snapshot removal)
	// always run without it.
	Always bool `yaml:"always,omitempty" json:"always,omitempty"`
	Pos    Pos  `yaml:"-" json:"-"`
}

// Notify says where the agent reports failures, recoveries and RPO
// breaches.
type Notify struct {
	Webhook      string `yaml:"webhook,omitempty" json:"webhook,omitempty"`
	Email        *Email `yaml:"email,omitempty" json:"email,omitempty"`
	Healthchecks string `yaml:"healthchecks,omitempty" json:"healthchecks,omitempty"`
	// On lists the events that notify: failure, recovery, rpo, success
	// (default: failure, recovery, rpo).
	On []string `yaml:"on,omitempty" json:"on,omitempty"`
}

// Email is mail sent over SMTP.
type Email struct {
	SMTP         string   `yaml:"smtp" json:"smtp"` // host:port
	From         string   `yaml:"from" json:"from"`
	To           []string `yaml:"to" json:"to"`
	Username     string   `yaml:"username,omitempty" json:"username,omitempty"`
	PasswordFile string   `yaml:"password_file,omitempty" json:"password_file,omitempty"`
	// TLS is "starttls" (default when offered), "tls" or "none".
	TLS string `yaml:"tls,omitempty" json:"tls,omitempty"`
}

// Metrics says where the agent exposes its metrics.
type Metrics struct {
	Listen   string `yaml:"listen,omitempty" json:"listen,omitempty"`
	Textfile string `yaml:"textfile,omitempty" json:"textfile,omitempty"`
}

// AgentSettings tune the agent itself.
type AgentSettings struct {
	// StateDir holds the agent's run state (default /var/lib/rewind/agent,
	// or $XDG_STATE_HOME/rewind/agent for a user).
	StateDir string `yaml:"state_dir,omitempty" json:"state_dir,omitempty"`
	// RPOCheck is how often RPO lag is evaluated (default 30s).
	RPOCheck Duration `yaml:"rpo_check,omitempty" json:"rpo_check,omitempty"`
}

// Duration is a time.Duration written as Go ("90s", "1h30m") or with a
// day unit ("2d", "1w").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
