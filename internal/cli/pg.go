package cli

import "github.com/spf13/cobra"

// pgSubcommands make the subcommands of `rewind pg` (docs/POSTGRES.md).
// Each file that adds one puts its constructor here.
var pgSubcommands = []func(*globals) *cobra.Command{
	newPgBackupCmd,
	newPgRestoreCmd,
	newPgWalPushCmd,
	newPgWalFetchCmd,
	newPgWalListCmd,
	newPgCheckCmd,
	newPgVerifyCmd,
	newPgReceiveCmd,
}

// newPgCmd groups the PostgreSQL commands.
func newPgCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pg",
		Short: "Back up and restore PostgreSQL: base backups, WAL archiving, restores",
		Long: `Commands for PostgreSQL clusters. backup takes an online base backup of a
running server into a snapshot, and restore brings one back as a new data
directory. wal-push is PostgreSQL's archive_command and wal-fetch its
restore_command: every WAL segment the server completes is stored in the
repository, encrypted and compressed, and read back during recovery.
wal-list shows what is stored, and check whether it serves every retained
base backup (prune removes the WAL none needs). verify is a restore drill
into a scratch instance, recorded with its RTO in the event log.
docs/POSTGRES.md explains the setup and how each part fails.`,
		Example: `  sudo -u postgres rewind pg backup
  rewind pg restore --latest --target /var/lib/postgresql/15/restored --start --port 5433
  rewind pg wal-list
  rewind pg check
  rewind pg verify`,
		Args: cobra.NoArgs,
	}
	for _, sub := range pgSubcommands {
		cmd.AddCommand(sub(g))
	}
	return cmd
}
