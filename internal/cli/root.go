// Package cli implements rewind's commands on top of the repository,
// archiver and restorer packages.
package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/restorer"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/ui"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit codes, documented in docs/CLI.md.
const (
	ExitOK          = 0
	ExitFatal       = 1
	ExitPartial     = 3
	ExitNoRepo      = 10
	ExitLocked      = 11
	ExitBadPassword = 12
	// A command stopped by SIGINT exits 130, by SIGTERM 143 (128 plus the
	// signal's number, as shells report a process killed by it).
	ExitInterrupted = 128 + int(syscall.SIGINT)
	ExitTerminated  = 128 + int(syscall.SIGTERM)
)

// Version is set at build time with -ldflags "-X ...cli.Version=...".
var Version = "0.1.0-dev"

// globals are the flags every command shares.
type globals struct {
	repo            string
	passwordFile    string
	passwordCommand string
	json            bool
	quiet           bool
	verbose         int
	logFormat       string
	noLock          bool
	retryLock       time.Duration
	backend         backendFlags
	ui              *ui.UI
	log             *slog.Logger

	// passwordTimeout is --password-timeout (see passwordOptions).
	passwordTimeout time.Duration
	// passwordFrom names where the password in use came from, for the
	// wrong-password message.
	passwordFrom string
	rootFlags    *pflag.FlagSet // the global flags, to tell given ones
}

// exitError carries an exit code with an error that was already reported
// or needs reporting.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error { return &exitError{code: code, err: err} }

// Main runs the CLI and returns the process exit code.
func Main(args []string) int {
	ctx, stop, caught := signalContext()
	defer stop()
	if stopProfile := startProfiling(); stopProfile != nil {
		defer stopProfile()
	}
	// The heap holds little that lives long (packs are spooled to files),
	// so a tighter GC target costs little CPU and keeps the peak memory of
	// a backup or restore low on small servers.
	debug.SetGCPercent(60)
	g := &globals{}
	root := newRoot(g)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	if sig := caught(); sig != 0 && errors.Is(err, context.Canceled) {
		// The command stopped because of the signal, and cleaned up on
		// its way out (a backup keeps the packs it stored, which the next
		// one reuses): say so plainly, not "context canceled".
		fmt.Fprintf(os.Stderr, "rewind: interrupted (%s)\n", signalName(sig))
		return 128 + int(sig)
	}
	code := exitCode(err)
	if code != ExitPartial || !g.json {
		fmt.Fprintf(os.Stderr, "rewind: %v\n", err)
		if hint := hintFor(err); hint != "" {
			fmt.Fprintf(os.Stderr, "%s\n", hint)
		}
	}
	return code
}

func exitCode(err error) int {
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	switch {
	case errors.Is(err, repository.ErrNoRepository):
		return ExitNoRepo
	case errors.Is(err, repository.ErrWrongPassword):
		return ExitBadPassword
	case errors.Is(err, lock.ErrLocked):
		return ExitLocked
	case errors.Is(err, restorer.ErrIncomplete), errors.Is(err, restorer.ErrNotAllKept), errors.Is(err, snapshot.ErrNotBackedUp):
		return ExitPartial
	}
	return ExitFatal
}

// hintFor says what to do about common errors.
func hintFor(err error) string {
	if h, ok := ownHint(err); ok {
		return h
	}
	switch {
	case errors.Is(err, repository.ErrNoRepository):
		return "Create one with `rewind init --repo PATH`, or check --repo / REWIND_REPOSITORY."
	case errors.Is(err, repository.ErrWrongPassword):
		return "Check REWIND_PASSWORD, --password-file or --password-command; `rewind key list` shows the keys once you are in."
	case errors.Is(err, repository.ErrRepositoryExists):
		return "Nothing was written. Use the repository with its own password, or give init another --repo."
	case errors.Is(err, repository.ErrNewerFormat):
		return "Install a newer rewind to read this repository; nothing was changed."
	case errors.Is(err, repository.ErrCorrupt):
		return "Stored data failed verification; run `rewind check --read-data` to see what is damaged."
	case errors.Is(err, lock.ErrLocked):
		return lockedHint(err)
	}
	return ""
}

// listingCommands print the data they are asked for: -q silences their
// notices, not the data. Every other command prints a report (a summary,
// what it did), which -q silences in full, leaving only errors.
var listingCommands = map[string]bool{
	"rewind snapshots": true, "rewind ls": true, "rewind find": true,
	"rewind cat": true, "rewind dump": true, "rewind diff": true,
	"rewind versions": true, "rewind key list": true, "rewind list": true,
	"rewind config": true, "rewind version": true, "rewind stats": true,
	"rewind watch": true, "rewind inventory show": true, "rewind inventory diff": true,
	"rewind events": true, "rewind status": true,
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "rewind",
		Short: "Encrypted, deduplicating backup and recovery for servers",
		Long: `rewind backs up files into an encrypted, deduplicated, compressed repository
and brings them back: one file, a directory, or a whole server.

Without --repo or REWIND_REPOSITORY, rewind uses a default repository in your
data directory, created on the first backup with a generated password file.

The password comes from --password-file or --password-command, else from one
of REWIND_PASSWORD, REWIND_PASSWORD_FILE and REWIND_PASSWORD_COMMAND: a flag
wins over the environment, and two of the same level are an error naming
both. A password command is killed after --password-timeout (default 60s).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			g.ui = ui.New(g.json, g.quiet)
			g.ui.Listing = listingCommands[cmd.CommandPath()]
			log, err := newLogger(os.Stderr, g.logFormat, g.verbose)
			if err != nil {
				return err
			}
			g.log = log
			slog.SetDefault(log)
			return g.checkNoLock(cmd)
		},
	}
	f := root.PersistentFlags()
	f.StringVarP(&g.repo, "repo", "r", os.Getenv("REWIND_REPOSITORY"), "repository `location` (PATH, local:PATH, s3:https://HOST/BUCKET[/PREFIX]; env REWIND_REPOSITORY)")
	addPasswordFlags(f, g)
	f.BoolVar(&g.json, "json", false, "write machine-readable JSON to stdout")
	f.BoolVarP(&g.quiet, "quiet", "q", false, "print only errors")
	f.CountVarP(&g.verbose, "verbose", "v", "log more (-v info, -vv debug)")
	f.StringVar(&g.logFormat, "log-format", "text", "format of the logs on stderr: `text` or json")
	f.BoolVar(&g.noLock, "no-lock", false, "do not lock the repository (read-only commands only, for read-only repositories)")
	f.DurationVar(&g.retryLock, "retry-lock", 0, "if the repository is locked, keep trying for up to `duration` (e.g. 10m)")
	addBackendFlags(f, &g.backend)
	root.AddCommand(
		newInitCmd(g), newBackupCmd(g), newRestoreCmd(g), newDumpCmd(g),
		newSnapshotsCmd(g), newLsCmd(g), newFindCmd(g), newDiffCmd(g),
		newCatCmd(g), newKeyCmd(g), newCheckCmd(g), newVersionCmd(),
		newForgetCmd(g), newRepairCmd(g), newPruneCmd(g),
		newProtectCmd(g), newUnprotectCmd(g), newConfigCmd(g),
		newVersionsCmd(g), newTimelineCmd(g), newRollbackCmd(g), newMarkCmd(g), newUnmarkCmd(g),
		newCopyCmd(g), newTagCmd(g), newRewriteCmd(g), newStatsCmd(g),
		newRetentionCmd(g), newRecoverVersionsCmd(g),
		newWatchCmd(g), newPlanCmd(g), newInventoryCmd(g),
		newAgentCmd(g), newEventsCmd(g), newStatusCmd(g),
		newListCmd(g), newUnlockCmd(g), newGenerateCmd(),
		newPgCmd(g),
		newSqliteCmd(g),
		newMysqlCmd(g),
		newChmodCmd(g),
		newInternalThawCmd(g),
		newMountCmd(g),
		newInstantCmd(g),
		newExportCmd(g),
		newRunbookCmd(g),
		newRescueCmd(g),
		newDrillCmd(g),
		newRecoverCmd(g),
	)
	return root
}
