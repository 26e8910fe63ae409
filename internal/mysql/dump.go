package mysql

import (
	"context"
	"fmt"
	"os"
	"os/exec"
)

// The mariadb-dump wrapper: argv only, the password in MYSQL_PWD.

// FindDump returns mariadb-dump (or mysqldump): path when given, else
// from PATH.
func FindDump(path string) (string, error) {
	if path != "" {
		fi, err := os.Stat(path)
		if err != nil || fi.IsDir() {
			return "", fmt.Errorf("mariadb-dump: %s is not a program", path)
		}
		return path, nil
	}
	for _, name := range []string{"mariadb-dump", "mysqldump"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("mariadb-dump not found in PATH: install it (Debian and Ubuntu: apt-get install mariadb-client)")
}

// dumpArgs are mariadb-dump's arguments for a consistent dump of every
// database: one transaction (InnoDB tables are read as of its start),
// with routines, events and triggers, and, when the server has a binary
// log, the binlog position and GTID of that start as comments
// (--master-data=2 --gtid), which ParseDumpPosition reads.
func dumpArgs(o ConnOptions, logBin bool) []string {
	args := o.ClientArgs() // --defaults-file, when set, must come first
	args = append(args, "--single-transaction", "--all-databases", "--routines", "--events", "--triggers")
	if logBin {
		args = append(args, "--master-data=2", "--gtid")
	}
	return args
}

// startDump starts mariadb-dump; its standard output is the dump.
func startDump(ctx context.Context, bin string, o ConnOptions, logBin bool) (*toolRun, error) {
	return startTool(ctx, bin, dumpArgs(o, logBin), o.ClientEnv())
}
