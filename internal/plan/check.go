package plan

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/schedule"
)

// Env is what Check asks the machine. The CLI answers with os.Lstat,
// exec.LookPath, systemctl and by opening the repository; an error that
// wraps ErrUncheckable becomes a warning.
type Env interface {
	PathExists(path string) error
	CommandExists(name string) error
	UnitKnown(ctx context.Context, unit string) error
	OpenRepository(ctx context.Context, r *Repository) error
}

// MinContinuousRPO is the smallest RPO a continuous job is taken to meet:
// watch needs a few seconds to notice a change and save it.
const MinContinuousRPO = 5 * time.Second

// Kinds lists the job kinds, including those not available yet.
var Kinds = []string{KindFiles, KindStdinCommand, KindCheck, KindCopy, KindForget, KindDrill, KindPostgres, KindMySQL, KindSQLite}

// available is how many of Kinds can run.
const available = 6

// NotifyEvents are the values of notify.on.
var NotifyEvents = []string{"failure", "recovery", "rpo", "success"}

// EmailTLS are the values of notify.email.tls.
var EmailTLS = []string{"starttls", "tls", "none"}

type checker struct {
	p     *Plan
	env   Env
	ctx   context.Context
	now   time.Time
	probs Problems
}

func (c *checker) add(sev Severity, field, format string, args ...any) {
	c.probs = append(c.probs, Problem{File: c.p.Path, Pos: c.p.PosOf(field), Field: field, Msg: fmt.Sprintf(format, args...), Severity: sev})
}

func (c *checker) errorf(field, format string, args ...any) {
	c.add(SeverityError, field, format, args...)
}

// envErr reports err from env as a problem at field: a warning when the
// thing could not be checked here, else an error.
func (c *checker) envErr(field, what string, err error) {
	if err == nil {
		return
	}
	if errors.Is(err, ErrUncheckable) {
		c.add(SeverityWarning, field, "%s %v", what, err)
		return
	}
	c.errorf(field, "%s: %v", what, err)
}

// Check reports everything that can be known about the plan before its
// first run: the static rules of docs/PLAN.md, and through env whether the
// paths, commands, units and repositories it names are there. A nil env
// runs the static rules only. Problems are sorted by position.
func (p *Plan) Check(ctx context.Context, env Env) Problems {
	c := &checker{p: p, env: env, ctx: ctx, now: time.Now()}
	if len(p.Repositories) == 0 {
		c.errorf("repositories", "the plan needs at least one repository")
	}
	if len(p.Jobs) == 0 {
		c.add(SeverityWarning, "jobs", "the plan has no jobs")
	}
	for _, name := range sortedKeys(p.Repositories) {
		c.repository(p.Repositories[name])
	}
	for _, name := range sortedKeys(p.Jobs) {
		c.job(p.Jobs[name])
	}
	if p.Notify != nil {
		c.notify(p.Notify)
	}
	if p.Metrics != nil {
		c.metrics(p.Metrics)
	}
	if a := p.Agent; a != nil {
		if a.StateDir != "" && !filepath.IsAbs(a.StateDir) {
			c.errorf("agent.state_dir", "%q is not an absolute path", a.StateDir)
		}
		if a.RPOCheck != 0 && a.RPOCheck.D() < time.Second {
			c.errorf("agent.rpo_check", "%v is too short: at least 1s", a.RPOCheck)
		}
	}
	c.probs.Sort()
	return c.probs
}

func sortedKeys[T any](m map[string]T) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (c *checker) repository(r *Repository) {
	f := "repositories." + r.Name
	ok := true
	if r.Location == "" {
		c.errorf(f, "location is required")
		ok = false
	}
	switch {
	case r.PasswordFile == "" && r.PasswordCommand == "":
		c.errorf(f, "password_file or password_command is required: the agent cannot type a password")
		ok = false
	case r.PasswordFile != "" && r.PasswordCommand != "":
		c.errorf(f+".password_command", "give password_file or password_command, not both")
		ok = false
	}
	if r.LimitUpload < 0 {
		c.errorf(f+".limit_upload", "a limit cannot be negative")
	}
	if r.LimitDownload < 0 {
		c.errorf(f+".limit_download", "a limit cannot be negative")
	}
	if c.env == nil || !ok {
		return
	}
	if r.PasswordFile != "" {
		if err := c.env.PathExists(r.PasswordFile); err != nil {
			c.envErr(f+".password_file", "password file", err)
			ok = false
		}
	}
	if r.PasswordCommand != "" {
		if words, err := SplitCommand(r.PasswordCommand); err == nil && len(words) > 0 {
			if err := c.env.CommandExists(words[0]); err != nil {
				c.envErr(f+".password_command", "password command", err)
				ok = false
			}
		}
	}
	if ok {
		if err := c.env.OpenRepository(c.ctx, r); err != nil {
			c.envErr(f+".location", "cannot open the repository", err)
		}
	}
}

func (c *checker) repoExists(field, name string) bool {
	if _, ok := c.p.Repositories[name]; ok {
		return true
	}
	c.errorf(field, "no repository is named %q%s", name, suggest(name, sortedKeys(c.p.Repositories)))
	return false
}

func (c *checker) job(j *Job) {
	f := "jobs." + j.Name
	switch j.Kind {
	case "":
		c.errorf(f, "kind is required: one of %s", strings.Join(Kinds[:available], ", "))
		return
	case KindPostgres, KindMySQL, KindSQLite:
		c.errorf(f+".kind", "kind %q is not available yet", j.Kind)
		return
	case KindFiles, KindStdinCommand, KindCheck, KindCopy, KindForget, KindDrill:
	default:
		c.errorf(f+".kind", "unknown kind %q: one of %s%s", j.Kind, strings.Join(Kinds[:available], ", "), suggest(j.Kind, Kinds))
		return
	}
	if j.Repository == "" {
		if len(c.p.Repositories) > 1 {
			c.errorf(f, "repository is required: the plan has %d repositories", len(c.p.Repositories))
		}
	} else {
		c.repoExists(f+".repository", j.Repository)
	}
	for i, to := range j.CopyTo {
		ff := fmt.Sprintf("%s.copy_to[%d]", f, i)
		if c.repoExists(ff, to) && to == j.Repository {
			c.errorf(ff, "%q is the job's own repository: a job copies to other repositories", to)
		}
	}

	switch j.Kind {
	case KindFiles:
		if len(j.Paths) == 0 {
			c.errorf(f, "a files job needs paths")
		}
	case KindStdinCommand:
		if len(j.Command) == 0 {
			c.errorf(f, "a stdin-command job needs command")
		}
	case KindCopy:
		if len(j.CopyTo) == 0 {
			c.errorf(f, "a copy job needs copy_to")
		}
	case KindForget:
		if j.Retention == nil {
			c.errorf(f, "a forget job needs retention")
		}
	case KindDrill:
		c.drill(j, f)
	}
	if j.Kind != KindDrill {
		for _, k := range []struct {
			key string
			set bool
		}{{"host", j.DrillHost != ""}, {"probes", len(j.Probes) > 0}, {"timeout", j.Timeout != 0}} {
			if k.set {
				c.errorf(f+"."+k.key, "%s is only for drill jobs", k.key)
			}
		}
	}
	if j.Kind != KindFiles {
		for _, k := range []struct {
			key string
			set bool
		}{{"paths", len(j.Paths) > 0}, {"exclude", len(j.Exclude) > 0}, {"one_file_system", j.OneFileSystem}} {
			if k.set {
				c.errorf(f+"."+k.key, "%s is only for files jobs", k.key)
			}
		}
	}
	if j.Kind != KindStdinCommand && len(j.Command) > 0 {
		c.errorf(f+".command", "command is only for stdin-command jobs")
	}
	if j.Kind != KindCheck && j.ReadDataSubset != "" {
		c.errorf(f+".read_data_subset", "read_data_subset is only for check jobs")
	}
	if j.ReadDataSubset != "" && !subsetRE.MatchString(j.ReadDataSubset) {
		c.errorf(f+".read_data_subset", "%q is not a subset: write N/M (1/7), a percentage (10%%) or a size (5G)", j.ReadDataSubset)
	}
	for i, t := range j.Tags {
		if t == "" || strings.ContainsAny(t, ", ") {
			c.errorf(fmt.Sprintf("%s.tags[%d]", f, i), "tag %q must be non-empty, without commas or spaces", t)
		}
	}

	c.schedule(j, f)
	c.retention(j, f)
	c.limits(j, f)
	if r := j.Retry; r != nil && r.Attempts < 0 {
		c.errorf(f+".retry.attempts", "attempts cannot be negative")
	}

	c.steps(j, f+".before", j.Before, true)
	c.steps(j, f+".after", j.After, false)
	c.steps(j, f+".on_failure", j.OnFailure, false)

	if c.env == nil {
		return
	}
	for i, p := range j.Paths {
		ff := fmt.Sprintf("%s.paths[%d]", f, i)
		if !filepath.IsAbs(p) {
			c.errorf(ff, "%q is not an absolute path", p)
			continue
		}
		c.envErr(ff, "path", c.env.PathExists(p))
	}
	if len(j.Command) > 0 {
		c.envErr(f+".command", "command", c.env.CommandExists(j.Command[0]))
	}
}

var subsetRE = regexp.MustCompile(`^(\d+/\d+|\d+(\.\d+)?%|\d+(\.\d+)?[KMGT]?i?B?)$`)

func (c *checker) schedule(j *Job, f string) {
	ff := f + ".schedule"
	if j.Schedule == ScheduleContinuous {
		if j.Kind != KindFiles {
			c.errorf(ff, "only files jobs can be continuous")
		}
		if j.RPO != 0 && j.RPO.D() < MinContinuousRPO {
			c.errorf(f+".rpo", "an rpo of %v is too short even for a continuous job (at least %v)", j.RPO, MinContinuousRPO)
		}
		if len(j.Before) > 0 || len(j.After) > 0 {
			c.errorf(f+".before", "a continuous job cannot have before or after steps: it never stops to run them")
		}
		return
	}
	if j.Schedule == "" {
		if j.RPO != 0 {
			c.errorf(f+".rpo", "an rpo needs a schedule: the job only runs when started by hand")
		}
		return
	}
	s, err := schedule.Parse(j.Schedule)
	if err != nil {
		var se *schedule.Error
		if errors.As(err, &se) {
			c.errorf(ff, "column %d of the schedule: %s", se.Offset+1, se.Msg)
		} else {
			c.errorf(ff, "%v", err)
		}
		return
	}
	if j.RPO == 0 {
		return
	}
	gap := schedule.MaxGap(s, c.now)
	switch {
	case gap == schedule.Never:
		c.errorf(f+".rpo", "the schedule %q does not repeat, so no rpo can be met", j.Schedule)
	case gap > j.RPO.D():
		c.errorf(f+".rpo", "the schedule %q leaves up to %v between runs, more than the rpo of %v", j.Schedule, Duration(gap), j.RPO)
	}
}

func (c *checker) retention(j *Job, f string) {
	r := j.Retention
	if r == nil {
		return
	}
	for _, k := range []struct {
		key string
		n   int
	}{{"keep_last", r.KeepLast}, {"keep_hourly", r.KeepHourly}, {"keep_daily", r.KeepDaily},
		{"keep_weekly", r.KeepWeekly}, {"keep_monthly", r.KeepMonthly}, {"keep_yearly", r.KeepYearly}} {
		if k.n < 0 {
			c.errorf(f+".retention."+k.key, "%s cannot be negative", k.key)
		}
	}
	if r.KeepLast+r.KeepHourly+r.KeepDaily+r.KeepWeekly+r.KeepMonthly+r.KeepYearly == 0 && r.KeepWithin == 0 {
		c.errorf(f+".retention", "retention keeps nothing: give at least one keep_* value")
	}
}

var ioniceRE = regexp.MustCompile(`^(idle|(best-effort|realtime)(:[0-7])?)$`)

func (c *checker) limits(j *Job, f string) {
	l := j.Limits
	if l == nil {
		return
	}
	if l.UploadKiB < 0 {
		c.errorf(f+".limits.upload", "a limit cannot be negative")
	}
	if l.Nice != nil && (*l.Nice < -20 || *l.Nice > 19) {
		c.errorf(f+".limits.nice", "nice %d is out of range -20..19", *l.Nice)
	}
	if l.IONice != "" && !ioniceRE.MatchString(l.IONice) {
		c.errorf(f+".limits.ionice", "ionice %q: use idle, best-effort[:0-7] or realtime[:0-7]", l.IONice)
	}
}

func (c *checker) steps(j *Job, f string, steps []*Step, before bool) {
	for i, s := range steps {
		ff := fmt.Sprintf("%s[%d]", f, i)
		arg := ff + "." + s.Kind
		switch s.Kind {
		case "":
			continue // reported by Parse
		case StepRun, StepCheck:
			if len(s.Command) == 0 {
				c.errorf(arg, "%s needs a command", s.Kind)
			} else if c.env != nil {
				c.envErr(arg, "command", c.env.CommandExists(s.Command[0]))
			}
		case StepStop, StepStart, StepRestart, StepReload:
			if s.Arg == "" {
				c.errorf(arg, "%s needs a systemd unit", s.Kind)
			} else if c.env != nil {
				c.envErr(arg, "unit "+s.Arg, c.env.UnitKnown(c.ctx, s.Arg))
			}
		case StepFsfreeze, StepBtrfsSnapshot:
			what := "a mount point"
			if s.Kind == StepBtrfsSnapshot {
				what = "a btrfs subvolume"
			}
			switch {
			case !before:
				c.errorf(ff, "%s belongs in before: it is undone by itself after the backup", s.Kind)
			case s.Arg == "":
				c.errorf(arg, "%s needs %s path", s.Kind, what)
			case !filepath.IsAbs(s.Arg):
				c.errorf(arg, "%q is not an absolute path", s.Arg)
			case c.env != nil:
				c.envErr(arg, what, c.env.PathExists(s.Arg))
			}
			if s.Kind == StepBtrfsSnapshot && s.Arg != "" && !coversAny(s.Arg, j.Paths) {
				c.errorf(arg, "the subvolume %s holds none of the job's paths, so the snapshot would not be read", s.Arg)
			}
		}
		if s.Max != 0 && s.Kind != StepFsfreeze {
			c.errorf(ff+".max", "max is only for fsfreeze (timeout bounds other steps)")
		}
		if s.Always && before {
			c.errorf(ff+".always", "always is for after and on_failure steps")
		}
	}
}

// coversAny reports whether dir is or contains one of paths.
func coversAny(dir string, paths []string) bool {
	dir = filepath.Clean(dir)
	for _, p := range paths {
		p = filepath.Clean(p)
		if p == dir || dir == "/" || strings.HasPrefix(p, dir+"/") {
			return true
		}
	}
	return false
}

func (c *checker) url(field, u string) {
	if u == "" {
		return
	}
	v, err := url.Parse(u)
	if err != nil || (v.Scheme != "http" && v.Scheme != "https") || v.Host == "" {
		c.errorf(field, "%q is not an http:// or https:// URL", u)
	}
}

func (c *checker) notify(n *Notify) {
	c.url("notify.webhook", n.Webhook)
	c.url("notify.healthchecks", n.Healthchecks)
	for i, on := range n.On {
		if !slices.Contains(NotifyEvents, on) {
			c.errorf(fmt.Sprintf("notify.on[%d]", i), "unknown event %q: one of %s%s", on, strings.Join(NotifyEvents, ", "), suggest(on, NotifyEvents))
		}
	}
	e := n.Email
	if e == nil {
		return
	}
	if e.SMTP == "" {
		c.errorf("notify.email", "smtp (host:port) is required")
	} else if err := hostPort(e.SMTP); err != nil {
		c.errorf("notify.email.smtp", "%v", err)
	}
	if e.From == "" {
		c.errorf("notify.email", "from is required")
	}
	if len(e.To) == 0 {
		c.errorf("notify.email", "to is required")
	}
	for i, a := range append([]string{e.From}, e.To...) {
		if a != "" && !strings.Contains(a, "@") {
			field := "notify.email.from"
			if i > 0 {
				field = fmt.Sprintf("notify.email.to[%d]", i-1)
			}
			c.errorf(field, "%q is not a mail address", a)
		}
	}
	if e.TLS != "" && !slices.Contains(EmailTLS, e.TLS) {
		c.errorf("notify.email.tls", "tls %q: one of %s", e.TLS, strings.Join(EmailTLS, ", "))
	}
	if e.PasswordFile != "" && c.env != nil {
		c.envErr("notify.email.password_file", "password file", c.env.PathExists(e.PasswordFile))
	}
}

func hostPort(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number in 0..65535", s, port)
	}
	return nil
}

func (c *checker) metrics(m *Metrics) {
	if m.Listen != "" {
		if err := hostPort(m.Listen); err != nil {
			c.errorf("metrics.listen", "%v", err)
		}
	}
	if m.Textfile != "" {
		if !filepath.IsAbs(m.Textfile) || !strings.HasSuffix(m.Textfile, ".prom") {
			c.errorf("metrics.textfile", "%q: node_exporter reads absolute paths ending in .prom", m.Textfile)
		} else if c.env != nil {
			c.envErr("metrics.textfile", "directory", c.env.PathExists(filepath.Dir(m.Textfile)))
		}
	}
}

// MinDrillTimeout is the shortest boot-and-probe time a drill job may set.
const MinDrillTimeout = 10 * time.Second

func (c *checker) drill(j *Job, f string) {
	for i, s := range j.Probes {
		if _, err := ParseProbe(s); err != nil {
			c.errorf(fmt.Sprintf("%s.probes[%d]", f, i), "%v", err)
		}
	}
	if j.Timeout != 0 && j.Timeout.D() < MinDrillTimeout {
		c.errorf(f+".timeout", "%v is too short to boot a server: at least %v", j.Timeout, MinDrillTimeout)
	}
	if j.DrillHost != "" && strings.ContainsAny(j.DrillHost, " \t\n/") {
		c.errorf(f+".host", "%q is not a host name", j.DrillHost)
	}
	if len(j.Tags) > 0 || len(j.CopyTo) > 0 || j.Retention != nil {
		c.errorf(f, "a drill job saves no snapshot: tags, copy_to and retention do not apply")
	}
}
