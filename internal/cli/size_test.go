package cli

import (
	"strings"
	"testing"
)

func TestParseByteSize(t *testing.T) {
	good := map[string]int64{
		"0": 0, "512": 512, "10K": 10 << 10, "10k": 10 << 10, "10KB": 10 << 10, "10KiB": 10 << 10,
		"2M": 2 << 20, "1.5G": 3 << 29, " 3T ": 3 << 40, "1P": 1 << 50, ".5K": 512, "7B": 7,
		"1.0000000001K": 1024, "8191P": 8191 << 50,
	}
	for in, want := range good {
		got, err := parseByteSize(in)
		if err != nil || got != want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "K", "-1", "1X", "1..2", "1.2.3M", "8192P", "99999999999999999999", "1e3", "NaN", "1 K", "."} {
		if v, err := parseByteSize(in); err == nil {
			t.Errorf("parseByteSize(%q) = %d, want an error", in, v)
		}
	}
}

// FuzzParseByteSize: no panic; a size is never negative, and a plain
// integer reads as itself.
func FuzzParseByteSize(f *testing.F) {
	for _, s := range []string{"10M", "1.5G", "0", "8191P", ".5k"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseByteSize(s)
		if err != nil {
			return
		}
		if v < 0 {
			t.Fatalf("%q -> %d", s, v)
		}
		if strings.Trim(s, "0123456789") == "" && len(s) < 18 {
			var want int64
			for _, c := range s {
				want = want*10 + int64(c-'0')
			}
			if v != want {
				t.Fatalf("%q -> %d", s, v)
			}
		}
	})
}
