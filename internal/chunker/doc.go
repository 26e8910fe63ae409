// Package chunker splits byte streams into content-defined chunks, so that
// an insertion or deletion in a file changes only the chunks around it.
//
// The algorithm is FastCDC-style: a gear rolling hash with normalized
// chunking. It is written here rather than taken from a library because
// chunk boundaries are part of the repository format (two programs must
// cut the same secret and bytes identically), because the gear table must
// be keyed, and because the hot loop is tuned for this tool (see Speed).
//
// # Algorithm
//
// This is the exact definition; docs/FORMAT.md refers to it. All
// arithmetic is on unsigned 64-bit integers modulo 2^64.
//
// Gear table. Each repository has a 32-byte chunker secret. The table
// G[0..255] is read from the BLAKE3 extendable output in keyed mode, with
// the secret as the key and the 28 ASCII bytes "rewind chunker gear table
// v1" as the input: G[j] is the little-endian uint64 at output bytes
// 8j..8j+7 (2048 output bytes in all). Keying the table means boundaries,
// and so chunk sizes, do not reveal which known content a repository
// holds.
//
// Window hash. For a byte position i (i >= 63) of the stream d,
//
//	H(i) = sum over k = 0..63 of G[d[i-k]] << k
//
// that is, start from h = 0 and apply h = (h << 1) + G[b] for the 64 bytes
// b = d[i-63], ..., d[i]. Bytes older than 64 positions have been shifted
// out, so H(i) depends on those 64 bytes only.
//
// Masks. With A = log2(Avg) and normalization level 2,
//
//	maskS = the top A+2 bits set:  ^uint64(0) << (64 - (A+2))
//	maskL = the top A-2 bits set:  ^uint64(0) << (64 - (A-2))
//
// The top bits are used because a bit's value depends on the most bytes
// there. For Avg = 1 MiB (A = 20): maskS = 0xfffffc0000000000, maskL =
// 0xffffc00000000000.
//
// Cut rule. A chunk starts at position s (0 for the first chunk, else
// just after the previous chunk). Let n(i) = i - s + 1, the length of a
// chunk ending with d[i]. The chunk ends with the first i for which
//
//	n(i) >= Min and n(i) < Avg and H(i) & maskS == 0, or
//	n(i) >= Avg and H(i) & maskL == 0, or
//	n(i) == Max, or
//	d[i] is the last byte of the stream.
//
// Since Min >= 64, the window of every tested H(i) lies inside the
// chunk. An empty stream has no chunks. Two differences from the FastCDC
// paper (Xia et al., 2016) are deliberate: its hash restarts from zero at
// s+Min, while here every tested hash covers a full 64-byte window, and
// its masks spread their bits over the word, while here they take the top
// bits. Both make H(i) a function of the window alone, so chunk
// boundaries resynchronize exactly after an edit and the hash can be
// computed for several parts of the buffer at once.
//
// With the normalization, chunk lengths gather around Avg: on random data
// a chunk ends in [Min, Avg) with probability about 1-e^(-(Avg-Min)/4Avg)
// (17% for Min = Avg/4) and otherwise about Avg/4 bytes past Avg; the
// mean is about 1.14×Avg for Min = Avg/4, Max = 4×Avg.
//
// # Use
//
// Build one Chunker per secret and Params with New; it is read-only and
// may be shared by goroutines. Each stream gets a Reader (or a call of
// Split), which reads large blocks into a caller-supplied buffer and hands
// out chunks that point into it, with no allocation or copy per chunk.
// Cut works on a slice already in memory.
//
// # Speed
//
// One gear hash is a chain of dependent shift-adds, two cycles a byte. The
// scanner therefore runs four hashes over four consecutive lanes of the
// range to search (each lane warmed up on the 63 bytes before it, which
// by the definition above yields the same H(i)), and settles which hit
// comes first only when a lane hits. That roughly doubles throughput; see
// the benchmarks in bench_test.go.
package chunker
