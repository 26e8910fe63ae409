package cli

import (
	"github.com/spf13/cobra"
)

// newPgCmd groups the PostgreSQL commands (docs/POSTGRES.md).
func newPgCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pg",
		Short: "Back up PostgreSQL: archive its WAL into the repository and fetch it back",
		Long: `Commands for PostgreSQL clusters. wal-push is PostgreSQL's archive_command and
wal-fetch its restore_command: every WAL segment the server completes is
stored in the repository, encrypted and compressed, and read back during
recovery. wal-list shows what is stored. docs/POSTGRES.md explains the
setup and how each part fails.`,
		Example: `  rewind pg wal-push --repo /backup/repo --password-file /etc/rewind/pg.password pg_wal/000000010000000000000003
  rewind pg wal-list --repo /backup/repo`,
	}
	cmd.AddCommand(newPgWalPushCmd(g), newPgWalFetchCmd(g), newPgWalListCmd(g))
	return cmd
}
