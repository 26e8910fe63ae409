// Package filter matches paths against include and exclude patterns.
package filter

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path"
	"strings"
)

// Matcher decides which paths are excluded. A pattern without a slash
// matches a name at any depth ("*.log", "node_modules"); a pattern with a
// slash matches the whole absolute path, where "**" spans any number of
// directories ("/var/cache/**", "/home/*/.cache"). A pattern that matches a
// directory excludes everything below it.
type Matcher struct {
	names []string
	paths [][]string
}

// NewMatcher checks and compiles patterns.
func NewMatcher(patterns []string) (*Matcher, error) {
	m := &Matcher{}
	for _, p := range patterns {
		p = strings.TrimSpace(p)
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		if _, err := path.Match(strings.ReplaceAll(p, "**", "*"), ""); err != nil {
			return nil, fmt.Errorf("exclude pattern %q: %w", p, err)
		}
		if !strings.Contains(strings.TrimSuffix(p, "/"), "/") {
			m.names = append(m.names, strings.TrimSuffix(p, "/"))
			continue
		}
		p = path.Clean(p)
		if !strings.HasPrefix(p, "/") {
			p = "/**/" + p
		}
		m.paths = append(m.paths, strings.Split(strings.TrimPrefix(p, "/"), "/"))
	}
	return m, nil
}

// ReadPatternFile reads patterns from a file, one per line; empty lines and
// lines starting with # are ignored.
func ReadPatternFile(name string) ([]string, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("read exclude file: %w", err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out, sc.Err()
}

// Match reports whether the absolute path p (with base name name)
// matches a pattern.
func (m *Matcher) Match(p, name string) bool {
	if m == nil {
		return false
	}
	for _, pat := range m.names {
		if ok, _ := path.Match(pat, name); ok {
			return true
		}
	}
	if len(m.paths) == 0 {
		return false
	}
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for _, pat := range m.paths {
		if matchParts(pat, parts) {
			return true
		}
	}
	return false
}

// matchParts matches path components against pattern components, "**"
// standing for zero or more components. A pattern also matches every path
// below one it matches.
func matchParts(pat, parts []string) bool {
	if len(pat) == 0 {
		return true
	}
	if pat[0] == "**" {
		for i := 0; i <= len(parts); i++ {
			if matchParts(pat[1:], parts[i:]) {
				return true
			}
		}
		return false
	}
	if len(parts) == 0 {
		return false
	}
	if ok, _ := path.Match(pat[0], parts[0]); !ok {
		return false
	}
	return matchParts(pat[1:], parts[1:])
}
