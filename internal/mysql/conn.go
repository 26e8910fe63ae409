// Package mysql backs up and restores MariaDB and MySQL servers: physical
// backups streamed from mariabackup, logical ones from mariadb-dump, the
// binary log received as a replica, and restores replayed to a moment
// (docs/MYSQL.md). This file holds how a server is reached.
package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"

	driver "github.com/go-sql-driver/mysql"
)

// DefaultSocket is the socket the Debian packages' server and clients use.
const DefaultSocket = "/run/mysqld/mysqld.sock"

// DefaultPort is MariaDB's TCP port.
const DefaultPort = 3306

// ConnOptions say how to reach a server, as the `mariadb` client takes
// them: --socket, --host/--port, --user, and the password from
// --mysql-password-file or an option file (--defaults-file, else the client's
// own files). Resolve fills the unset ones the way the client does.
type ConnOptions struct {
	Socket       string
	Host         string
	Port         int
	User         string
	PasswordFile string
	DefaultsFile string

	// Password is read from PasswordFile or the option files by Resolve;
	// it is never taken from a command line.
	Password string
}

// Resolve returns o with the option files' client settings under the
// flags' and the client's defaults: the user is the login name, a host of
// "" or "localhost" means the socket, and the socket is DefaultSocket.
func (o ConnOptions) Resolve() (ConnOptions, error) {
	var files []string
	required := false
	if o.DefaultsFile != "" {
		files, required = []string{o.DefaultsFile}, true
	} else {
		files = defaultOptionFiles
	}
	opts, err := ReadOptionFiles(files, required)
	if err != nil {
		return o, err
	}
	r := o
	if r.Socket == "" {
		r.Socket = opts["socket"]
	}
	if r.Host == "" {
		r.Host = opts["host"]
	}
	if r.Port == 0 && opts["port"] != "" {
		p, err := strconv.Atoi(opts["port"])
		if err != nil || p <= 0 || p > 65535 {
			return o, fmt.Errorf("option file: port %q is not a port number", opts["port"])
		}
		r.Port = p
	}
	if r.User == "" {
		r.User = opts["user"]
	}
	if r.PasswordFile != "" {
		b, err := os.ReadFile(r.PasswordFile)
		if err != nil {
			return o, fmt.Errorf("password file: %w", err)
		}
		r.Password = strings.TrimRight(string(b), "\r\n")
	} else if pw, ok := opts["password"]; ok {
		r.Password = pw
	}
	if r.User == "" {
		if u, err := user.Current(); err == nil {
			r.User = u.Username
		}
	}
	if r.Port == 0 {
		r.Port = DefaultPort
	}
	if r.UsesSocket() && r.Socket == "" {
		r.Socket = DefaultSocket
	}
	return r, nil
}

// UsesSocket reports whether the connection goes over the unix socket (no
// host, or "localhost", as the client treats it).
func (o ConnOptions) UsesSocket() bool {
	return o.Host == "" || o.Host == "localhost"
}

// Addr names the server for messages: the socket or host:port.
func (o ConnOptions) Addr() string {
	if o.UsesSocket() {
		return o.Socket
	}
	return fmt.Sprintf("%s:%d", o.Host, o.Port)
}

// DriverConfig is the go-sql-driver configuration of a resolved o.
func (o ConnOptions) DriverConfig() *driver.Config {
	c := driver.NewConfig()
	c.User = o.User
	c.Passwd = o.Password
	if o.UsesSocket() {
		c.Net, c.Addr = "unix", o.Socket
	} else {
		c.Net, c.Addr = "tcp", fmt.Sprintf("%s:%d", o.Host, o.Port)
	}
	c.ParseTime = true
	c.AllowNativePasswords = true
	c.InterpolateParams = true
	return c
}

// Open connects to the server of a resolved o and checks that it answers.
func Open(ctx context.Context, o ConnOptions) (*sql.DB, error) {
	connector, err := driver.NewConnector(o.DriverConfig())
	if err != nil {
		return nil, fmt.Errorf("mysql: %w", err)
	}
	db := sql.OpenDB(connector)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, ConnectError{Addr: o.Addr(), User: o.User, Err: err}
	}
	return db, nil
}

// ConnectError is a server that could not be reached or refused the login.
type ConnectError struct {
	Addr, User string
	Err        error
}

func (e ConnectError) Error() string {
	var me *driver.MySQLError
	if errors.As(e.Err, &me) && (me.Number == 1045 || me.Number == 1698) {
		return fmt.Sprintf("mysql: the server at %s refused user %q: %s (check --user and --mysql-password-file or the option file)", e.Addr, e.User, me.Message)
	}
	return fmt.Sprintf("mysql: cannot reach the server at %s as %q: %v (is it running? check --socket or --host/--port)", e.Addr, e.User, e.Err)
}

func (e ConnectError) Unwrap() error { return e.Err }

// ClientArgs are the connection arguments of the MariaDB client programs
// (mariadb, mariadb-dump, mariabackup, mariadb-check) for a resolved o;
// --defaults-file, when set, comes first as they require. The password is
// not among them: pass ClientEnv in the program's environment, so that it
// does not show in the process list.
func (o ConnOptions) ClientArgs() []string {
	var args []string
	if o.DefaultsFile != "" {
		args = append(args, "--defaults-file="+o.DefaultsFile)
	}
	if o.UsesSocket() {
		args = append(args, "--socket="+o.Socket)
	} else {
		args = append(args, "--host="+o.Host, "--port="+strconv.Itoa(o.Port), "--protocol=TCP")
	}
	if o.User != "" {
		args = append(args, "--user="+o.User)
	}
	return args
}

// ClientEnv is the environment entry that gives the client programs the
// password (MYSQL_PWD, which they all read), or nothing without one.
func (o ConnOptions) ClientEnv() []string {
	if o.Password == "" {
		return nil
	}
	return []string{"MYSQL_PWD=" + o.Password}
}
