package cli

import "github.com/spf13/cobra"

// sqliteSubcommands make the subcommands of `rewind sqlite`
// (docs/SQLITE.md). Each file that adds one puts its constructor here.
var sqliteSubcommands = []func(*globals) *cobra.Command{
	newSqliteBackupCmd,
}

// newSqliteCmd groups the SQLite commands.
func newSqliteCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sqlite",
		Short: "Back up live SQLite databases consistently",
		Long: `Commands for SQLite databases. backup takes a consistent copy of each live
database with SQLite's online backup API, in one read transaction, and stores
it as the database file at its own path in a snapshot, so that restore, dump,
versions and --at work on it as on any file. rewind backup and rewind watch
do the same by themselves for every database they meet (recognised by its
header); this command is for backing up named databases on their own.
docs/SQLITE.md explains how a capture works and how each failure looks.`,
		Example: `  rewind sqlite backup /srv/app/db.sqlite3
  rewind sqlite backup --tag hourly /var/lib/grafana/grafana.db /var/lib/app/state.db`,
		Args: cobra.NoArgs,
	}
	for _, sub := range sqliteSubcommands {
		cmd.AddCommand(sub(g))
	}
	return cmd
}
