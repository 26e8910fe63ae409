package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/counting"
	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/backend/location"
	"github.com/rewind-backup/rewind/internal/copier"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/password"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/ui"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"
)

// sourceRepo names the repository that copy reads from, and that init
// --copy-chunker-params-from takes the chunking of, with its password.
type sourceRepo struct {
	location        string
	passwordFile    string
	passwordCommand string
}

// addPasswordFlags registers --from-password-file and
// --from-password-command. Their environment variables are read when the
// password is needed, so that a flag wins over the environment.
func (s *sourceRepo) addPasswordFlags(f *pflag.FlagSet) {
	f.StringVar(&s.passwordFile, "from-password-file", "",
		"read the source repository's password from the first line of `file` (env REWIND_FROM_PASSWORD_FILE)")
	f.StringVar(&s.passwordCommand, "from-password-command", "",
		"run `command` and use the first line of its output as the source repository's password (env REWIND_FROM_PASSWORD_COMMAND)")
}

// passwordSettings are the places the source's password can be set; the
// destination's are never tried for the source.
func (s *sourceRepo) passwordSettings() []password.Setting {
	return []password.Setting{
		{Name: "--from-password-file", Kind: password.File, Flag: true, Value: s.passwordFile},
		{Name: "--from-password-command", Kind: password.Command, Flag: true, Value: s.passwordCommand},
		{Name: "REWIND_FROM_PASSWORD", Kind: password.Literal, Value: os.Getenv("REWIND_FROM_PASSWORD")},
		{Name: "REWIND_FROM_PASSWORD_FILE", Kind: password.File, Value: os.Getenv("REWIND_FROM_PASSWORD_FILE")},
		{Name: "REWIND_FROM_PASSWORD_COMMAND", Kind: password.Command, Value: os.Getenv("REWIND_FROM_PASSWORD_COMMAND")},
	}
}

// sourcePassword finds the source's password by the same precedence as
// the repository's (docs/CLI.md), else a prompt on a terminal.
func (g *globals) sourcePassword(ctx context.Context, s *sourceRepo, loc location.Location) ([]byte, string, error) {
	pw, from, ok, err := g.readPassword(ctx, s.passwordSettings())
	if err != nil || ok {
		return pw, from, err
	}
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return nil, "", errors.New("no password given for the source repository: set REWIND_FROM_PASSWORD, --from-password-file or --from-password-command")
	}
	pw, err = promptPassword(fmt.Sprintf("Password for the source repository %s: ", loc))
	return pw, "the prompt", err
}

// openSource opens the source repository without its index, and returns
// the request counter of its storage. It must be called before the
// destination is opened, since opening a backend makes it the one that
// g.backendStats reports.
func (g *globals) openSource(ctx context.Context, s *sourceRepo, flag string) (*repository.Repository, counting.Counter, error) {
	if s.location == "" {
		return nil, nil, fmt.Errorf("name the source repository with %s", flag)
	}
	loc, err := location.Parse(s.location)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", flag, err)
	}
	be, err := g.openBackend(ctx, loc)
	if errors.Is(err, local.ErrNoRepository) {
		return nil, nil, withHint(fmt.Errorf("source: %w: %s", repository.ErrNoRepository, loc),
			"Check --from-repo / REWIND_FROM_REPOSITORY: it names the repository copy reads from.")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("source: %w", err)
	}
	counter := g.backend.counter
	if err := repository.CheckFormat(ctx, be); err != nil {
		be.Close()
		return nil, nil, fmt.Errorf("source: %w", err)
	}
	pw, from, err := g.sourcePassword(ctx, s, loc)
	if err != nil {
		be.Close()
		return nil, nil, err
	}
	r, err := repository.Open(ctx, be, pw)
	if err != nil {
		be.Close()
		if errors.Is(err, repository.ErrWrongPassword) {
			err = fmt.Errorf("%w (the password came from %s)", err, from)
		}
		return nil, nil, fmt.Errorf("source repository %s: %w", loc, err)
	}
	return r, counter, nil
}

type copyOpts struct {
	from    sourceRepo
	filter  snapFilter
	workers int
}

func newCopyCmd(g *globals) *cobra.Command {
	var o copyOpts
	cmd := &cobra.Command{
		Use:   "copy --from-repo LOCATION [SNAPSHOT...]",
		Short: "Copy snapshots from another repository into this one",
		Long: `Copy snapshots from the repository given by --from-repo (or
REWIND_FROM_REPOSITORY) into the repository given by --repo, for an offsite
copy. Name the snapshots (IDs, unique prefixes, or latest), or give none to
copy every snapshot that passes --host, --tag and --path.

Only the blobs the destination lacks are transferred, decrypted with the
source's keys and encrypted again with the destination's. A snapshot
appears in the destination only once all its data is stored there, and
records the snapshot it was copied from, so a snapshot already copied is
skipped: running the same copy again transfers next to nothing, and a copy
that was interrupted is finished by running it again.

Create the destination with rewind init --copy-chunker-params-from SOURCE so
that both repositories cut and name data alike. Then the copy reads from the
source only the blobs the destination lacks, and backups made directly into
the destination deduplicate against copied data. Without it, every data
blob of the snapshots copied is read and hashed again (see docs/COPY.md).

The source's password comes from --from-password-file or
--from-password-command, else one of REWIND_FROM_PASSWORD,
REWIND_FROM_PASSWORD_FILE and REWIND_FROM_PASSWORD_COMMAND, else a prompt: a
flag wins over the environment, and two of the same level are an error. The
destination's password comes as for every command. Both repositories get a shared lock: backups and prunes of either
go on meanwhile.`,
		Example: `  rewind copy --from-repo /srv/backup/repo --repo s3:https://s3.example.com/offsite/web1
  rewind copy --from-repo /srv/backup/repo --from-password-file /root/.rewind-pw latest
  rewind copy --from-repo /srv/backup/repo --host web1 --tag nightly --json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCopy(cmd.Context(), g, &o, args)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.from.location, "from-repo", os.Getenv("REWIND_FROM_REPOSITORY"),
		"copy from the repository at `location` (env REWIND_FROM_REPOSITORY)")
	o.from.addPasswordFlags(f)
	f.IntVar(&o.workers, "workers", 0, "blobs transferred at once (default: twice the CPUs, at least 4)")
	o.filter.add(cmd)
	return cmd
}

func runCopy(ctx context.Context, g *globals, o *copyOpts, args []string) error {
	start := time.Now()
	src, srcCounter, err := g.openSource(ctx, &o.from, "--from-repo or REWIND_FROM_REPOSITORY")
	if err != nil {
		return err
	}
	defer src.Close()
	// Both locks are taken before either index is read: prune relies on it
	// (docs/FORMAT.md §11). The source's lock is shared, so its backups go
	// on; copy never writes to the source but this lock.
	srcLock, err := g.takeLock(ctx, src, lock.Shared, "copy")
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	defer g.releaseLock(ctx, srcLock)
	if err := src.LoadIndex(ctx); err != nil {
		return fmt.Errorf("source: load index: %w", err)
	}
	sns, err := copySelection(ctx, g, src, o, args)
	if err != nil {
		return err
	}

	dst, err := g.openRepo(ctx, false)
	if err != nil {
		return err
	}
	defer dst.Close()
	if dst.Config().ID == src.Config().ID {
		return errors.New("the source and the destination are the same repository")
	}
	lk, err := g.takeLock(ctx, dst, lock.Shared, "copy")
	if err != nil {
		return err
	}
	defer g.releaseLock(ctx, lk)
	if err := dst.LoadIndex(ctx); err != nil {
		return fmt.Errorf("load index: %w", err)
	}
	// Packs stored by a copy (or backup) killed before its index are
	// indexed now, so that their blobs are not transferred again.
	recovered, skipped, err := dst.IndexUnindexedPacks(ctx)
	if err != nil {
		return fmt.Errorf("index packs of interrupted copies: %w", err)
	}
	for _, p := range skipped {
		g.log.Warn("unreadable pack left out of the index", "pack", p.Pack.String(), "err", p.Err)
	}
	if recovered > 0 {
		g.log.Info("indexed packs left by an interrupted copy or backup", "packs", recovered)
	}
	existing, err := g.listSnapshots(ctx, dst)
	if err != nil {
		return err
	}

	counter := &ui.Counter{}
	c := copier.New(src, dst, existing, copier.Options{
		Workers:  o.workers,
		Progress: copyProgress{counter},
		// A lock that may have been taken for stale lets a prune delete
		// data this snapshot refers to: do not commit it.
		BeforeCommit: func(context.Context) error {
			if err := lk.Check(); err != nil {
				return fmt.Errorf("snapshot not saved: %w; the data already copied is kept, and the next copy reuses it", err)
			}
			return nil
		},
	})
	todo := 0
	for _, sn := range sns {
		if _, done := c.CopyOf(sn); !done {
			todo++
			if sn.Summary != nil {
				counter.TotalFiles.Add(sn.Summary.TotalFiles)
				counter.TotalBytes.Add(sn.Summary.TotalBytes)
			}
		}
	}
	if len(sns) == 0 {
		g.ui.Infof("no snapshot of the source matches\n")
	}
	if c.Mode() == copier.ModeRehash && todo > 0 {
		g.ui.Infof("The destination was not created with --copy-chunker-params-from this source: every data blob is read\n" +
			"and hashed again, and backups into the destination do not deduplicate against the copies (docs/COPY.md).\n")
	}
	sum := CopySummary{MessageType: "summary", Mode: string(c.Mode())}
	// With --json each snapshot's line comes as it is done; for people
	// they come after the progress bar, which a line would tear.
	var prog *ui.Progress
	if !g.json {
		prog = g.ui.StartProgress("copy", counter)
	}
	var (
		done    []copier.Result
		copyErr error
	)
	for _, sn := range sns {
		res, err := c.Copy(ctx, sn)
		if err != nil {
			copyErr = err
			break
		}
		sum.add(res)
		if g.json {
			printCopied(g, res)
		} else {
			done = append(done, res)
		}
	}
	if prog != nil {
		prog.Stop()
	}
	for _, res := range done {
		printCopied(g, res)
	}
	sum.DurationSeconds = time.Since(start).Seconds()
	s := srcCounter.Snapshot()
	sum.SourceBackend = &s
	sum.Backend = g.backendStats()
	printCopySummary(g, &sum)
	if copyErr != nil {
		return fmt.Errorf("%w (the snapshots listed above were copied; run the copy again to finish, it reuses what was stored)", copyErr)
	}
	return nil
}

// copySelection returns the source snapshots to copy, oldest first: those
// named, or every one that passes the filter.
func copySelection(ctx context.Context, g *globals, src *repository.Repository, o *copyOpts, args []string) ([]*snapshot.Snapshot, error) {
	f := o.filter.filter()
	if len(args) == 0 {
		all, err := g.listSnapshots(ctx, src)
		if err != nil {
			return nil, fmt.Errorf("source: %w", err)
		}
		var out []*snapshot.Snapshot
		for _, sn := range all {
			if f.Match(sn) {
				out = append(out, sn)
			}
		}
		return out, nil
	}
	seen := map[id.ID]bool{}
	var out []*snapshot.Snapshot
	for _, ref := range args {
		sn, err := snapshot.Find(ctx, src, ref, f)
		if err != nil {
			return nil, fmt.Errorf("source: %w", err)
		}
		if !seen[sn.ID] {
			seen[sn.ID] = true
			out = append(out, sn)
		}
	}
	// Oldest first, so that a snapshot's parent is copied before it and
	// the copy can name it.
	snapshot.SortByTime(out)
	return out, nil
}

// copyProgress feeds the copier's walk to the progress counter.
type copyProgress struct{ c *ui.Counter }

func (p copyProgress) Walked(files, bytes int64) {
	p.c.Files.Add(files)
	p.c.Bytes.Add(bytes)
}

// CopySnapshotJSON is a `snapshot` line of `copy --json` (docs/JSON.md).
type CopySnapshotJSON struct {
	MessageType string `json:"message_type"`
	SourceID    string `json:"source_id"`
	SnapshotID  string `json:"snapshot_id"`
	Status      string `json:"status"`
	DataBlobs   int64  `json:"data_blobs"`
	TreeBlobs   int64  `json:"tree_blobs"`
	BytesAdded  int64  `json:"bytes_added"`
}

func printCopied(g *globals, res copier.Result) {
	if res.InventoryError != nil {
		g.log.Warn("copied without its inventory", "snapshot", res.Source.ID.Short(), "err", res.InventoryError)
	}
	status := "copied"
	if res.Skipped {
		status = "already_copied"
	}
	if g.json {
		g.ui.JSONLine(CopySnapshotJSON{MessageType: "snapshot", SourceID: res.Source.ID.String(), SnapshotID: res.CopyID.String(),
			Status: status, DataBlobs: res.DataBlobs, TreeBlobs: res.TreeBlobs, BytesAdded: res.BytesAdded})
		return
	}
	when := res.Source.Time.Local().Format("2006-01-02 15:04:05")
	if res.Skipped {
		g.ui.Infof("snapshot %s (%s, %s) was copied before as %s\n", res.Source.ID.Short(), when, res.Source.Hostname, res.CopyID.Short())
		return
	}
	g.ui.Printf("snapshot %s (%s, %s) copied as %s: %s, %s\n", res.Source.ID.Short(), when, res.Source.Hostname,
		res.CopyID.Short(), ui.Count(int64(res.DataBlobs+res.TreeBlobs), "new blob", "new blobs"), ui.Bytes(res.BytesAdded))
}

// CopySummary is the last line of `copy --json` (docs/JSON.md).
type CopySummary struct {
	MessageType      string          `json:"message_type"`
	SnapshotsCopied  int             `json:"snapshots_copied"`
	SnapshotsSkipped int             `json:"snapshots_skipped"`
	DataBlobs        int64           `json:"data_blobs"`
	TreeBlobs        int64           `json:"tree_blobs"`
	BytesAdded       int64           `json:"bytes_added"`
	BytesStored      int64           `json:"bytes_added_packed"`
	Mode             string          `json:"mode"`
	DurationSeconds  float64         `json:"duration_seconds"`
	SourceBackend    *backendSummary `json:"source_backend"`
	Backend          *backendSummary `json:"backend"`
}

func (s *CopySummary) add(res copier.Result) {
	if res.Skipped {
		s.SnapshotsSkipped++
		return
	}
	s.SnapshotsCopied++
	s.DataBlobs += res.DataBlobs
	s.TreeBlobs += res.TreeBlobs
	s.BytesAdded += res.BytesAdded
	s.BytesStored += res.BytesStored
}

func printCopySummary(g *globals, s *CopySummary) {
	if g.json {
		g.ui.JSONLine(s)
		return
	}
	g.ui.Printf("%s copied, %d copied before; %s, %s (%s stored)\n",
		ui.Count(int64(s.SnapshotsCopied), "snapshot", "snapshots"), s.SnapshotsSkipped, ui.Count(int64(s.DataBlobs+s.TreeBlobs), "new blob", "new blobs"), ui.Bytes(s.BytesAdded), ui.Bytes(s.BytesStored))
	g.ui.Infof("source: %s, %s down; destination: %s, %s up\n",
		ui.Count(int64(s.SourceBackend.Requests.Total()), "request", "requests"), ui.Bytes(s.SourceBackend.BytesDown), ui.Count(int64(s.Backend.Requests.Total()), "request", "requests"), ui.Bytes(s.Backend.BytesUp))
}

// createRepository makes a new repository on be; with src, one that
// shares src's chunking and blob IDs (init --copy-chunker-params-from).
func createRepository(ctx context.Context, be backend.Backend, pw []byte, src *repository.Repository) (*repository.Repository, error) {
	if src == nil {
		return repository.Init(ctx, be, pw, repository.InitOptions{})
	}
	return repository.InitSharingChunking(ctx, be, pw, repository.InitOptions{}, src)
}
