package mem_test

import (
	"testing"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/mem"
	"github.com/rewind-backup/rewind/internal/backend/test"
)

func TestBackend(t *testing.T) {
	test.RunTests(t, func(*testing.T) backend.Backend { return mem.New() })
}

func BenchmarkBackend(b *testing.B) {
	test.RunBenchmarks(b, func(*testing.B) backend.Backend { return mem.New() })
}
