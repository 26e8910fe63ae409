package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// The drill section renders medians per phase and boot's spread from the
// saved report, names a mode that failed, and survives the JSON round
// trip -drill-render relies on. (The measuring itself boots QEMU every
// round, too dear for a smoke test: see drill.go.)
func TestDrillMarkdown(t *testing.T) {
	rep := &drillReport{Rounds: 3, LoadBefore: "1.0 1.0 1.0", LoadAfter: "2.0 2.0 2.0", Minutes: 4,
		Modes: []drillMode{{
			Mode: "bios", DiskBytes: 512 << 20, Files: 40, Bytes: 30e6, Accel: "tcg", Backup: 1,
			Drills: []drillRound{
				{Restore: 2, Boot: 30, Probes: 1, RTO: 33},
				{Restore: 1, Boot: 20, Probes: 1, RTO: 22},
				{Restore: 3, Boot: 40, Probes: 2, RTO: 45},
			},
			Recovers:     []recoverRound{{Restore: 1, Wall: 3}, {Restore: 1, Wall: 2}, {Restore: 1, Wall: 4}},
			PlainRestore: []float64{0.5, 0.4, 0.6},
		}, {Mode: "uefi", Error: "drill: result \"failed\""}},
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back drillReport
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	md := back.markdown()
	for _, want := range []string{
		drillTitle + "\n",
		"| bios | 40 (30.0 MB) | 2.00 s | 30.0 s | 20.0 s–40.0 s | 1.00 s | **33.0 s** | 15.00× |",
		"| 3.00 s | 0.50 s | 6.00× |",
		"| uefi | failed: drill: result \"failed\"",
		"The uefi drill did not complete",
		"ReaR",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("section lacks %q:\n%s", want, md)
		}
	}
}
