package cli

import (
	"fmt"
	"math"
	"strings"
)

// parseByteSize reads a size such as 512, 10K, 2.5M, 1G or 3TiB: a
// non-negative decimal number, optionally followed by K, M, G, T or P
// (powers of 1024, as restic reads them) and an optional B or iB. The
// result is rounded down to whole bytes; sizes beyond 8 EiB are refused.
func parseByteSize(s string) (int64, error) {
	bad := fmt.Errorf("invalid size %q: want a number of bytes, optionally with K, M, G, T or P (powers of 1024), such as 500M or 2G", s)
	u := strings.ToUpper(strings.TrimSpace(s))
	u = strings.TrimSuffix(u, "B")
	u = strings.TrimSuffix(u, "I")
	shift := uint(0)
	if n := len(u); n > 0 {
		if i := strings.IndexByte("KMGTP", u[n-1]); i >= 0 {
			shift = 10 * uint(i+1)
			u = u[:n-1]
		}
	}
	whole, frac, hasFrac := strings.Cut(u, ".")
	if whole == "" && (!hasFrac || frac == "") {
		return 0, bad
	}
	var v uint64
	for _, c := range whole {
		if c < '0' || c > '9' {
			return 0, bad
		}
		if v > (math.MaxInt64-9)/10 {
			return 0, bad
		}
		v = v*10 + uint64(c-'0')
	}
	if shift > 0 && v > math.MaxInt64>>shift {
		return 0, bad
	}
	v <<= shift
	// The fraction, in units of 1/10^k, times the unit, rounded down.
	var num, den uint64 = 0, 1
	for _, c := range frac {
		if c < '0' || c > '9' {
			return 0, bad
		}
		if den > math.MaxInt64/10/1024 {
			continue // finer than a byte: ignored
		}
		num, den = num*10+uint64(c-'0'), den*10
	}
	add := num * (1 << shift) / den
	if num != 0 && (1<<shift) > math.MaxUint64/num {
		add = uint64(float64(num) / float64(den) * float64(uint64(1)<<shift))
	}
	if v+add > math.MaxInt64 {
		return 0, bad
	}
	return int64(v + add), nil
}
