package runbook

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/backend/mem"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/repository"
)

// FuzzDecode: any bytes decode to a record that has what Decode promises,
// or to an error; never a panic.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"version":1,"hostname":"h","time":"2026-12-07T02:00:00Z","snapshot_id":"ab","markdown":"# x\n","html":"<p>x</p>"}`))
	f.Add([]byte(`{"version":2,"hostname":"h","time":"2026-12-07T02:00:00Z","markdown":"x"}`))
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Decode(b)
		if err != nil {
			return
		}
		if r.Version != Version || r.Host == "" || r.Time.IsZero() || r.Markdown == "" {
			t.Fatalf("Decode accepted %+v", r)
		}
	})
}

func TestDecodeRefuses(t *testing.T) {
	if _, err := Decode([]byte(`{"version":2,"hostname":"h","time":"2026-12-07T02:00:00Z","markdown":"x"}`)); !errors.Is(err, ErrNewerVersion) {
		t.Errorf("newer version: %v", err)
	}
	for _, s := range []string{`{"version":1,"time":"2026-12-07T02:00:00Z","markdown":"x"}`, `{"version":1,"hostname":"h","markdown":"x"}`, `{"version":1,"hostname":"h","time":"2026-12-07T02:00:00Z"}`, `{`} {
		if _, err := Decode([]byte(s)); err == nil {
			t.Errorf("Decode(%s) accepted", s)
		}
	}
}

// TestWriteKeepsNewest: Write stores only changed content and keeps the
// newest Keep runbooks of each host, leaving other hosts' alone.
func TestWriteKeepsNewest(t *testing.T) {
	ctx := context.Background()
	r, err := repository.Init(ctx, mem.New(), []byte("pw"), repository.InitOptions{KDF: crypto.TestKDFParams, PackSize: 1 << 20, Compression: "none"})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	other, isNew, err := Write(ctx, r, Record{Host: "b", Time: t0, Markdown: "b"}, 2)
	if err != nil || !isNew {
		t.Fatal(err, isNew)
	}
	for i := range 4 {
		md := string(rune('a' + i))
		if _, isNew, err := Write(ctx, r, Record{Host: "a", Time: t0.Add(time.Duration(i) * time.Hour), Markdown: md}, 2); err != nil || !isNew {
			t.Fatal(i, err, isNew)
		}
		if _, isNew, _ := Write(ctx, r, Record{Host: "a", Time: t0.Add(time.Duration(i)*time.Hour + time.Minute), Markdown: md}, 2); isNew {
			t.Errorf("unchanged content %q stored again", md)
		}
	}
	all, _, err := List(ctx, r, "a")
	if err != nil || len(all) != 2 || all[0].Markdown != "c" || all[1].Markdown != "d" {
		b, _ := json.Marshal(all)
		t.Errorf("kept %s (%v), want c and d", b, err)
	}
	if st, err := Newest(ctx, r, "b"); err != nil || st.File != other {
		t.Errorf("the other host's runbook: %v %v", st, err)
	}
	if _, err := Newest(ctx, r, "c"); !errors.Is(err, ErrNone) {
		t.Errorf("no runbook: %v", err)
	}
}
