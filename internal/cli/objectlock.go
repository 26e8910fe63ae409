package cli

// S3 Object Lock (docs/OBJECT-LOCK.md): init --object-lock, the extension
// of retention after each backup and by `rewind retention extend`, and
// `rewind recover-versions`. The retention requests are not part of
// backend.Backend, and the provider sits under the wrappers of
// wrapBackend, so these commands open the bucket a second time, directly,
// for them.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/location"
	"github.com/rewind-backup/rewind/internal/backend/retry"
	"github.com/rewind-backup/rewind/internal/backend/s3"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/retention"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/ui"
	"github.com/spf13/cobra"
)

// s3ConfigFor is the provider configuration of an s3 location, made as
// location.Open makes it.
func s3ConfigFor(loc location.Location, o location.Options) s3.Config {
	return s3.Config{
		Endpoint:            loc.Endpoint,
		TLS:                 loc.TLS,
		Bucket:              loc.Bucket,
		Prefix:              loc.Prefix,
		Region:              o.S3Region,
		BucketLookup:        o.S3BucketLookup,
		CACertFile:          o.CACert,
		NoConditionalWrites: o.S3NoConditionalWrites,
		Logger:              o.Logger,
	}
}

// objectLockFlags are init's object lock flags.
type objectLockFlags struct {
	duration string
	mode     string
}

func addObjectLockFlags(cmd *cobra.Command, o *objectLockFlags) {
	f := cmd.Flags()
	f.StringVar(&o.duration, "object-lock", "", "lock what a restore needs with S3 Object Lock for `DURATION` after each snapshot (e.g. 30d; s3 repositories only)")
	f.StringVar(&o.mode, "object-lock-mode", "compliance", "object lock `mode`: compliance (nobody can delete early) or governance (credentials with s3:BypassGovernanceRetention can)")
}

// parse returns the setting the flags ask for; the zero value when
// --object-lock was not given.
func (o *objectLockFlags) parse(cmd *cobra.Command, loc location.Location) (s3.ObjectLock, error) {
	if !cmd.Flags().Changed("object-lock") {
		if cmd.Flags().Changed("object-lock-mode") {
			return s3.ObjectLock{}, errors.New("--object-lock-mode goes with --object-lock")
		}
		return s3.ObjectLock{}, nil
	}
	if loc.Scheme != location.S3 {
		return s3.ObjectLock{}, fmt.Errorf("--object-lock needs an s3 repository (S3 Object Lock), not %s", loc)
	}
	d, err := parseRetention(o.duration)
	if err != nil {
		return s3.ObjectLock{}, fmt.Errorf("--object-lock: %w", err)
	}
	l := s3.ObjectLock{Retention: d, Mode: strings.ToUpper(o.mode)}
	if err := l.Check(); err != nil {
		return s3.ObjectLock{}, fmt.Errorf("--object-lock: %w", err)
	}
	return l, nil
}

// createLockedBackend is createBackend for a repository with object lock.
func (g *globals) createLockedBackend(ctx context.Context, loc location.Location, l s3.ObjectLock) (backend.Backend, error) {
	if err := g.checkBackendFlags(); err != nil {
		return nil, err
	}
	if g.backend.readOnly {
		return nil, errors.New("cannot create a repository with --read-only")
	}
	cfg := s3ConfigFor(loc, g.locationOptions())
	cfg.ObjectLock = l
	be, err := s3.Create(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return g.wrapBackend(loc, be), nil
}

// openLockStore opens the bucket of the repository at loc directly, for
// the retention requests; nil when loc is not on S3. The caller closes it.
func (g *globals) openLockStore(ctx context.Context, loc location.Location) (*s3.Backend, error) {
	if loc.Scheme != location.S3 {
		return nil, nil
	}
	var st *s3.Backend
	err := retention.Retry(ctx, retry.DefaultMaxAttempts, g.log, "open "+loc.String(), func() (err error) {
		st, err = s3.Open(ctx, s3ConfigFor(loc, g.locationOptions()))
		return err
	})
	return st, err
}

// retentionCacheFile is where the dates the extension learned are kept:
// $XDG_CACHE_HOME/rewind/<repository id>/retention.
func retentionCacheFile(r *repository.Repository) string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "rewind", r.Config().ID.String(), "retention")
}

// RetentionJSON is the `retention` line of `backup --json` and the
// `summary` line of `retention extend --json` (docs/JSON.md).
type RetentionJSON struct {
	MessageType string `json:"message_type"`
	*retention.Result
}

// extendRetention runs the extension on r (index loaded, locked) with the
// retention requests going to st, and reports it.
func (g *globals) extendRetention(ctx context.Context, r *repository.Repository, st *s3.Backend, messageType string) error {
	l := st.ObjectLock()
	file := retentionCacheFile(r)
	cache := retention.NewCache()
	if file != "" {
		var err error
		if cache, err = retention.LoadCache(file); err != nil {
			g.log.Warn("retention cache", "err", err)
		}
	}
	res, err := retention.Extend(ctx, r, retention.Retrying(st, retry.DefaultMaxAttempts, g.log),
		retention.Options{Retention: l.Retention, Slack: l.Slack(), Cache: cache})
	if res != nil && file != "" {
		if serr := cache.Save(file, time.Now()); serr != nil {
			g.log.Warn("retention cache", "err", serr)
		}
	}
	if res != nil {
		switch {
		case g.json:
			g.ui.JSONLine(RetentionJSON{MessageType: messageType, Result: res})
		case messageType == "summary" || !g.quiet:
			g.ui.Printf("%s\n", describeRetention(l, res))
		}
		if res.Missing > 0 {
			g.ui.Warnf("warning: the snapshots reference %s that the index does not hold; run `rewind check`\n", ui.Count(int64(res.Missing), "blob", "blobs"))
		}
	}
	return err
}

func describeRetention(l s3.ObjectLock, res *retention.Result) string {
	if res.Snapshots == 0 {
		return fmt.Sprintf("object lock (%s): no snapshot is younger than %s, nothing to keep locked", l.Mode, snapshot.FormatDuration(l.Retention))
	}
	return fmt.Sprintf("object lock (%s): what the %s younger than %s %s is locked until %s or later "+
		"(%s done before; of %s, %d known from the cache, %d looked up, %d extended: %s)",
		l.Mode, ui.Count(int64(res.Snapshots), "snapshot", "snapshots"), snapshot.FormatDuration(l.Retention), ui.Verb(int64(res.Snapshots), "needs", "need"),
		res.LockedUntil.Local().Format(time.DateTime), ui.Count(int64(res.Done), "snapshot", "snapshots"), ui.Count(int64(res.Files), "file", "files"),
		res.Cached, res.Lookups, res.Extended, ui.Count(int64(res.Lookups+res.Extended), "retention request", "retention requests"))
}

// extendAfterBackup extends the object lock retention after a backup
// stored sn, when the repository has object lock; otherwise it costs one
// HEAD request on S3 and nothing elsewhere.
func (g *globals) extendAfterBackup(ctx context.Context, r *repository.Repository, sn *snapshot.Snapshot) error {
	loc, err := g.location()
	if err != nil || loc.Scheme != location.S3 {
		return nil
	}
	st, err := g.openLockStore(ctx, loc)
	if err != nil {
		return fmt.Errorf("snapshot %s saved, but its object lock could not be checked: %w", sn.ID.Short(), err)
	}
	defer st.Close()
	if !st.ObjectLock().Enabled() {
		return nil
	}
	if err := g.extendRetention(ctx, r, st, "retention"); err != nil {
		return fmt.Errorf("snapshot %s saved, but the object lock of the older data it references could not all be extended "+
			"(run `rewind retention extend`): %w", sn.ID.Short(), err)
	}
	return nil
}

func newRetentionCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "retention",
		Short: "Keep S3 object lock retention in step with the snapshots",
		Long: `Commands for repositories created with init --object-lock (docs/OBJECT-LOCK.md).
Every backup does what retention extend does; run it by hand after a backup
that could not, or from a schedule.`,
		Example: `  rewind retention extend`,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "extend",
		Short: "Extend the object lock of what recent snapshots need",
		Long: `Make sure that every file a snapshot taken less than the repository's object
lock retention ago needs (its snapshot file, the packs holding its blobs, and
the index files, keys and config) stays locked until that long after the
snapshot was taken. Files locked too briefly, such as packs that a new
snapshot shares with old ones, are extended to the retention plus a quarter.

The dates already known are kept in $XDG_CACHE_HOME/rewind/<repository id>/
retention, so that each run asks the server only about new files: one
GetObjectRetention per file it has not seen, one PutObjectRetention per file
it extends. Takes a shared lock.`,
		Example: `  rewind retention extend
  rewind retention extend --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			loc, err := g.location()
			if err != nil {
				return err
			}
			if loc.Scheme != location.S3 {
				return fmt.Errorf("%s has no object lock: object lock needs an s3 repository made with init --object-lock", loc)
			}
			if g.backend.readOnly {
				return errors.New("retention extend changes retention dates, which --read-only forbids")
			}
			r, done, err := g.openLocked(ctx, lock.Shared, "retention extend", true)
			if err != nil {
				return err
			}
			defer done()
			st, err := g.openLockStore(ctx, loc)
			if err != nil {
				return err
			}
			defer st.Close()
			if !st.ObjectLock().Enabled() {
				return fmt.Errorf("%s has no object lock (it was not created with init --object-lock)", loc)
			}
			return g.extendRetention(ctx, r, st, "summary")
		},
	})
	return cmd
}

// RecoverJSON is the summary line of `recover-versions --json`
// (docs/JSON.md).
type RecoverJSON struct {
	MessageType string `json:"message_type"`
	DryRun      bool   `json:"dry_run"`
	Snapshots   int    `json:"snapshots"`
	*s3.RecoverResult
}

func newRecoverVersionsCmd(g *globals) *cobra.Command {
	var at string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "recover-versions --at TIME",
		Short: "Bring an S3 repository back to how it was at a time, from object versions",
		Long: `Restore the state of an S3 repository at TIME from the bucket's object versions,
after its current objects were deleted or overwritten (ransomware with the
backup host's credentials). On a bucket with object lock the locked versions
survive such an attack (docs/OBJECT-LOCK.md).

For each file, the version that was current at TIME is made current again:
the delete markers and versions stored after it are deleted, or, where one of
them is locked itself, the good version is copied on top. Files added after
TIME are hidden behind a delete marker (their versions stay). A file written
more than once before TIME is found by its hash: every name but config is
the BLAKE3-256 of the file's bytes. Lock files are left alone.

Pick a TIME before the attack began and after the last good backup. The
repository as it was then is opened first (with the password) and its
snapshots listed; --dry-run stops there and says what would change. Stop
every other rewind command on the repository first: recover-versions takes
no lock. Afterwards run rewind check --read-data and rewind retention extend.

TIME is RFC 3339 (2026-03-01T02:00:00Z) or local "2026-03-01 02:00[:05]".`,
		Example: `  rewind recover-versions --at "2026-03-01 02:00" --dry-run
  rewind recover-versions --at 2026-03-01T02:00:00Z`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			t, err := parseTime(at)
			if err != nil {
				return fmt.Errorf("--at: %w", err)
			}
			loc, err := g.location()
			if err != nil {
				return err
			}
			if loc.Scheme != location.S3 {
				return fmt.Errorf("recover-versions needs an s3 repository on a versioned bucket, not %s", loc)
			}
			if g.backend.readOnly && !dryRun {
				return errors.New("recover-versions changes the bucket, which --read-only forbids (use --dry-run)")
			}
			cfg := s3ConfigFor(loc, g.locationOptions())
			cfg.VersionsAt = t
			view, err := s3.Open(ctx, cfg)
			if err != nil {
				if location.IsNoRepository(err) {
					return fmt.Errorf("%w: no repository at %s in the object versions of %s", repository.ErrNoRepository, t.Format(time.RFC3339), loc)
				}
				return err
			}
			be := g.wrapBackend(loc, view)
			defer be.Close()
			r, sns, err := g.snapshotsAt(ctx, loc, be)
			if err != nil {
				return fmt.Errorf("open the repository as it was at %s: %w", t.Format(time.RFC3339), err)
			}
			defer r.Close()
			if !g.json {
				g.ui.Printf("at %s the repository held %s:\n", t.Local().Format(time.DateTime), ui.Count(int64(len(sns)), "snapshot", "snapshots"))
				for _, sn := range sns {
					g.ui.Printf("  %s  %s  %s  %s\n", sn.ID.Short(), sn.Time.Local().Format(time.DateTime), sn.Hostname, strings.Join(sn.Paths, " "))
				}
			}
			res, err := view.Recover(ctx, dryRun)
			if err != nil {
				return fmt.Errorf("recover-versions: %w", err)
			}
			if g.json {
				g.ui.JSONLine(RecoverJSON{MessageType: "summary", DryRun: dryRun, Snapshots: len(sns), RecoverResult: res})
			} else {
				verb := map[bool]string{true: "would restore", false: "restored"}[dryRun]
				g.ui.Printf("%s %s (%d by deleting the delete markers and versions above them, %d by copying), ", verb, ui.Count(int64(res.Restored), "file", "files"), res.ByDelete, res.ByCopy)
				g.ui.Printf("%s %s added later; %d unchanged; %s, %s read whole\n",
					map[bool]string{true: "would hide", false: "hid"}[dryRun], ui.Count(int64(res.Hidden), "file", "files"), res.Unchanged,
					ui.Count(int64(res.Requests), "changing request", "changing requests"), ui.Count(int64(res.Reads), "version", "versions"))
				if !dryRun {
					g.ui.Printf("Next: rewind check --read-data, and rewind retention extend.\n")
				}
			}
			if len(res.Lost) > 0 {
				return fmt.Errorf("files of the repository at %s that have no version whose bytes hash to their name, and were left as they are: %d (first: %s); run rewind check",
					t.Format(time.RFC3339), len(res.Lost), res.Lost[0])
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&at, "at", "", "the `time` to go back to: before the attack, after the last good backup")
	f.BoolVar(&dryRun, "dry-run", false, "list the snapshots at --at and count what would change, changing nothing")
	_ = cmd.MarkFlagRequired("at")
	return cmd
}

// snapshotsAt opens the repository in be, a view of object versions,
// with the password and lists its snapshots, so that a wrong time or
// password stops recovery before it changes anything.
func (g *globals) snapshotsAt(ctx context.Context, loc location.Location, be backend.Backend) (*repository.Repository, []*snapshot.Snapshot, error) {
	if err := repository.CheckFormat(ctx, be); err != nil {
		return nil, nil, err
	}
	pw, err := g.password(ctx, "Password for "+loc.String()+": ")
	if err != nil {
		return nil, nil, err
	}
	r, err := repository.Open(ctx, be, pw)
	if errors.Is(err, repository.ErrWrongPassword) {
		return nil, nil, g.wrongPasswordSource(err)
	}
	if err != nil {
		return nil, nil, err
	}
	sns, err := snapshot.List(ctx, r, func(i id.ID, err error) {
		g.ui.Warnf("warning: snapshot %s of that time cannot be read: %v\n", i.Short(), err)
	})
	if err != nil {
		r.Close()
		return nil, nil, err
	}
	return r, sns, nil
}

// parseTime reads an RFC 3339 time, or a local "2006-01-02 15:04[:05]"
// or "2006-01-02".
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q: want RFC 3339 (2026-03-01T02:00:00Z) or \"2026-03-01 02:00\"", s)
}
