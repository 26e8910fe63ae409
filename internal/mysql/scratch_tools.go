package mysql

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// ErrNoTable: the table asked for is not in the restored data.
var ErrNoTable = errors.New("no such table at the restored point")

// SplitTable reads db.name (either part may be quoted with backquotes).
func SplitTable(s string) (db, table string, err error) {
	parts := strings.Split(s, ".")
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return "", "", fmt.Errorf("--table %q: give database.table (as shop.orders)", s)
	}
	return strings.Trim(parts[0], "`"), strings.Trim(parts[1], "`"), nil
}

// CheckTable checks that db.table is a table or view of the server, and
// names the tables of db (or the databases) when it is not.
func (s *Scratch) CheckTable(ctx context.Context, db, table string) error {
	var n int
	err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?", db, table).Scan(&n)
	if err != nil {
		return err
	}
	if n == 1 {
		return nil
	}
	list := func(q string, args ...any) []string {
		rows, err := s.db.QueryContext(ctx, q, args...)
		if err != nil {
			return nil
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var v string
			if rows.Scan(&v) == nil {
				out = append(out, v)
			}
		}
		return out
	}
	names := list("SELECT table_name FROM information_schema.tables WHERE table_schema = ? ORDER BY 1 LIMIT 21", db)
	if len(names) == 0 {
		dbs := list("SELECT schema_name FROM information_schema.schemata WHERE schema_name NOT IN ('mysql','information_schema','performance_schema','sys') ORDER BY 1 LIMIT 21")
		return fmt.Errorf("%w: database %s does not exist at the restored point (its databases: %s)", ErrNoTable, db, nameList(dbs))
	}
	return fmt.Errorf("%w: %s.%s is not there (tables of %s: %s)", ErrNoTable, db, table, db, nameList(names))
}

func nameList(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	if len(names) > 20 {
		return strings.Join(names[:20], ", ") + ", ..."
	}
	return strings.Join(names, ", ")
}

// DumpTable runs mariadb-dump on the server for db.table (its CREATE
// TABLE and rows, in one transaction) and writes the SQL to file: through
// a temporary file beside it, renamed into place when mariadb-dump
// succeeded, so that file is whole or absent. It returns the size.
func (s *Scratch) DumpTable(ctx context.Context, db, table, file, program string) (int64, error) {
	bin, err := findServerProgram("mariadb-dump", program)
	if err != nil {
		return 0, err
	}
	dir, base := filepath.Split(file)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, ".rewind-"+base+"-*")
	if err != nil {
		return 0, fmt.Errorf("--dump %s: %w", file, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	co := s.ConnOptions()
	args := append([]string{"--no-defaults"}, co.ClientArgs()...)
	args = append(args, "--single-transaction", "--skip-dump-date", "--max-allowed-packet=1G", "--", db, table)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), co.ClientEnv()...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr limitedWriter
	cmd.Stdout, cmd.Stderr = f, &stderr
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("mariadb-dump %s.%s: %v: %s", db, table, err, strings.TrimSpace(stderr.String()))
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp, file); err != nil {
		return 0, err
	}
	ok = true
	return fi.Size(), nil
}

// CheckResult is what mariadb-check --check said.
type CheckResult struct {
	OK bool
	// Tables counts the tables checked; Failed lists those reported
	// with an error, with the messages.
	Tables int
	Failed []string
	Output string
}

// CheckAll runs mariadb-check --all-databases --check on the server.
func (s *Scratch) CheckAll(ctx context.Context, program string) (*CheckResult, error) {
	bin, err := findServerProgram("mariadb-check", program)
	if err != nil {
		return nil, err
	}
	co := s.ConnOptions()
	args := append([]string{"--no-defaults"}, co.ClientArgs()...)
	args = append(args, "--all-databases", "--check")
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), co.ClientEnv()...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr limitedWriter
	cmd.Stderr = &stderr
	out, runErr := cmd.Output()
	res := parseCheckOutput(string(out))
	res.Output = strings.TrimSpace(string(out) + "\n" + stderr.String())
	if runErr != nil {
		var ee *exec.ExitError
		if !errors.As(runErr, &ee) {
			return nil, fmt.Errorf("run mariadb-check: %w", runErr)
		}
		res.OK = false
		if len(res.Failed) == 0 {
			res.Failed = append(res.Failed, "mariadb-check exited with status "+fmt.Sprint(ee.ExitCode())+": "+lastLogLines(stderr.String(), 5))
		}
	}
	return res, nil
}

// parseCheckOutput reads mariadb-check's report: a line naming a table,
// then either "OK" on it or lines "note :", "warning :", "error :",
// "status :" below it. A table with an error line, or a status other
// than OK, has failed.
func parseCheckOutput(out string) *CheckResult {
	res := &CheckResult{OK: true}
	cur := ""
	bad := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimRight(line, "\r ")
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if !strings.HasPrefix(line, " ") && !strings.Contains(line, " : ") && len(f) >= 1 && strings.Contains(f[0], ".") {
			cur = f[0]
			res.Tables++
			if len(f) >= 2 && f[len(f)-1] != "OK" {
				bad[cur] = true
				res.Failed = append(res.Failed, line)
			}
			continue
		}
		kind, msg, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kind = strings.ToLower(strings.TrimSpace(kind))
		msg = strings.TrimSpace(msg)
		switch {
		case kind == "error" || (kind == "status" && !strings.EqualFold(msg, "OK")):
			if !bad[cur] || kind == "error" {
				res.Failed = append(res.Failed, cur+": "+msg)
			}
			bad[cur] = true
		}
	}
	res.OK = len(res.Failed) == 0
	return res
}
