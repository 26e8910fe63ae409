package snapshot_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/rewind-backup/rewind/internal/snapshot"
)

// FuzzSnapshotJSON decodes arbitrary bytes as a snapshot file's JSON. It
// must never panic, and what decodes must encode again to JSON that
// decodes to the same snapshot and encodes to the same bytes.
func FuzzSnapshotJSON(f *testing.F) {
	full, err := json.Marshal(fullSnapshot())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(full)
	if golden, err := os.ReadFile(filepath.Join("testdata", "snapshot-v1.golden.json")); err == nil {
		f.Add(golden)
	}
	f.Add([]byte(`{"time":"2025-01-01T00:00:00+01:00","tree":["` + "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff" + `"]}`))
	f.Add([]byte(`{"parent":null,"tree":[],"summary":{"errors":[{"path":"\u0000","error":""}]}}`))
	f.Add([]byte(`{"parent":"zz"}`))
	f.Add([]byte(`{"uid":-1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var sn snapshot.Snapshot
		if err := json.Unmarshal(b, &sn); err != nil {
			return
		}
		if !sn.ID.IsNull() {
			t.Fatal("the ID was read from the file")
		}
		enc, err := json.Marshal(&sn)
		if err != nil {
			// Times outside years 0-9999 parse but do not encode.
			return
		}
		var again snapshot.Snapshot
		if err := json.Unmarshal(enc, &again); err != nil {
			t.Fatalf("re-encoded snapshot does not decode: %v\n%s", err, enc)
		}
		if !sn.Time.Equal(again.Time) {
			t.Fatalf("time changed: %v, %v", sn.Time, again.Time)
		}
		enc2, err := json.Marshal(&again)
		if err != nil || string(enc2) != string(enc) {
			t.Fatalf("encoding is not stable:\n%s\n%s", enc, enc2)
		}
		// Fields compared one by one: an empty list and no list encode alike.
		same := slices.Equal(sn.Tree, again.Tree) && slices.Equal(sn.Paths, again.Paths) &&
			slices.Equal(sn.Tags, again.Tags) && slices.Equal(sn.Excludes, again.Excludes) &&
			sn.Hostname == again.Hostname && sn.Username == again.Username &&
			sn.UID == again.UID && sn.GID == again.GID && sn.ProgramVersion == again.ProgramVersion &&
			(sn.Parent == nil) == (again.Parent == nil) && (sn.Parent == nil || *sn.Parent == *again.Parent) &&
			(sn.Summary == nil) == (again.Summary == nil)
		if !same {
			t.Fatalf("round trip changed the snapshot:\n%+v\n%+v", sn, again)
		}
	})
}
