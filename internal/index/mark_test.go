package index_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/index"
)

func sampleMark() *index.Mark {
	return &index.Mark{
		Time:      time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC),
		Host:      "web1",
		Snapshots: []id.ID{mkID(7), mkID(8)},
		Fenced:    true,
		Locks:     []string{"0123456789abcdef0123456789abcdef"},
		Packs:     sampleFile().Packs,
	}
}

func TestMarkRoundTrip(t *testing.T) {
	for _, m := range []*index.Mark{sampleMark(), {Time: time.Unix(0, 0).UTC(), Snapshots: []id.ID{}, Locks: []string{}, Packs: []index.PackEntry{}}} {
		got, err := index.DecodeMark(m.Encode())
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, m)
		}
	}
}

func TestMarkRejects(t *testing.T) {
	good := sampleMark().Encode()
	cases := map[string][]byte{
		"empty":           {},
		"version":         append([]byte{9}, good[1:]...),
		"header too long": {1, 0xff, 0x7f, '{', '}'},
		"truncated":       good[:len(good)-3],
		"bad json":        {1, 2, '{', 'x', 1, 0, 0},
		"supersedes":      append([]byte{1, 2, '{', '}'}, (&index.File{Supersedes: []id.ID{mkID(1)}}).Encode()...),
	}
	for name, b := range cases {
		m, err := index.DecodeMark(b)
		if err == nil || m != nil || !errors.Is(err, index.ErrCorrupt) {
			t.Errorf("%s: got %v, %v; want an ErrCorrupt error", name, m, err)
		}
	}
}

// FuzzDecodeMark: DecodeMark never panics, rejects with ErrCorrupt, and
// what it accepts survives Encode and DecodeMark unchanged.
func FuzzDecodeMark(f *testing.F) {
	f.Add(sampleMark().Encode())
	f.Add((&index.Mark{}).Encode())
	f.Add([]byte{1, 2, '{', '}', 1, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := index.DecodeMark(b)
		if err != nil {
			if !errors.Is(err, index.ErrCorrupt) || m != nil {
				t.Fatalf("rejected with %v and %v", m, err)
			}
			return
		}
		again, err := index.DecodeMark(m.Encode())
		if err != nil {
			t.Fatalf("re-encoded mark rejected: %v", err)
		}
		if !reflect.DeepEqual(normalise(again), normalise(m)) {
			t.Fatalf("re-encoding changed the mark:\n%+v\n%+v", again, m)
		}
	})
}

// normalise makes nil and empty slices compare equal, and drops the
// monotonic clock reading.
func normalise(m *index.Mark) *index.Mark {
	c := *m
	c.Time = c.Time.Round(0)
	if len(c.Snapshots) == 0 {
		c.Snapshots = nil
	}
	if len(c.Locks) == 0 {
		c.Locks = nil
	}
	if len(c.Packs) == 0 {
		c.Packs = nil
	}
	for i := range c.Packs {
		if len(c.Packs[i].Blobs) == 0 {
			c.Packs[i].Blobs = nil
		}
	}
	return &c
}
