package schedule

import (
	"errors"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the zone tests never depend on the machine's zoneinfo
)

// base is a Wednesday.
var base = time.Date(2025, 3, 12, 10, 17, 30, 0, time.UTC)

func TestNext(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string // the next fires after base
	}{
		{"*-*-* 02:00:00", []string{"2025-03-13 02:00:00", "2025-03-14 02:00:00"}},
		{"02:00", []string{"2025-03-13 02:00:00"}},
		{"Mon..Fri *-*-* 02:30", []string{"2025-03-13 02:30:00", "2025-03-14 02:30:00", "2025-03-17 02:30:00"}},
		{"Sat,Sun 12:00", []string{"2025-03-15 12:00:00", "2025-03-16 12:00:00", "2025-03-22 12:00:00"}},
		{"Fri..Mon 12:00", []string{"2025-03-14 12:00:00", "2025-03-15 12:00:00", "2025-03-16 12:00:00", "2025-03-17 12:00:00", "2025-03-21 12:00:00"}},
		{"daily", []string{"2025-03-13 00:00:00"}},
		{"hourly", []string{"2025-03-12 11:00:00", "2025-03-12 12:00:00"}},
		{"minutely", []string{"2025-03-12 10:18:00"}},
		{"weekly", []string{"2025-03-17 00:00:00", "2025-03-24 00:00:00"}},
		{"monthly", []string{"2025-04-01 00:00:00", "2025-05-01 00:00:00"}},
		{"yearly", []string{"2026-01-01 00:00:00"}},
		{"quarterly", []string{"2025-04-01 00:00:00", "2025-07-01 00:00:00"}},
		{"*:0/15", []string{"2025-03-12 10:30:00", "2025-03-12 10:45:00", "2025-03-12 11:00:00"}},
		{"*:*:0/20", []string{"2025-03-12 10:17:40", "2025-03-12 10:18:00"}},
		{"*-*-1,15 03:00", []string{"2025-03-15 03:00:00", "2025-04-01 03:00:00"}},
		{"*-02-29 00:00", []string{"2028-02-29 00:00:00"}},
		{"2025-*-01..03 08:00", []string{"2025-04-01 08:00:00", "2025-04-02 08:00:00"}},
		{"*-*-* 08..10:30", []string{"2025-03-12 10:30:00", "2025-03-13 08:30:00"}},
		{"03-15 9:5:7", []string{"2025-03-15 09:05:07"}},
		{"0 2 * * *", []string{"2025-03-13 02:00:00"}},
		{"*/15 * * * 1-5", []string{"2025-03-12 10:30:00"}},
		{"0 0 * * sat,SUN", []string{"2025-03-15 00:00:00", "2025-03-16 00:00:00"}},
		{"0 0 * * 7", []string{"2025-03-16 00:00:00"}},
		{"0 12 1 jan-mar *", []string{"2026-01-01 12:00:00"}},
		// Cron: day of month and weekday both restricted fire on either.
		{"0 0 13 * 5", []string{"2025-03-13 00:00:00", "2025-03-14 00:00:00", "2025-03-21 00:00:00"}},
		// systemd: both must match (Friday the 13th).
		{"Fri *-*-13 00:00", []string{"2025-06-13 00:00:00"}},
		{"5/20 * * * *", []string{"2025-03-12 10:25:00", "2025-03-12 10:45:00", "2025-03-12 11:05:00"}},
		{"@daily", []string{"2025-03-13 00:00:00"}},
		{"@hourly", []string{"2025-03-12 11:00:00"}},
		{"@weekly", []string{"2025-03-16 00:00:00"}},
		{"  daily ", []string{"2025-03-13 00:00:00"}},
	} {
		s, err := Parse(tc.expr)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.expr, err)
			continue
		}
		at := base
		for i, w := range tc.want {
			at = s.Next(at)
			if got := at.Format(time.DateTime); got != w {
				t.Errorf("%q fire %d: got %s, want %s", tc.expr, i+1, got, w)
				break
			}
		}
	}
}

func TestNextNever(t *testing.T) {
	for _, e := range []string{"*-02-30 00:00", "2024-01-01 00:00", "0 0 31 4 *"} {
		s, err := Parse(e)
		if err != nil {
			t.Fatal(err)
		}
		if n := s.Next(base); !n.IsZero() {
			t.Errorf("%q: Next = %v, want never", e, n)
		}
		if g := MaxGap(s, base); g != Never {
			t.Errorf("%q: MaxGap = %v, want Never", e, g)
		}
	}
}

func TestNextKeepsZone(t *testing.T) {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := Parse("*-*-* 02:30:00")
	// 2025-03-30 02:30 does not exist in Berlin (clocks jump 02:00 -> 03:00).
	from := time.Date(2025, 3, 29, 12, 0, 0, 0, loc)
	n := s.Next(from)
	if n.Location() != loc {
		t.Errorf("Next is in %v, want %v", n.Location(), loc)
	}
	prev := from
	for range 5 {
		n = s.Next(prev)
		if !n.After(prev) {
			t.Fatalf("Next(%v) = %v, not after", prev, n)
		}
		prev = n
	}
	if prev.Hour() != 2 || prev.Minute() != 30 {
		t.Errorf("fire at %v, want 02:30 local", prev)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		expr string
		col  int
		msg  string
	}{
		{"", 1, "empty"},
		{"*-*-* 25:00", 7, "hour 25 is out of range 0..23"},
		{"*-*-* 02:61", 10, "minute 61 is out of range"},
		{"*-*-* 02:00:00.5", 15, "fractions"},
		{"Mon-Fri 02:00", 1, `write ranges with ".."`},
		{"Mon..Fry 02:00", 6, `unknown weekday "Fry"`},
		{"*-13-01", 3, "month 13"},
		{"*-*-* 02:00 UTC", 13, "time zones"},
		{"*-*-* 02:00 junk 03:00", 13, "unexpected"},
		{"*-*-~1", 5, "~"},
		{"*:0/0", 5, "step"},
		{"*-*-5..2", 5, "runs backwards"},
		{"61 * * * *", 1, "minute 61"},
		{"0 2 * * 8", 9, "weekday 8"},
		{"0 2 * foo *", 7, `month "foo" is not a number`},
		{"0 2 ,1 * *", 5, "empty day"},
		{"@reboot", 1, "@reboot"},
		{"@sometimes", 1, "unknown cron macro"},
		{"1969-01-01", 1, "year 1969"},
		{"01:02:03:04", 1, "expected HOUR:MINUTE"},
		{"1-2-3-4", 1, "YEAR-MONTH-DAY"},
	} {
		_, err := Parse(tc.expr)
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("Parse(%q) = %v, want an *Error", tc.expr, err)
			continue
		}
		if e.Offset+1 != tc.col || !strings.Contains(e.Msg, tc.msg) {
			t.Errorf("Parse(%q): column %d %q, want column %d containing %q", tc.expr, e.Offset+1, e.Msg, tc.col, tc.msg)
		}
	}
}

func TestMaxGap(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want time.Duration
	}{
		{"*:0/15", 15 * time.Minute},
		{"daily", 24 * time.Hour},
		{"Mon..Fri 02:00", 3 * 24 * time.Hour},
		{"monthly", 31 * 24 * time.Hour},
		{"yearly", 365 * 24 * time.Hour},
		{"*-*-1,15 03:00", 17 * 24 * time.Hour},
		{"0 */6 * * *", 6 * time.Hour},
	} {
		s, err := Parse(tc.expr)
		if err != nil {
			t.Fatal(err)
		}
		if got := MaxGap(s, base); got != tc.want {
			t.Errorf("MaxGap(%q) = %v, want %v", tc.expr, got, tc.want)
		}
	}
}

func TestString(t *testing.T) {
	s, err := Parse("  Mon..Fri 02:30 ")
	if err != nil {
		t.Fatal(err)
	}
	if s.String() != "Mon..Fri 02:30" {
		t.Errorf("String() = %q", s.String())
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"*-*-* 02:00:00", "Mon..Fri *-*-* 02:30", "daily", "*:0/15", "0 2 * * *",
		"*/15 * * * 1-5", "@daily", "2025-*-01..03 08:00", "Sat,Sun 1,2:3/7:0..9", "1-2 3:4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		s, err := Parse(expr)
		if err != nil {
			return
		}
		at := base
		for range 4 {
			n := s.Next(at)
			if n.IsZero() {
				return
			}
			if !n.After(at) {
				t.Fatalf("%q: Next(%v) = %v, not after", expr, at, n)
			}
			at = n
		}
	})
}

// TestDSTChanges: a daily 02:00 in a zone with summer time fires once on
// the day the clock jumps over 02:00 (at 03:00, right after the jump) and
// once on the day 02:00 comes twice; so it never leaves more than a day
// and an hour between runs, and a 25h RPO holds.
func TestDSTChanges(t *testing.T) {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse("*-*-* 02:00:00")
	if err != nil {
		t.Fatal(err)
	}
	spring := s.Next(time.Date(2025, 3, 29, 12, 0, 0, 0, loc))
	if want := time.Date(2025, 3, 30, 3, 0, 0, 0, loc); !spring.Equal(want) {
		t.Errorf("on the day 02:00 is skipped: fires %v, want %v", spring, want)
	}
	first := s.Next(time.Date(2025, 10, 25, 12, 0, 0, 0, loc))
	second := s.Next(first)
	if _, off := first.Zone(); first.Day() != 26 || first.Hour() != 2 || off != 2*3600 || second.Day() != 27 {
		t.Errorf("on the day 02:00 comes twice: fires %v then %v, want the first 02:00 (CEST) of the 26th, then the 27th", first, second)
	}
	if g := MaxGap(s, time.Date(2025, 1, 1, 0, 0, 0, 0, loc)); g > 25*time.Hour {
		t.Errorf("MaxGap over a year in Berlin = %v, want at most 25h", g)
	}
	// A schedule firing every 15 minutes keeps firing through both passes
	// of the repeated hour.
	q, _ := Parse("*:0/15")
	if g := MaxGap(q, time.Date(2025, 1, 1, 0, 0, 0, 0, loc)); g > 15*time.Minute {
		t.Errorf("MaxGap(*:0/15) in Berlin = %v, want 15m", g)
	}
}
