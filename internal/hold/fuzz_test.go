package hold_test

import (
	"encoding/json"
	"testing"

	"github.com/rewind-backup/rewind/internal/hold"
)

// FuzzDecode feeds arbitrary bytes to the hold decoder: it must never
// panic, and a hold it accepts names a snapshot and survives a round
// trip.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"snapshot":"` + snapID("a").String() + `","time":"2026-03-01T02:00:00Z","host":"web1","user":"root","reason":"litigation"}`))
	f.Add([]byte(`{"snapshot":"0000000000000000000000000000000000000000000000000000000000000000"}`))
	f.Add([]byte(`{"snapshot":"` + snapID("b").String() + `","time":"0000-01-01T00:00:00+23:59"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := hold.Decode(b)
		if err != nil {
			return
		}
		if h.Snapshot.IsNull() {
			t.Fatal("accepted a hold that names no snapshot")
		}
		enc, err := json.Marshal(h)
		if err != nil {
			return // a time outside years 0-9999 parses but does not encode
		}
		again, err := hold.Decode(enc)
		if err != nil || again.Snapshot != h.Snapshot || again.Reason != h.Reason || !again.Time.Equal(h.Time) {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, h)
		}
	})
}
