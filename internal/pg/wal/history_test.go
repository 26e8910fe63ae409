package wal

import (
	"errors"
	"testing"
)

func TestParseHistory(t *testing.T) {
	// What PostgreSQL 15 wrote for timeline 3 after two promotions, one of
	// them at a recovery target time.
	text := "1\t0/5000000\tno recovery target specified\n\n" +
		"2\t0/7A3C2B8\tbefore 2026-12-07 15:32:25.623491+00\n"
	got, err := ParseHistory([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	want := []HistoryLine{{1, 0x5000000, "no recovery target specified"}, {2, 0x7A3C2B8, "before 2026-12-07 15:32:25.623491+00"}}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	for _, bad := range []string{
		"x\t0/5000000\treason\n",
		"1\n",
		"1\tnot-an-lsn\treason\n",
		"0\t0/1\tr\n",
		"2\t0/5000000\ta\n1\t0/6000000\tb\n", // timelines going back
		"1\t0/6000000\ta\n2\t0/5000000\tb\n", // LSNs going back
	} {
		if _, err := ParseHistory([]byte(bad)); !errors.Is(err, ErrBadHistory) {
			t.Errorf("ParseHistory(%q) = %v, want ErrBadHistory", bad, err)
		}
	}
	if got, err := ParseHistory([]byte("# a comment\n\n")); err != nil || len(got) != 0 {
		t.Errorf("empty history: %v %v", got, err)
	}
}

func FuzzParseHistory(f *testing.F) {
	f.Add([]byte("1\t0/5000000\tno recovery target specified\n"))
	f.Add([]byte("1\t0/5000000\tx\n2\t1/0\tbefore 2026-01-01\n# c\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		lines, err := ParseHistory(b)
		if err != nil {
			return
		}
		for i := 1; i < len(lines); i++ {
			if lines[i].Parent <= lines[i-1].Parent || lines[i].At < lines[i-1].At {
				t.Fatalf("accepted an out-of-order history: %+v", lines)
			}
		}
		for _, l := range lines {
			if l.Parent == 0 {
				t.Fatalf("accepted timeline 0: %+v", lines)
			}
		}
	})
}
