package plan

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

const (
	day  = 24 * time.Hour
	week = 7 * day
)

// ParseDuration reads a Go duration ("90s", "1h30m") that may also use
// the units d (24h) and w (7d): "2d", "1w", "1d12h". Negative durations
// are refused.
func ParseDuration(s string) (Duration, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, errors.New("empty duration")
	}
	if in == "0" {
		return 0, nil
	}
	if strings.HasPrefix(in, "-") {
		return 0, fmt.Errorf("duration %q is negative", s)
	}
	var total time.Duration
	rest := in
	for rest != "" {
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		j := i
		for j < len(rest) && (rest[j] < '0' || rest[j] > '9') && rest[j] != '.' {
			j++
		}
		if i == 0 || j == i {
			return 0, fmt.Errorf("duration %q: expected a number and a unit, such as 90s, 1h30m, 2d or 1w", s)
		}
		num, unit := rest[:i], rest[i:j]
		rest = rest[j:]
		var d time.Duration
		switch unit {
		case "d", "w":
			f, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, fmt.Errorf("duration %q: bad number %q", s, num)
			}
			d = time.Duration(f * float64(day))
			if unit == "w" {
				d = time.Duration(f * float64(week))
			}
		default:
			var err error
			if d, err = time.ParseDuration(num + unit); err != nil {
				return 0, fmt.Errorf("duration %q: unknown unit %q (use ns, us, ms, s, m, h, d or w)", s, unit)
			}
		}
		total += d
	}
	return Duration(total), nil
}

// String writes d so that ParseDuration reads it back: whole days as
// "2d" or "1w", anything else as Go does without zero units ("25h",
// "1h30m", "90s" is "1m30s").
func (d Duration) String() string {
	t := time.Duration(d)
	switch {
	case t == 0:
		return "0s"
	case t%week == 0:
		return fmt.Sprintf("%dw", t/week)
	case t%day == 0:
		return fmt.Sprintf("%dd", t/day)
	}
	return trimZeroUnits(t.String())
}

// trimZeroUnits turns Go's "25h0m0s" into "25h" and "1h30m0s" into "1h30m".
func trimZeroUnits(s string) string {
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// MarshalText writes d as String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads d as ParseDuration does.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	*d = v
	return err
}

// MarshalYAML writes d as a string ("25h").
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// SplitCommand splits s into words as a POSIX shell would: blanks separate
// words, single quotes keep everything literally, double quotes keep all
// but backslash escapes of \ " $ `, and a backslash outside quotes keeps
// the next character. Nothing is expanded: the words are run as argv.
func SplitCommand(s string) (Command, error) {
	var words Command
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\\':
			if i+1 >= len(s) {
				return nil, errors.New("command ends with a lone backslash")
			}
			i++
			if s[i] != '\n' {
				cur.WriteByte(s[i])
			}
			inWord = true
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("unterminated single quote at character %d", i+1)
			}
			cur.WriteString(s[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case c == '"':
			j := i + 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' && j+1 < len(s) && strings.IndexByte("\\\"$`\n", s[j+1]) >= 0 {
					j++
				}
				cur.WriteByte(s[j])
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated double quote at character %d", i+1)
			}
			i = j
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// String writes c as one line a shell would split back into c.
func (c Command) String() string {
	out := make([]string, len(c))
	for i, w := range c {
		if w != "" && !strings.ContainsAny(w, " \t\n'\"\\$`*?[]{}()<>|&;#~") {
			out[i] = w
			continue
		}
		out[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}

// MarshalYAML writes a step: its kind as the key, then its modifiers.
func (s *Step) MarshalYAML() (any, error) {
	n := &yaml.Node{Kind: yaml.MappingNode}
	add := func(k string, v any) {
		var vn yaml.Node
		_ = vn.Encode(v)
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: k}, &vn)
	}
	if s.Kind == StepRun || s.Kind == StepCheck {
		add(s.Kind, []string(s.Command))
	} else {
		add(s.Kind, s.Arg)
	}
	if s.Timeout != 0 {
		add("timeout", s.Timeout.String())
	}
	if s.Max != 0 {
		add("max", s.Max.String())
	}
	if s.Always {
		add("always", true)
	}
	return n, nil
}
