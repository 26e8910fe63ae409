package schedule

import (
	"fmt"
	"strconv"
	"strings"
)

type parser struct {
	expr string
}

func (p *parser) errorf(off int, format string, args ...any) error {
	return &Error{Expr: p.expr, Offset: off, Msg: fmt.Sprintf(format, args...)}
}

// shorthands are systemd's named calendar events.
var shorthands = map[string]string{
	"minutely":     "*-*-* *:*:00",
	"hourly":       "*-*-* *:00:00",
	"daily":        "*-*-* 00:00:00",
	"weekly":       "Mon *-*-* 00:00:00",
	"monthly":      "*-*-01 00:00:00",
	"quarterly":    "*-01,04,07,10-01 00:00:00",
	"semiannually": "*-01,07-01 00:00:00",
	"yearly":       "*-01-01 00:00:00",
	"annually":     "*-01-01 00:00:00",
}

// cronMacros are cron's "@" schedules.
var cronMacros = map[string]string{
	"@yearly":   "0 0 1 1 *",
	"@annually": "0 0 1 1 *",
	"@monthly":  "0 0 1 * *",
	"@weekly":   "0 0 * * 0",
	"@daily":    "0 0 * * *",
	"@midnight": "0 0 * * *",
	"@hourly":   "0 * * * *",
}

func (p *parser) cronMacro(s string, off int) (*calendar, error) {
	if strings.ContainsAny(s, " \t") {
		return nil, p.errorf(off, "%q takes nothing after it", strings.Fields(s)[0])
	}
	if strings.EqualFold(s, "@reboot") {
		return nil, p.errorf(off, "@reboot is not a calendar schedule")
	}
	def, ok := cronMacros[strings.ToLower(s)]
	if !ok {
		return nil, p.errorf(off, "unknown cron macro %q (known: @hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually)", s)
	}
	return (&parser{expr: def}).cron(splitFields(def))
}

var weekdayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}
var monthNames = []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}

// weekday returns the number (Sunday = 0) of a systemd weekday name:
// three letters or the whole English name.
func weekday(s string) (int, bool) {
	l := strings.ToLower(s)
	for i, n := range weekdayNames {
		if l == n {
			return i, true
		}
	}
	full := []string{"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"}
	for i, n := range full {
		if l == n {
			return i, true
		}
	}
	return 0, false
}

func isLetter(b byte) bool { return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' }

func (p *parser) onCalendar(fields []field) (*calendar, error) {
	if len(fields) == 1 {
		if def, ok := shorthands[strings.ToLower(fields[0].s)]; ok {
			return (&parser{expr: def}).onCalendar(splitFields(def))
		}
	}
	c := &calendar{}
	i := 0
	if isLetter(fields[0].s[0]) {
		if err := p.weekdays(fields[0], &c.weekdays); err != nil {
			return nil, err
		}
		i++
	} else {
		c.weekdays.fill(0, 6)
	}
	var date, clock *field
	for ; i < len(fields); i++ {
		f := fields[i]
		switch {
		case strings.Contains(f.s, ":") && clock == nil:
			clock = &fields[i]
		case strings.Contains(f.s, "-") && date == nil && clock == nil:
			date = &fields[i]
		case isLetter(f.s[0]) && i == len(fields)-1:
			return nil, p.errorf(f.off, "time zones (%q) are not supported; schedules use the machine's local time", f.s)
		default:
			return nil, p.errorf(f.off, "unexpected %q: expected [WEEKDAYS] [YEAR-MONTH-DAY] [HOUR:MINUTE[:SECOND]]", f.s)
		}
	}
	if date != nil {
		if err := p.date(*date, c); err != nil {
			return nil, err
		}
	} else {
		c.anyYear = true
		c.months.fill(1, 12)
		c.days.fill(1, 31)
	}
	if clock != nil {
		if err := p.clock(*clock, c); err != nil {
			return nil, err
		}
	} else {
		c.hours.set(0)
		c.minutes.set(0)
		c.seconds.set(0)
	}
	return c, nil
}

func (p *parser) weekdays(f field, b *bits) error {
	off := f.off
	for _, item := range strings.Split(f.s, ",") {
		if item == "" {
			return p.errorf(off, "empty weekday in list")
		}
		first, last, isRange := strings.Cut(item, "..")
		lo, ok := weekday(first)
		if !ok {
			if _, _, dash := strings.Cut(first, "-"); dash {
				return p.errorf(off, "weekday range %q: write ranges with \"..\" (Mon..Fri)", item)
			}
			return p.errorf(off, "unknown weekday %q (Mon, Tue, Wed, Thu, Fri, Sat, Sun)", first)
		}
		hi := lo
		if isRange {
			if hi, ok = weekday(last); !ok {
				return p.errorf(off+len(first)+2, "unknown weekday %q (Mon, Tue, Wed, Thu, Fri, Sat, Sun)", last)
			}
		}
		for d := lo; ; d = (d + 1) % 7 {
			b.set(d)
			if d == hi {
				break
			}
		}
		off += len(item) + 1
	}
	return nil
}

func (p *parser) date(f field, c *calendar) error {
	if i := strings.IndexByte(f.s, '~'); i >= 0 {
		return p.errorf(f.off+i, "\"~\" (days counted from the end of the month) is not supported")
	}
	parts := strings.Split(f.s, "-")
	offs := make([]int, len(parts))
	o := f.off
	for i, s := range parts {
		offs[i] = o
		o += len(s) + 1
	}
	switch len(parts) {
	case 2: // MONTH-DAY
		c.anyYear = true
	case 3:
		if parts[0] == "*" {
			c.anyYear = true
		} else {
			var y bits
			if err := p.sysComp(parts[0], offs[0], yearBase, yearMax, "year", &y); err != nil {
				return err
			}
			c.years = y
		}
		parts, offs = parts[1:], offs[1:]
	default:
		return p.errorf(f.off, "date %q: expected YEAR-MONTH-DAY or MONTH-DAY", f.s)
	}
	if err := p.sysComp(parts[0], offs[0], 1, 12, "month", &c.months); err != nil {
		return err
	}
	return p.sysComp(parts[1], offs[1], 1, 31, "day", &c.days)
}

func (p *parser) clock(f field, c *calendar) error {
	parts := strings.Split(f.s, ":")
	if len(parts) != 2 && len(parts) != 3 {
		return p.errorf(f.off, "time %q: expected HOUR:MINUTE or HOUR:MINUTE:SECOND", f.s)
	}
	o := f.off
	if err := p.sysComp(parts[0], o, 0, 23, "hour", &c.hours); err != nil {
		return err
	}
	o += len(parts[0]) + 1
	if err := p.sysComp(parts[1], o, 0, 59, "minute", &c.minutes); err != nil {
		return err
	}
	o += len(parts[1]) + 1
	if len(parts) == 2 {
		c.seconds.set(0)
		return nil
	}
	if i := strings.IndexByte(parts[2], '.'); i >= 0 {
		return p.errorf(o+i, "fractions of a second are not supported")
	}
	return p.sysComp(parts[2], o, 0, 59, "second", &c.seconds)
}

// sysComp parses one systemd calendar component: a comma list of "*",
// N, A..B, each optionally followed by /STEP. Values are in lo..hi; a year
// is stored in b as value-yearBase.
func (p *parser) sysComp(s string, off, lo, hi int, what string, b *bits) error {
	return p.list(s, off, lo, hi, what, "..", nil, b)
}

// list parses a comma-separated list of values, ranges (written with
// rangeSep) and steps into b. names, when set, are accepted for values
// (index = value - lo).
func (p *parser) list(s string, off, lo, hi int, what, rangeSep string, names []string, b *bits) error {
	base := 0
	if what == "year" {
		base = yearBase
	}
	for _, item := range strings.Split(s, ",") {
		if item == "" {
			return p.errorf(off, "empty %s in %q", what, s)
		}
		r, stepS, hasStep := strings.Cut(item, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepS)
			if err != nil || n <= 0 || !digits(stepS) {
				return p.errorf(off+len(r)+1, "%s step %q is not a positive number", what, stepS)
			}
			step = n
		}
		a, z := lo, hi
		if r != "*" {
			first, last, isRange := strings.Cut(r, rangeSep)
			var err error
			if a, err = p.value(first, off, lo, hi, what, names); err != nil {
				return err
			}
			switch {
			case isRange:
				if z, err = p.value(last, off+len(first)+len(rangeSep), lo, hi, what, names); err != nil {
					return err
				}
				if z < a {
					return p.errorf(off, "%s range %q runs backwards", what, r)
				}
			case !hasStep:
				z = a
			}
		}
		for v := a; v <= z; v += step {
			b.set(v - base)
		}
		off += len(item) + 1
	}
	return nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func (p *parser) value(s string, off, lo, hi int, what string, names []string) (int, error) {
	for i, n := range names {
		if strings.EqualFold(s, n) {
			return lo + i, nil
		}
	}
	if !digits(s) {
		if s == "" {
			return 0, p.errorf(off, "missing %s", what)
		}
		return 0, p.errorf(off, "%s %q is not a number", what, s)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, p.errorf(off, "%s %s is out of range %d..%d", what, s, lo, hi)
	}
	return n, nil
}

// cron parses the five fields MINUTE HOUR DAY MONTH WEEKDAY.
func (p *parser) cron(f []field) (*calendar, error) {
	c := &calendar{anyYear: true}
	c.seconds.set(0)
	if err := p.list(f[0].s, f[0].off, 0, 59, "minute", "-", nil, &c.minutes); err != nil {
		return nil, err
	}
	if err := p.list(f[1].s, f[1].off, 0, 23, "hour", "-", nil, &c.hours); err != nil {
		return nil, err
	}
	if err := p.list(f[2].s, f[2].off, 1, 31, "day", "-", nil, &c.days); err != nil {
		return nil, err
	}
	if err := p.list(f[3].s, f[3].off, 1, 12, "month", "-", monthNames, &c.months); err != nil {
		return nil, err
	}
	var dow bits
	if err := p.list(f[4].s, f[4].off, 0, 7, "weekday", "-", weekdayNames, &dow); err != nil {
		return nil, err
	}
	for d := 0; d < 7; d++ {
		if dow.has(d) || (d == 0 && dow.has(7)) {
			c.weekdays.set(d)
		}
	}
	// Vixie cron: a day field starting with "*" does not restrict, and
	// when both restrict, either one matching is enough.
	c.domOrDow = !strings.HasPrefix(f[2].s, "*") && !strings.HasPrefix(f[4].s, "*")
	return c, nil
}
