package pg

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/pg/wal"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

func pitrBackup(end time.Time, stop string) *snapshot.Snapshot {
	sn := &snapshot.Snapshot{Time: end.Add(-time.Minute), Postgres: &snapshot.PGInfo{StopLSN: stop}}
	sn.Summary = &snapshot.Summary{BackupEnd: end}
	return sn
}

func TestChooseBackup(t *testing.T) {
	t0 := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	a := pitrBackup(t0, "0/3000000")
	b := pitrBackup(t0.Add(time.Hour), "0/9000000")
	sns := []*snapshot.Snapshot{a, b}
	for _, c := range []struct {
		t    Target
		want *snapshot.Snapshot
	}{
		{Target{Kind: TargetTime, Time: t0}, a},
		{Target{Kind: TargetTime, Time: t0.Add(59 * time.Minute)}, a},
		{Target{Kind: TargetTime, Time: t0.Add(time.Hour)}, b},
		{Target{Kind: TargetLSN, LSN: 0x3000000}, a},
		{Target{Kind: TargetLSN, LSN: 0x8FFFFFF}, a},
		{Target{Kind: TargetLSN, LSN: 0x9000000}, b},
		{Target{Kind: TargetName, Name: "x"}, b},
		{Target{Kind: TargetXID, XID: "1000"}, b},
		{Target{Kind: TargetLatest}, b},
	} {
		got, err := ChooseBackup(sns, c.t)
		if err != nil || got != c.want {
			t.Errorf("%s: got %v %v", c.t, got, err)
		}
	}
	_, err := ChooseBackup(sns, Target{Kind: TargetTime, Time: t0.Add(-time.Nanosecond)})
	if !errors.Is(err, ErrTargetTooEarly) || !strings.Contains(err.Error(), "2026-03-14T09:00:00Z") {
		t.Errorf("time before the first backup: %v", err)
	}
	_, err = ChooseBackup(sns, Target{Kind: TargetLSN, LSN: 0x2FFFFFF})
	if !errors.Is(err, ErrTargetTooEarly) || !strings.Contains(err.Error(), "0/3000000") {
		t.Errorf("LSN before the first backup: %v", err)
	}
}

func TestTargetSetting(t *testing.T) {
	at := time.Date(2026, 3, 14, 10, 31, 5, 123456789, time.FixedZone("", 3600))
	n, v := Target{Kind: TargetTime, Time: at}.Setting()
	if n != "recovery_target_time" || v != "2026-03-14 09:31:05.123456+00" {
		t.Errorf("time: %s = %s", n, v)
	}
	n, v = Target{Kind: TargetLSN, LSN: wal.LSN(0x1_0300_0060)}.Setting()
	if n != "recovery_target_lsn" || v != "1/3000060" {
		t.Errorf("lsn: %s = %s", n, v)
	}
	if n, _ := (Target{Kind: TargetLatest}).Setting(); n != "" {
		t.Errorf("latest has a target setting %s", n)
	}
	for _, bad := range []string{"", "x", "-1", "2", "1e3"} {
		if _, err := ParseXID(bad); err == nil {
			t.Errorf("ParseXID(%q) accepted", bad)
		}
	}
	if x, err := ParseXID(" 4711 "); err != nil || x != "4711" {
		t.Errorf("ParseXID: %s %v", x, err)
	}
}

func FuzzParseXID(f *testing.F) {
	f.Add("1234")
	f.Add("18446744073709551615")
	f.Fuzz(func(t *testing.T, s string) {
		x, err := ParseXID(s)
		if err == nil && (x == "" || strings.ContainsAny(x, " '\n")) {
			t.Fatalf("ParseXID(%q) = %q", s, x)
		}
	})
}
