package cli

import "github.com/spf13/cobra"

// pgSubcommands make the subcommands of `rewind pg`. Each file that adds
// one puts its constructor here.
var pgSubcommands = []func(*globals) *cobra.Command{
	newPgBackupCmd,
	newPgRestoreCmd,
}

func newPgCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pg",
		Short: "Back up and restore PostgreSQL clusters",
		Long: `PostgreSQL clusters as a source: online base backups of a running server,
and restores of them into a new data directory. See docs/POSTGRES.md.`,
		Example: `  rewind pg backup
  rewind pg restore --latest --target /var/lib/postgresql/15/restored --start --port 5433`,
		Args: cobra.NoArgs,
	}
	for _, sub := range pgSubcommands {
		cmd.AddCommand(sub(g))
	}
	return cmd
}
