package readonly_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/mem"
	"github.com/rewind-backup/rewind/internal/backend/readonly"
	"github.com/rewind-backup/rewind/internal/backend/test"
)

// writable runs the suite's writes on the memory backend directly and
// everything else through the read-only wrapper, so that the conformance
// suite checks the wrapper's read path. TestWritesRefused checks the
// writes.
type writable struct {
	*readonly.Backend
	mem *mem.Backend
}

func (w writable) Save(ctx context.Context, h backend.Handle, rd backend.RewindReader) error {
	return w.mem.Save(ctx, h, rd)
}

func (w writable) Remove(ctx context.Context, h backend.Handle) error { return w.mem.Remove(ctx, h) }

func TestBackend(t *testing.T) {
	test.RunTests(t, func(*testing.T) backend.Backend {
		m := mem.New()
		return writable{Backend: readonly.New(m), mem: m}
	})
}

func TestWritesRefused(t *testing.T) {
	ctx := context.Background()
	m := mem.New()
	h := backend.Handle{Type: backend.SnapshotFile, Name: strings.Repeat("ab", 32)}
	if err := m.Save(ctx, h, backend.NewByteReader([]byte("snapshot"))); err != nil {
		t.Fatal(err)
	}
	be := readonly.New(m)
	if _, ok := backend.Backend(be).(backend.TempFiler); ok {
		t.Fatal("the read-only backend offers TempFiler")
	}

	other := backend.Handle{Type: backend.SnapshotFile, Name: strings.Repeat("cd", 32)}
	for what, err := range map[string]error{
		"Save":                be.Save(ctx, other, backend.NewByteReader([]byte("x"))),
		"Save of an existing": be.Save(ctx, h, backend.NewByteReader([]byte("snapshot"))),
		"Remove":              be.Remove(ctx, h),
	} {
		if !errors.Is(err, readonly.ErrReadOnly) || !backend.IsPermanent(err) || !strings.Contains(err.Error(), "read-only mode") {
			t.Errorf("%s: got %v, want a permanent ErrReadOnly", what, err)
		}
	}
	// Nothing changed, and reads work.
	if _, err := m.Stat(ctx, other); !backend.IsNotExist(err) {
		t.Errorf("Stat of the refused Save: %v", err)
	}
	err := be.Load(ctx, h, 0, 0, func(rd io.Reader) error {
		b, err := io.ReadAll(rd)
		if err == nil && string(b) != "snapshot" {
			err = errors.New("wrong content " + string(b))
		}
		return err
	})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
}
