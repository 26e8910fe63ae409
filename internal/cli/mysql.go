package cli

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rewind-backup/rewind/internal/mysql"
)

// mysqlSubcommands make the subcommands of `rewind mysql` (docs/MYSQL.md).
// Each file that adds one puts its constructor here.
var mysqlSubcommands = []func(*globals) *cobra.Command{
	newMysqlBackupCmd,
	newMysqlRestoreCmd,
	newMysqlVerifyCmd,
}

// newMysqlCmd groups the MariaDB/MySQL commands.
func newMysqlCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mysql",
		Short: "Back up and restore MariaDB and MySQL: physical backups, the binary log, restores to any second",
		Long: `Commands for MariaDB (and MySQL) servers. backup streams a hot physical
backup from mariabackup into a snapshot (or, with --logical, a dump), binlog
receive keeps the binary log in the repository as a replica does, and
restore brings a data directory back to any moment the stored binary log
reaches. check reports the binary log's continuity and verify is a restore
drill. The server is reached as the mariadb client reaches it: --socket,
--host/--port, --user, and the password from --mysql-password-file or an option
file (--defaults-file, else the client's own files). docs/MYSQL.md explains
the setup and how each part fails.`,
		Example: `  rewind mysql backup
  rewind mysql binlog receive --user repl --mysql-password-file /etc/rewind/repl.pw
  rewind mysql restore --at '2026-12-07 10:31:05' --target /var/lib/mysql-restored
  rewind mysql check`,
		Args: cobra.NoArgs,
	}
	for _, sub := range mysqlSubcommands {
		cmd.AddCommand(sub(g))
	}
	return cmd
}

// mysqlConnFlags are the connection flags every mysql command takes.
type mysqlConnFlags struct {
	o mysql.ConnOptions
}

// register adds the connection flags to f. The hostname a snapshot
// records is --hostname on these commands, since --host is the server's.
func (c *mysqlConnFlags) register(f *pflag.FlagSet) {
	f.StringVar(&c.o.Socket, "socket", "", "the server's unix `socket` (default: the option files', else "+mysql.DefaultSocket+")")
	f.StringVar(&c.o.Host, "host", "", "the server's `host` name or address, for TCP (default: the socket)")
	f.IntVar(&c.o.Port, "port", 0, "the server's TCP `port` (default 3306)")
	f.StringVar(&c.o.User, "user", "", "log in as this `user` (default: the option files', else the login name)")
	f.StringVar(&c.o.PasswordFile, "mysql-password-file", "", "read the server password from this `file` (default: the option files' password)")
	f.StringVar(&c.o.DefaultsFile, "defaults-file", "", "read client options from this `file` only, as the mariadb client does")
}

// resolve applies the option files and the client's defaults.
func (c *mysqlConnFlags) resolve() (mysql.ConnOptions, error) {
	return c.o.Resolve()
}
