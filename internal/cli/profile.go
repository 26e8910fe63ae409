package cli

import (
	"os"
	"runtime/pprof"
)

// startProfiling writes a CPU profile to $REWIND_CPUPROFILE, or a heap
// profile at exit to $REWIND_MEMPROFILE, a debugging aid for the benchmark work (docs/CLI.md). It returns nil when unset.
func startProfiling() func() {
	if mp := os.Getenv("REWIND_MEMPROFILE"); mp != "" {
		return func() {
			if f, err := os.Create(mp); err == nil {
				pprof.Lookup("heap").WriteTo(f, 0)
				f.Close()
			}
		}
	}
	path := os.Getenv("REWIND_CPUPROFILE")
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
