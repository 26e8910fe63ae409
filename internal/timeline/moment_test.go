package timeline_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/label"
	"github.com/rewind-backup/rewind/internal/timeline"
)

// cet is a fixed local zone, so that local forms are tested away from
// UTC.
var cet = time.FixedZone("CET", 3600)

// now is the fixed present of the parser tests, in local time.
var now = time.Date(2026, 11, 22, 10, 31, 5, 500_000_000, cet)

func TestParseTime(t *testing.T) {
	t.Parallel()
	const sec, minute = time.Second - 1, time.Minute - 1
	for _, tt := range []struct {
		in          string
		time, until time.Time
	}{
		{"now", now, now},
		{"-15m", now.Add(-15 * time.Minute), now.Add(-15 * time.Minute)},
		{"-90s", now.Add(-90 * time.Second), now.Add(-90 * time.Second)},
		{"-1h30m", now.Add(-90 * time.Minute), now.Add(-90 * time.Minute)},
		{"-2d", now.Add(-48 * time.Hour), now.Add(-48 * time.Hour)},
		{"-1w2d3h4m5s", now.Add(-(9*24*time.Hour + 3*time.Hour + 4*time.Minute + 5*time.Second)), now.Add(-(9*24*time.Hour + 3*time.Hour + 4*time.Minute + 5*time.Second))},
		{"-0s", now, now},
		{" -5s ", now.Add(-5 * time.Second), now.Add(-5 * time.Second)},
		// Local forms are read in now's zone and cover their last unit.
		{"2026-11-22 10:31:05", time.Date(2026, 11, 22, 10, 31, 5, 0, cet), time.Date(2026, 11, 22, 10, 31, 5, 0, cet).Add(sec)},
		{"2026-11-22T09:00:00", time.Date(2026, 11, 22, 9, 0, 0, 0, cet), time.Date(2026, 11, 22, 9, 0, 0, 0, cet).Add(sec)},
		{"2026-11-22 10:31", time.Date(2026, 11, 22, 10, 31, 0, 0, cet), time.Date(2026, 11, 22, 10, 31, 0, 0, cet).Add(minute)},
		{"2025-02-28T23:59", time.Date(2025, 2, 28, 23, 59, 0, 0, cet), time.Date(2025, 2, 28, 23, 59, 0, 0, cet).Add(minute)},
		// RFC 3339 carries its zone; without a fraction it covers the
		// second, with one it is exact.
		{"2026-11-22T10:31:05Z", time.Date(2026, 11, 22, 10, 31, 5, 0, time.UTC), time.Date(2026, 11, 22, 10, 31, 5, 0, time.UTC).Add(sec)},
		{"2026-11-22T10:31:05+05:00", time.Date(2026, 11, 22, 5, 31, 5, 0, time.UTC), time.Date(2026, 11, 22, 5, 31, 5, 0, time.UTC).Add(sec)},
		{"2026-11-22T10:31:05.25+01:00", time.Date(2026, 11, 22, 9, 31, 5, 250_000_000, time.UTC), time.Date(2026, 11, 22, 9, 31, 5, 250_000_000, time.UTC)},
		{"2026-11-22T10:31:05.123456789Z", time.Date(2026, 11, 22, 10, 31, 5, 123456789, time.UTC), time.Date(2026, 11, 22, 10, 31, 5, 123456789, time.UTC)},
		{"2026-11-22 10:31:05Z", time.Date(2026, 11, 22, 10, 31, 5, 0, time.UTC), time.Date(2026, 11, 22, 10, 31, 5, 0, time.UTC).Add(sec)},
	} {
		m, err := timeline.ParseTime(tt.in, now)
		if err != nil {
			t.Errorf("ParseTime(%q): %v", tt.in, err)
			continue
		}
		if !m.Time.Equal(tt.time) || !m.Until.Equal(tt.until) || m.Label != "" {
			t.Errorf("ParseTime(%q) = %v until %v, want %v until %v", tt.in, m.Time, m.Until, tt.time, tt.until)
		}
	}
}

func TestParseTimeRefuses(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"", "yesterday", "15m", "-15", "-15x", "-1y", "-m", "-1.5h", "--15m", "-15m ago",
		"2026-13-01 00:00:00", "2026-11-22", "22/11/2026 10:00", "-99999999999999999w", "-9999999999999w",
	} {
		if m, err := timeline.ParseTime(in, now); !errors.Is(err, timeline.ErrBadMoment) {
			t.Errorf("ParseTime(%q) = %v, %v; want ErrBadMoment", in, m.Time, err)
		}
	}
}

func TestResolveLabels(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 20, 8, 0, 0, 123, time.UTC)
	labels := &label.Set{Labels: []label.Label{
		{Name: "before nginx upgrade", Time: at},
		{Name: "release", Time: at.Add(time.Hour)},
	}}
	m, err := timeline.Resolve("before nginx upgrade", now, labels)
	if err != nil || !m.Time.Equal(at) || !m.Until.Equal(at) || m.Label != "before nginx upgrade" {
		t.Errorf("label resolves to %+v, %v; want exactly its time", m, err)
	}
	if !strings.Contains(m.String(), `label "before nginx upgrade"`) {
		t.Errorf("String of a label moment: %q", m.String())
	}
	// Times are read as times whatever the labels.
	m, err = timeline.Resolve("-1h", now, labels)
	if err != nil || !m.Time.Equal(now.Add(-time.Hour)) || m.Label != "" {
		t.Errorf("Resolve(-1h) = %+v, %v", m, err)
	}
	_, err = timeline.Resolve("after the upgrade", now, labels)
	if !errors.Is(err, timeline.ErrBadMoment) || !strings.Contains(err.Error(), `no label is called "after the upgrade"`) {
		t.Errorf("unknown label: %v", err)
	}
	if _, err := timeline.Resolve("release", now, nil); err == nil {
		t.Error("a label resolved without labels")
	}
}

func TestValidLabel(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"before nginx upgrade", "release-42", "today"} {
		if err := timeline.ValidLabel(ok); err != nil {
			t.Errorf("ValidLabel(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"now", "-15m", "2026-11-22 10:00", "2026-11-22T10:00:00Z", "", " x"} {
		if err := timeline.ValidLabel(bad); !errors.Is(err, label.ErrBadName) {
			t.Errorf("ValidLabel(%q) = %v, want ErrBadName", bad, err)
		}
	}
}
