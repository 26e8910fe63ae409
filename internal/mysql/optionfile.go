package mysql

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// clientGroups are the option-file groups the `mariadb` client reads, in
// the order it reads them (a later group overrides an earlier one).
var clientGroups = []string{"client", "client-server", "client-mariadb", "mysql", "mariadb-client"}

// defaultOptionFiles are the files the MariaDB client tools read when no
// --defaults-file is given, in order; ~ is the user's home.
var defaultOptionFiles = []string{"/etc/my.cnf", "/etc/mysql/my.cnf", "~/.my.cnf"}

// maxIncludeDepth bounds !include chains (a file that includes itself).
const maxIncludeDepth = 10

// Options are the settings read from option files: the last value of each
// name, names lower-cased and with '_' spelled '-'.
type Options map[string]string

// ReadOptionFiles reads files (missing ones are skipped unless required)
// and returns the client groups' settings. A file named with
// --defaults-file must exist: pass required=true.
func ReadOptionFiles(files []string, required bool) (Options, error) {
	opts := Options{}
	for _, f := range files {
		if strings.HasPrefix(f, "~/") {
			home, err := os.UserHomeDir()
			if err != nil {
				continue
			}
			f = filepath.Join(home, f[2:])
		}
		if err := readOptionFile(f, opts, required, 0); err != nil {
			return nil, err
		}
	}
	return opts, nil
}

func readOptionFile(path string, opts Options, required bool, depth int) error {
	if depth > maxIncludeDepth {
		return fmt.Errorf("option file %s: includes nest deeper than %d (an include loop?)", path, maxIncludeDepth)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) && !required {
			return nil
		}
		return fmt.Errorf("option file: %w", err)
	}
	return parseOptions(path, string(data), opts, depth)
}

// parseOptions reads one option file's text into opts. Only the client
// groups count; !include FILE and !includedir DIR (files ending .cnf, in
// name order) are followed.
func parseOptions(path, text string, opts Options, depth int) error {
	inClient := false
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		switch {
		case s == "" || s[0] == '#' || s[0] == ';':
			continue
		case strings.HasPrefix(s, "!includedir"):
			dir := strings.TrimSpace(strings.TrimPrefix(s, "!includedir"))
			entries, err := os.ReadDir(dir)
			if err != nil {
				continue // a missing include directory is not an error for the client tools either
			}
			names := make([]string, 0, len(entries))
			for _, e := range entries {
				if !e.IsDir() && strings.HasSuffix(e.Name(), ".cnf") {
					names = append(names, e.Name())
				}
			}
			sort.Strings(names)
			for _, n := range names {
				if err := readOptionFile(filepath.Join(dir, n), opts, false, depth+1); err != nil {
					return err
				}
			}
			continue
		case strings.HasPrefix(s, "!include"):
			f := strings.TrimSpace(strings.TrimPrefix(s, "!include"))
			if err := readOptionFile(f, opts, false, depth+1); err != nil {
				return err
			}
			continue
		case s[0] == '[':
			end := strings.IndexByte(s, ']')
			if end < 0 {
				return fmt.Errorf("option file %s line %d: group header %q has no ']'", path, line, s)
			}
			group := strings.ToLower(strings.TrimSpace(s[1:end]))
			inClient = false
			for _, g := range clientGroups {
				if group == g {
					inClient = true
				}
			}
			continue
		}
		if !inClient {
			continue
		}
		name, value, _ := strings.Cut(s, "=")
		name = strings.ReplaceAll(strings.ToLower(strings.TrimSpace(name)), "_", "-")
		opts[name] = unquoteOption(strings.TrimSpace(stripComment(value)))
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("option file %s: %w", path, err)
	}
	return nil
}

// stripComment removes a trailing "# comment" outside quotes.
func stripComment(v string) string {
	quote := byte(0)
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote == 0 && (c == '"' || c == '\''):
			quote = c
		case quote == 0 && c == '#':
			return v[:i]
		}
	}
	return v
}

// unquoteOption strips one pair of matching quotes and reads the escapes
// the client tools read (\n \t \\ \s).
func unquoteOption(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		v = v[1 : len(v)-1]
	}
	if !strings.Contains(v, `\`) {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '\\' || i+1 == len(v) {
			b.WriteByte(v[i])
			continue
		}
		i++
		switch v[i] {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 's':
			b.WriteByte(' ')
		default:
			b.WriteByte(v[i])
		}
	}
	return b.String()
}
