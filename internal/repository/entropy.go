package repository

import "math"

// Sampling for looksIncompressible: three windows of sampleWindow bytes
// at the start, middle and end of a blob.
const (
	sampleWindow = 1024
	// incompressibleBits is the byte entropy above which a sample is
	// taken as random. Random data measures about 7.94 bits on a 3 KiB
	// sample (the estimate is biased low); executables and compressible
	// media stay below 7.5.
	incompressibleBits = 7.8
)

// nlog2n[n] = n·log2(n), for the entropy sum.
var nlog2n = func() []float64 {
	t := make([]float64, 3*sampleWindow+1)
	for n := 1; n < len(t); n++ {
		t[n] = float64(n) * math.Log2(float64(n))
	}
	return t
}()

// looksIncompressible estimates from three small samples whether data is
// already compressed or random (media, archives, encrypted files), so that
// no CPU is spent trying to compress it. A few microseconds against the
// milliseconds a failed compression costs.
func looksIncompressible(data []byte) bool {
	if len(data) < 4*sampleWindow {
		return false
	}
	var hist [256]int
	mid := len(data)/2 - sampleWindow/2
	for _, w := range [][]byte{data[:sampleWindow], data[mid : mid+sampleWindow], data[len(data)-sampleWindow:]} {
		for _, b := range w {
			hist[b]++
		}
	}
	const n = 3 * sampleWindow
	// H = log2(n) - (1/n)·Σ c·log2(c)
	sum := 0.0
	for _, c := range hist {
		sum += nlog2n[c]
	}
	h := math.Log2(n) - sum/n
	return h > incompressibleBits
}
