package cli

// backup --stdin and --stdin-from-command: a stream stored as one file of
// a snapshot (archiver.SnapshotStream).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/streamcmd"
	"github.com/rewind-backup/rewind/internal/ui"
)

// streamOpts are backup's stream flags.
type streamOpts struct {
	stdin    bool
	command  bool
	filename string
}

func (o *streamOpts) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&o.stdin, "stdin", false, "back up standard input as one file (see --stdin-filename)")
	f.BoolVar(&o.command, "stdin-from-command", false, "run the command given after -- and back up its standard output as one file; if it fails, no snapshot is saved")
	f.StringVar(&o.filename, "stdin-filename", archiver.DefaultStreamName, "the `path` the stream is stored at in the snapshot")
}

// on reports whether a stream is backed up instead of paths.
func (o *streamOpts) on() bool { return o.stdin || o.command }

// checkArgs validates the arguments of a stream backup: none with
// --stdin, the command after -- with --stdin-from-command.
func (o *streamOpts) checkArgs(cmd *cobra.Command, args []string) ([]string, error) {
	if o.stdin && o.command {
		return nil, errors.New("--stdin and --stdin-from-command exclude each other")
	}
	if o.stdin {
		if len(args) > 0 {
			return nil, fmt.Errorf("--stdin backs up standard input, not paths (got %q)", args)
		}
		if term.IsTerminal(int(os.Stdin.Fd())) {
			return nil, errors.New("--stdin: standard input is a terminal; pipe the data in, as in: pg_dump mydb | rewind backup --stdin --stdin-filename /db/mydb.sql")
		}
		return nil, nil
	}
	dash := cmd.ArgsLenAtDash()
	if dash != 0 || len(args) == 0 {
		return nil, errors.New("--stdin-from-command: give the command after --, as in: rewind backup --stdin-from-command --stdin-filename /db/mydb.sql -- pg_dump mydb")
	}
	return args, nil
}

// runBackupStream stores standard input, or a command's output, as one
// file of a new snapshot. r is open, locked by lk, with its index loaded.
func runBackupStream(cmd *cobra.Command, g *globals, o *backupOpts, r *repository.Repository, lk *lock.Lock, host string, argv []string) error {
	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	var in io.Reader = os.Stdin
	var run *streamcmd.Cmd
	if o.stream.command {
		var err error
		if run, err = streamcmd.Start(ctx, argv); err != nil {
			return err
		}
		in = run.Stdout()
		defer func() {
			if run != nil {
				// The backup failed before the command was waited for: stop
				// it, and reap it.
				cancel()
				_ = run.Wait()
			}
		}()
	}
	counter := &ui.Counter{}
	a, err := archiver.New(r, archiver.Options{
		Hostname: host, Tags: o.tags, Logger: g.log, ProgramVersion: "rewind " + Version,
		Progress: &backupProgress{g: g, c: counter}, DryRun: o.dryRun,
		BeforeCommit: func(ctx context.Context) error {
			if run != nil {
				// The whole output is stored; the snapshot is saved only if
				// the command then exits with status 0.
				err := run.Wait()
				run = nil
				if err != nil {
					return fmt.Errorf("no snapshot saved: %w", err)
				}
			}
			return lockedCommit(lk)(ctx)
		},
	})
	if err != nil {
		return err
	}
	prog := g.ui.StartProgress("backup", counter)
	sn, err := a.SnapshotStream(ctx, in, archiver.StreamOptions{Name: o.stream.filename})
	prog.Stop()
	if err != nil {
		return err
	}
	if o.dryRun {
		printDryRunSummary(g, sn, nil, a)
		return nil
	}
	if err := g.extendAfterBackup(ctx, r, sn); err != nil {
		return err
	}
	printBackupSummary(g, sn, nil, a)
	return nil
}
