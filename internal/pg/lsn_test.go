package pg

import (
	"slices"
	"strings"
	"testing"
)

func TestParseLSN(t *testing.T) {
	for _, c := range []struct {
		in   string
		want LSN
	}{{"0/0", 0}, {"0/16B3748", 0x16B3748}, {"1/2", 1<<32 | 2}, {"FFFFFFFF/FFFFFFFF", ^LSN(0)}} {
		got, err := ParseLSN(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseLSN(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
		if err == nil && got.String() != strings.ToUpper(c.in) {
			t.Errorf("%v prints as %s, want %s", got, got, c.in)
		}
	}
	for _, bad := range []string{"", "0", "/1", "1/", "x/1", "1/2/3", "100000000/0", "-1/0"} {
		if _, err := ParseLSN(bad); err == nil {
			t.Errorf("ParseLSN(%q) accepted", bad)
		}
	}
}

func TestSegments(t *testing.T) {
	const seg = DefaultSegmentSize
	got, err := Segments(1, 0x2000028, 0x4000100, seg)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"000000010000000000000002", "000000010000000000000003", "000000010000000000000004"}
	if !slices.Equal(got, want) {
		t.Errorf("Segments = %v, want %v", got, want)
	}
	// A stop LSN at a segment's first byte needs only the one before.
	if got, _ := Segments(2, 0x2000028, 0x3000000, seg); !slices.Equal(got, []string{"000000020000000000000002"}) {
		t.Errorf("stop at a segment boundary: %v", got)
	}
	// Past 4 GiB the middle part of the name counts.
	if got := SegmentName(1, 1<<32|0x1000000, seg); got != "000000010000000100000001" {
		t.Errorf("SegmentName past 4 GiB = %s", got)
	}
	if _, err := Segments(1, 10, 5, seg); err == nil {
		t.Error("stop before start accepted")
	}
	if _, err := Segments(1, 0, 5, 3<<20); err == nil {
		t.Error("a segment size that is not a power of two accepted")
	}
}

const sampleLabel = `START WAL LOCATION: 0/2000028 (file 000000010000000000000002)
CHECKPOINT LOCATION: 0/2000060
BACKUP METHOD: streamed
BACKUP FROM: primary
START TIME: 2026-12-07 14:00:09 UTC
LABEL: rewind 2026-12-07T14:00:09Z
START TIMELINE: 1
`

func TestParseLabel(t *testing.T) {
	l, err := ParseLabel(sampleLabel)
	if err != nil {
		t.Fatal(err)
	}
	if l.StartLSN != 0x2000028 || l.StartTimeline != 1 || l.StartSegment != "000000010000000000000002" || l.Name != "rewind 2026-12-07T14:00:09Z" {
		t.Errorf("ParseLabel = %+v", l)
	}
	for _, bad := range []string{"", "START TIMELINE: 1\n", "START WAL LOCATION: 0/1 (file x)\n", strings.Replace(sampleLabel, "TIMELINE: 1", "TIMELINE: 0", 1)} {
		if _, err := ParseLabel(bad); err == nil {
			t.Errorf("ParseLabel(%q) accepted", bad)
		}
	}
}

func TestExcludes(t *testing.T) {
	ex := Excludes("/srv/pg[1]/data")
	if !slices.Contains(ex, `/srv/pg\[1\]/data/pg_wal/*`) || !slices.Contains(ex, `/srv/pg\[1\]/data/postmaster.pid`) {
		t.Errorf("Excludes = %v", ex)
	}
}

func FuzzParseLSN(f *testing.F) {
	for _, s := range []string{"0/16B3748", "FFFFFFFF/0", "1/", "/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLSN(s)
		if err != nil {
			return
		}
		if back, err := ParseLSN(l.String()); err != nil || back != l {
			t.Fatalf("%q -> %v does not round-trip: %v %v", s, l, back, err)
		}
	})
}

func FuzzParseLabel(f *testing.F) {
	f.Add(sampleLabel)
	f.Add("START WAL LOCATION: 0/1\nSTART TIMELINE: 4294967295\n")
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLabel(s)
		if err == nil && l.StartTimeline == 0 {
			t.Fatalf("accepted timeline 0 in %q", s)
		}
	})
}
