package timeline

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/label"
)

// ErrBadMoment: what was given for a time is neither a time nor a label.
var ErrBadMoment = errors.New("not a time or label")

// Moment is a point on the timeline, as resolved from what a user wrote.
type Moment struct {
	// Time is the moment as written.
	Time time.Time
	// Until is the latest instant the moment covers, and the one that
	// snapshots are compared with: a time written to the second covers
	// that whole second (snapshot times have nanoseconds, the times rewind
	// prints do not), one written to the minute the whole minute. Exact
	// times (with a fraction of a second, relative times, labels) cover
	// only themselves.
	Until time.Time
	// Label is the label's name when the moment was given as one.
	Label string
}

// String describes the moment for people, in local time.
func (m Moment) String() string {
	t := m.Time.Local().Format("2006-01-02 15:04:05")
	if m.Label != "" {
		return fmt.Sprintf("label %q (%s)", m.Label, t)
	}
	return t
}

// localLayouts are the forms of a time without a zone, read in now's
// location, with the span each covers.
var localLayouts = []struct {
	layout string
	span   time.Duration
}{
	{"2006-01-02 15:04:05", time.Second},
	{"2006-01-02T15:04:05", time.Second},
	{"2006-01-02 15:04", time.Minute},
	{"2006-01-02T15:04", time.Minute},
}

// zonedLayouts are RFC 3339, also with a space for the T as RFC 3339
// allows. A fraction of a second is optional in both.
var zonedLayouts = []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00"}

var (
	relativeSyntax = regexp.MustCompile(`^-(\d+[wdhms])+$`)
	relativePart   = regexp.MustCompile(`(\d+)([wdhms])`)
)

var relativeUnits = map[string]time.Duration{
	"w": 7 * 24 * time.Hour, "d": 24 * time.Hour, "h": time.Hour, "m": time.Minute, "s": time.Second,
}

// ParseTime reads a time: "now"; RFC 3339 ("2026-11-22T10:31:05Z",
// "2026-11-22T10:31:05.25+01:00"); a local time in now's location
// ("2026-11-22 10:31:05", "2026-11-22 10:31"); or a time relative to now,
// a minus sign and a sum of whole units w, d (24 hours), h, m (minutes)
// and s ("-15m", "-1h30m", "-2d").
func ParseTime(s string, now time.Time) (Moment, error) {
	s = strings.TrimSpace(s)
	if s == "now" {
		return Moment{Time: now, Until: now}, nil
	}
	if strings.HasPrefix(s, "-") {
		d, err := parseAgo(s)
		if err != nil {
			return Moment{}, err
		}
		t := now.Add(-d)
		return Moment{Time: t, Until: t}, nil
	}
	for _, layout := range zonedLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			until := t
			if !strings.Contains(s, ".") {
				until = t.Add(time.Second - 1)
			}
			return Moment{Time: t, Until: until}, nil
		}
	}
	for _, l := range localLayouts {
		if t, err := time.ParseInLocation(l.layout, s, now.Location()); err == nil {
			return Moment{Time: t, Until: t.Add(l.span - 1)}, nil
		}
	}
	return Moment{}, fmt.Errorf("%w: %q is not a time (RFC 3339, \"2006-01-02 15:04:05\" in local time, or relative as \"-15m\")", ErrBadMoment, s)
}

// parseAgo reads a relative time such as "-1h30m" as a duration.
func parseAgo(s string) (time.Duration, error) {
	if !relativeSyntax.MatchString(s) {
		return 0, fmt.Errorf("%w: %q: a relative time is a minus sign and whole units w, d, h, m or s, such as -15m or -1h30m", ErrBadMoment, s)
	}
	var d time.Duration
	for _, m := range relativePart.FindAllStringSubmatch(s, -1) {
		unit := relativeUnits[m[2]]
		n, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil || n > int64(math.MaxInt64/unit) || time.Duration(n)*unit > math.MaxInt64-d {
			return 0, fmt.Errorf("%w: %q is too far back", ErrBadMoment, s)
		}
		d += time.Duration(n) * unit
	}
	return d, nil
}

// Resolve reads what was given for a time: a time as ParseTime reads it,
// else the name of a label in labels (nil: none), which stands for the
// label's time exactly.
func Resolve(s string, now time.Time, labels *label.Set) (Moment, error) {
	m, err := ParseTime(s, now)
	if err == nil {
		return m, nil
	}
	if labels != nil {
		if l, ok := labels.Lookup(s); ok {
			return Moment{Time: l.Time, Until: l.Time, Label: l.Name}, nil
		}
	}
	return Moment{}, fmt.Errorf("%w, and no label is called %q (`rewind mark --list` shows the labels)", err, s)
}

// ValidLabel checks that name can be a label: label.ValidName, and not
// something that reads as a time, which --at would take for one.
func ValidLabel(name string) error {
	if err := label.ValidName(name); err != nil {
		return err
	}
	if _, err := ParseTime(name, time.Now()); err == nil {
		return fmt.Errorf("%w: %q reads as a time", label.ErrBadName, name)
	}
	return nil
}
