// Package schedule parses the schedules of a plan's jobs and computes
// their fire times. Two syntaxes are accepted: systemd's OnCalendar
// expressions (systemd.time(7): "*-*-* 02:00:00", "Mon..Fri 02:30",
// "daily", "*:0/15") and five-field cron ("0 2 * * *", "*/15 * * * 1-5",
// "@daily"). Both are compiled to the same calendar matcher.
package schedule

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Schedule is a parsed schedule.
type Schedule interface {
	// Next returns the first fire time strictly after after, in after's
	// time zone, or the zero time when the schedule never fires again.
	Next(after time.Time) time.Time
	// String returns the expression the schedule was parsed from.
	String() string
}

// Error is a schedule that does not parse: Offset is the 0-based byte
// offset in Expr of the part that is wrong.
type Error struct {
	Expr   string
	Offset int
	Msg    string
}

func (e *Error) Error() string {
	return fmt.Sprintf("schedule %q, column %d: %s", e.Expr, e.Offset+1, e.Msg)
}

// Parse parses a systemd OnCalendar expression or a five-field cron
// expression (or a cron "@daily" macro).
func Parse(expr string) (Schedule, error) {
	trimmed := strings.TrimSpace(expr)
	lead := strings.Index(expr, trimmed)
	if trimmed == "" {
		return nil, &Error{Expr: expr, Msg: "empty schedule"}
	}
	p := &parser{expr: expr}
	var c *calendar
	var err error
	if strings.HasPrefix(trimmed, "@") {
		c, err = p.cronMacro(trimmed, lead)
	} else if fields := splitFields(expr); len(fields) == 5 {
		c, err = p.cron(fields)
	} else {
		c, err = p.onCalendar(fields)
	}
	if err != nil {
		return nil, err
	}
	c.expr = trimmed
	return c, nil
}

// field is one whitespace-separated word of an expression and its offset.
type field struct {
	s   string
	off int
}

func splitFields(expr string) []field {
	var out []field
	start := -1
	for i, r := range expr {
		space := r == ' ' || r == '\t' || r == '\n' || r == '\r'
		switch {
		case !space && start < 0:
			start = i
		case space && start >= 0:
			out = append(out, field{expr[start:i], start})
			start = -1
		}
	}
	if start >= 0 {
		out = append(out, field{expr[start:], start})
	}
	return out
}

// bits is a set of small integers (0..255).
type bits [4]uint64

func (b *bits) set(v int)       { b[v/64] |= 1 << (uint(v) % 64) }
func (b *bits) has(v int) bool  { return v >= 0 && v < 256 && b[v/64]&(1<<(uint(v)%64)) != 0 }
func (b *bits) empty() bool     { return b[0]|b[1]|b[2]|b[3] == 0 }
func (b *bits) fill(lo, hi int) { b.step(lo, hi, 1) }
func (b *bits) step(lo, hi, s int) {
	for v := lo; v <= hi; v += s {
		b.set(v)
	}
}

// Years are stored as offsets from yearBase; systemd accepts 1970..2199.
const (
	yearBase = 1970
	yearMax  = 2199
)

// calendar matches times whose fields are all in the sets. Weekdays use
// time.Weekday numbering (Sunday = 0).
type calendar struct {
	expr                    string
	years                   bits // offsets from yearBase
	anyYear                 bool
	months, days, weekdays  bits
	hours, minutes, seconds bits
	// domOrDow is cron's rule: when both day of month and weekday are
	// restricted, a day matching either one fires.
	domOrDow bool
}

func (c *calendar) String() string { return c.expr }

func (c *calendar) yearOK(y int) bool {
	return c.anyYear || c.years.has(y-yearBase)
}

func (c *calendar) dayOK(t time.Time) bool {
	dom, dow := c.days.has(t.Day()), c.weekdays.has(int(t.Weekday()))
	if c.domOrDow {
		return dom || dow
	}
	return dom && dow
}

// lastYear is the year after which Next gives up: the weekday and leap
// year pattern repeats every 28 years inside 1901..2099, so a schedule
// that has not fired in 29 years never will.
func (c *calendar) lastYear(from int) int {
	if !c.anyYear {
		for y := yearMax; y >= yearBase; y-- {
			if c.years.has(y - yearBase) {
				return y
			}
		}
		return 0
	}
	return from + 29
}

// skippedHourFires reports whether a DST jump forward between the hour h
// and the instant next (the top of the next absolute hour) skipped a wall
// clock hour of the schedule.
func (c *calendar) skippedHourFires(h int, next time.Time) bool {
	for skipped := h + 1; skipped < 24 && skipped != next.Hour(); skipped++ {
		if c.hours.has(skipped) {
			return true
		}
	}
	return false
}

// repeatedHour reports whether t is in the second pass of an hour that a
// DST change repeated, for a schedule that names its hours (one that fires
// every hour keeps firing through both passes, so no gap opens).
func (c *calendar) repeatedHour(t time.Time) bool {
	if c.allHours() {
		return false
	}
	before := t.Add(-time.Hour)
	_, off1 := before.Zone()
	_, off2 := t.Zone()
	return off1 != off2 && before.Hour() == t.Hour() && before.Day() == t.Day()
}

func (c *calendar) allHours() bool {
	for h := range 24 {
		if !c.hours.has(h) {
			return false
		}
	}
	return true
}

func (c *calendar) Next(after time.Time) time.Time {
	loc := after.Location()
	// The first candidate is the next whole second.
	t := after.Truncate(time.Second).Add(time.Second)
	last := c.lastYear(after.Year())
	for t.Year() <= last {
		y, mo, d := t.Date()
		h, mi, s := t.Clock()
		var n time.Time
		switch {
		case !c.yearOK(y):
			n = time.Date(y+1, 1, 1, 0, 0, 0, 0, loc)
		case !c.months.has(int(mo)):
			n = time.Date(y, mo+1, 1, 0, 0, 0, 0, loc)
		case !c.dayOK(t):
			n = time.Date(y, mo, d+1, 0, 0, 0, 0, loc)
		case !c.hours.has(h):
			// Absolute arithmetic keeps moving forward across DST changes.
			n = t.Add(time.Duration(60-mi)*time.Minute - time.Duration(s)*time.Second)
			if c.skippedHourFires(h, n) {
				// The clock jumped over a wall time that fires (02:00 on
				// the day summer time starts): fire once, right after
				// the jump, as cron does, instead of waiting a day.
				return n
			}
		case !c.minutes.has(mi):
			n = t.Add(time.Duration(60-s) * time.Second)
		case !c.seconds.has(s):
			n = t.Add(time.Second)
		case c.repeatedHour(t):
			// The clock went back (the day summer time ends) and this
			// wall time already fired an hour ago: once is enough.
			n = t.Add(time.Duration(60-mi)*time.Minute - time.Duration(s)*time.Second)
		default:
			return t
		}
		if !n.After(t) {
			// A midnight that does not exist in loc: move on by an hour.
			n = t.Add(time.Hour)
		}
		t = n
	}
	return time.Time{}
}

// Never is MaxGap's answer for a schedule that does not fire at least
// twice: no RPO can be met by it.
const Never = time.Duration(math.MaxInt64)

// MaxGap returns the longest time between two consecutive fires of s,
// sampled over the year after from (longer for schedules that fire less
// than twice a year, up to eight years, and at most 200,000 fires).
func MaxGap(s Schedule, from time.Time) time.Duration {
	const year = 366 * 24 * time.Hour
	var gap time.Duration
	prev := s.Next(from)
	if prev.IsZero() {
		return Never
	}
	fires := 1
	for fires < 200000 {
		since := prev.Sub(from)
		if since > 8*year || (since > year && fires >= 2) {
			break
		}
		t := s.Next(prev)
		if t.IsZero() {
			break
		}
		gap = max(gap, t.Sub(prev))
		prev = t
		fires++
	}
	if fires < 2 {
		return Never
	}
	return gap
}
