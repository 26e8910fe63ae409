package timeline

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Unified writes a unified diff of the texts a and b to w, as `diff -u`
// does: the headers "--- nameA" and "+++ nameB", then hunks of changed
// lines with context lines of unchanged text around them. A last line
// without a newline is followed by "\ No newline at end of file". Equal
// texts give no output at all.
//
// The line matching is Myers' O(ND) algorithm in linear space. To bound
// the time spent on texts that share little, a part of the comparison
// whose edit distance grows too large is given up and shown as removed
// then added: the diff stays correct, if not the smallest.
func Unified(w io.Writer, nameA, nameB string, a, b []byte, context int) error {
	la, lb := splitLines(a), splitLines(b)
	ops := editScript(la, lb)
	changed := false
	for _, o := range ops {
		if o.kind != ' ' {
			changed = true
			break
		}
	}
	if !changed {
		return nil
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "--- %s\n+++ %s\n", nameA, nameB)
	for _, h := range hunks(ops, context) {
		writeHunk(bw, ops[h.start:h.end], la, lb)
	}
	return bw.Flush()
}

// splitLines cuts text after each newline; the last line may lack one.
func splitLines(text []byte) []string {
	lines := strings.SplitAfter(string(text), "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// edit is one line of the script: ' ' kept (a and b index it), '-'
// removed (a), '+' added (b).
type edit struct {
	kind byte
	a, b int
}

// editScript turns two texts into a sequence of kept, removed and added
// lines.
func editScript(a, b []string) []edit {
	// Lines are compared as numbers.
	ids := map[string]int{}
	num := func(lines []string) []int {
		out := make([]int, len(lines))
		for i, l := range lines {
			n, ok := ids[l]
			if !ok {
				n = len(ids)
				ids[l] = n
			}
			out[i] = n
		}
		return out
	}
	d := &myers{a: num(a), b: num(b)}
	d.removed = make([]bool, len(a))
	d.added = make([]bool, len(b))
	d.compare(0, len(a), 0, len(b))

	var ops []edit
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && d.removed[i]:
			ops = append(ops, edit{'-', i, j})
			i++
		case j < len(b) && d.added[j]:
			ops = append(ops, edit{'+', i, j})
			j++
		default:
			ops = append(ops, edit{' ', i, j})
			i++
			j++
		}
	}
	return ops
}

// myers marks the lines of a that are removed and of b that are added.
type myers struct {
	a, b           []int
	removed, added []bool
	vf, vb         []int // scratch for snake, reused
}

// maxCost bounds the work of one snake search, in steps of D times the
// lines compared; beyond it the region is replaced whole.
const maxCost = 1 << 26

// compare marks the edits that turn a[aLo:aHi] into b[bLo:bHi].
func (d *myers) compare(aLo, aHi, bLo, bHi int) {
	for aLo < aHi && bLo < bHi && d.a[aLo] == d.b[bLo] {
		aLo++
		bLo++
	}
	for aLo < aHi && bLo < bHi && d.a[aHi-1] == d.b[bHi-1] {
		aHi--
		bHi--
	}
	if aLo == aHi || bLo == bHi {
		d.replace(aLo, aHi, bLo, bHi)
		return
	}
	x, y, ok := d.split(aLo, aHi, bLo, bHi)
	if !ok {
		d.replace(aLo, aHi, bLo, bHi)
		return
	}
	d.compare(aLo, x, bLo, y)
	d.compare(x, aHi, y, bHi)
}

// replace marks a[aLo:aHi] removed and b[bLo:bHi] added.
func (d *myers) replace(aLo, aHi, bLo, bHi int) {
	for i := aLo; i < aHi; i++ {
		d.removed[i] = true
	}
	for j := bLo; j < bHi; j++ {
		d.added[j] = true
	}
}

// split finds a point (x, y) on a shortest edit path from (aLo, bLo) to
// (aHi, bHi), searching forward from the start and backward from the end
// at once until the two searches meet. The ranges must be non-empty and
// differ in their first and last lines, so that the point is neither end
// and both halves are smaller. ok is false when the search costs too
// much.
func (d *myers) split(aLo, aHi, bLo, bHi int) (x, y int, ok bool) {
	n, m := aHi-aLo, bHi-bLo
	maxD := (n + m + 1) / 2
	off := maxD + 1
	size := 2*maxD + 3
	if cap(d.vf) < size {
		d.vf, d.vb = make([]int, size), make([]int, size)
	}
	vf, vb := d.vf[:size], d.vb[:size]
	// vf[off+k]: the furthest x of a forward path on diagonal k = x-y.
	// vb[off+c]: the smallest x of a backward path on diagonal
	// k = c+delta. Coordinates are relative to (aLo, bLo).
	delta := n - m
	odd := delta%2 != 0
	vf[off+1] = 0
	vb[off+1] = n + 1
	for D := 0; D <= maxD; D++ {
		if D > 0 && D*(n+m) > maxCost {
			return 0, 0, false
		}
		for k := -D; k <= D; k += 2 {
			var x int
			if k == -D || k != D && vf[off+k-1] < vf[off+k+1] {
				x = vf[off+k+1]
			} else {
				x = vf[off+k-1] + 1
			}
			y := x - k
			for x < n && y < m && d.a[aLo+x] == d.b[bLo+y] {
				x++
				y++
			}
			vf[off+k] = x
			if c := k - delta; odd && c >= -(D-1) && c <= D-1 && x >= vb[off+c] {
				return aLo + x, bLo + y, true
			}
		}
		for c := -D; c <= D; c += 2 {
			var x int
			if c == -D || c != D && vb[off+c+1]-1 < vb[off+c-1] {
				x = vb[off+c+1] - 1
			} else {
				x = vb[off+c-1]
			}
			k := c + delta
			y := x - k
			for x > 0 && y > 0 && d.a[aLo+x-1] == d.b[bLo+y-1] {
				x--
				y--
			}
			vb[off+c] = x
			if !odd && k >= -D && k <= D && vf[off+k] >= x {
				fx := vf[off+k]
				return aLo + fx, bLo + fx - k, true
			}
		}
	}
	return 0, 0, false
}

// span is a hunk: ops[start:end].
type span struct{ start, end int }

// hunks groups the changes of ops with up to context kept lines around
// each, joining groups that the context would make touch.
func hunks(ops []edit, context int) []span {
	var out []span
	for i := 0; i < len(ops); i++ {
		if ops[i].kind == ' ' {
			continue
		}
		start := max(0, i-context)
		end := min(len(ops), i+1+context)
		if n := len(out); n > 0 && start <= out[n-1].end {
			out[n-1].end = end
		} else {
			out = append(out, span{start, end})
		}
	}
	return out
}

// writeHunk writes one hunk with its "@@ -l,s +l,s @@" header.
func writeHunk(w *bufio.Writer, ops []edit, a, b []string) {
	na, nb := 0, 0
	for _, o := range ops {
		if o.kind != '+' {
			na++
		}
		if o.kind != '-' {
			nb++
		}
	}
	fmt.Fprintf(w, "@@ -%s +%s @@\n", hunkRange(ops[0].a, na), hunkRange(ops[0].b, nb))
	for _, o := range ops {
		line := ""
		switch o.kind {
		case '-':
			line = a[o.a]
		case '+':
			line = b[o.b]
		default:
			line = a[o.a]
		}
		w.WriteByte(o.kind)
		w.WriteString(line)
		if !strings.HasSuffix(line, "\n") {
			w.WriteString("\n\\ No newline at end of file\n")
		}
	}
}

// hunkRange writes a hunk's range of lines: its first line (1-based) and
// count, the count left out when it is 1; an empty range names the line
// before it.
func hunkRange(first, count int) string {
	switch count {
	case 0:
		return fmt.Sprintf("%d,0", first)
	case 1:
		return fmt.Sprint(first + 1)
	}
	return fmt.Sprintf("%d,%d", first+1, count)
}
