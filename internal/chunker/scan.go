package chunker

// laneSize is the length of each of scan's four lanes. Each lane costs a
// 63-byte warm-up, and a lane that hits makes the earlier ones finish
// theirs, so lanes are a few KiB.
const laneSize = 4 << 10

// scan returns the smallest i in [start, end) whose window hash (over
// data[i-63:i+1]) has no bit of m set, or -1 if there is none. It needs
// start >= windowSize-1.
//
// A single gear hash is one long dependency chain (shift, add: two cycles
// a byte), so scan runs four independent chains over four consecutive
// lanes of the range, which keeps the out-of-order core busy. Each lane
// warms up on the 63 bytes before it, which gives exactly the hashes a
// single pass would: the window hash depends on the window's bytes only.
func scan(g *[256]uint64, data []byte, start, end int, m uint64) int {
	const k = laneSize
	for ; end-start >= 4*k; start += 4 * k {
		w := (*[4*k + windowSize - 1]byte)(data[start-windowSize+1:])
		if t, h := lanes(g, w, m); t >= 0 {
			return resolve(g, data, start, t, h, m)
		}
	}
	if start >= end {
		return -1
	}
	var h uint64
	for _, x := range data[start-windowSize+1 : start] {
		h = h<<1 + g[x]
	}
	if i := scan1(g, data[start:end], h, m); i >= 0 {
		return start + i
	}
	return -1
}

// lanes runs four gear hashes over the four lanes of w[63:], each warmed
// up on the 63 bytes before it. It returns the first step t at which one
// or more lanes hit, with the four hashes at that step, or t = -1.
func lanes(g *[256]uint64, w *[4*laneSize + windowSize - 1]byte, m uint64) (int, [4]uint64) {
	const k = laneSize
	_ = *g
	var h0, h1, h2, h3 uint64
	for t := range windowSize - 1 {
		h0 = h0<<1 + g[w[t]]
		h1 = h1<<1 + g[w[t+k]]
		h2 = h2<<1 + g[w[t+2*k]]
		h3 = h3<<1 + g[w[t+3*k]]
	}
	b := (*[4 * k]byte)(w[windowSize-1:])
	for t := range k {
		h0 = h0<<1 + g[b[t]]
		h1 = h1<<1 + g[b[t+k]]
		h2 = h2<<1 + g[b[t+2*k]]
		h3 = h3<<1 + g[b[t+3*k]]
		if h0&m == 0 || h1&m == 0 || h2&m == 0 || h3&m == 0 {
			return t, [4]uint64{h0, h1, h2, h3}
		}
	}
	return -1, [4]uint64{}
}

// resolve finds the first hit after scan's lanes stopped at step t with at
// least one hit: an earlier lane may still hit later in its own lane.
func resolve(g *[256]uint64, data []byte, start, t int, h [4]uint64, m uint64) int {
	for l, hl := range h[:3] {
		lane := start + l*laneSize
		if hl&m == 0 {
			return lane + t
		}
		if i := scan1(g, data[lane+t+1:lane+laneSize], hl, m); i >= 0 {
			return lane + t + 1 + i
		}
	}
	// Lanes 0-2 have no hit, so the one scan saw is lane 3's.
	return start + 3*laneSize + t
}

// scan1 continues one gear hash h over data and returns the index of the
// first byte after which no bit of m is set, or -1.
func scan1(g *[256]uint64, data []byte, h, m uint64) int {
	for i, x := range data {
		h = h<<1 + g[x]
		if h&m == 0 {
			return i
		}
	}
	return -1
}
