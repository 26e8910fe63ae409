package timeline_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/timeline"
)

func unified(t *testing.T, a, b string) string {
	t.Helper()
	var out bytes.Buffer
	if err := timeline.Unified(&out, "a", "b", []byte(a), []byte(b), 3); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestUnifiedExamples(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, a, b, want string }{
		{"equal", "x\ny\n", "x\ny\n", ""},
		{"both empty", "", "", ""},
		{"changed line", "a\nb\nc\n", "a\nB\nc\nd\n",
			"--- a\n+++ b\n@@ -1,3 +1,4 @@\n a\n-b\n+B\n c\n+d\n"},
		{"from nothing", "", "one\ntwo\n",
			"--- a\n+++ b\n@@ -0,0 +1,2 @@\n+one\n+two\n"},
		{"to nothing", "one\n", "",
			"--- a\n+++ b\n@@ -1 +0,0 @@\n-one\n"},
		{"newline added at end", "x\ny", "x\ny\n",
			"--- a\n+++ b\n@@ -1,2 +1,2 @@\n x\n-y\n\\ No newline at end of file\n+y\n"},
		{"two hunks", "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n", "1\nTWO\n3\n4\n5\n6\n7\n8\n9\n10\n11\nTWELVE\n",
			"--- a\n+++ b\n@@ -1,5 +1,5 @@\n 1\n-2\n+TWO\n 3\n 4\n 5\n@@ -9,4 +9,4 @@\n 9\n 10\n 11\n-12\n+TWELVE\n"},
		{"hunks joined by short context", "1\n2\n3\n4\n5\n6\n7\n8\n", "1\nX\n3\n4\n5\n6\nY\n8\n",
			"--- a\n+++ b\n@@ -1,8 +1,8 @@\n 1\n-2\n+X\n 3\n 4\n 5\n 6\n-7\n+Y\n 8\n"},
	} {
		if got := unified(t, tt.a, tt.b); got != tt.want {
			t.Errorf("%s:\ngot:\n%s\nwant:\n%s", tt.name, got, tt.want)
		}
	}
}

var hunkHeader = regexp.MustCompile(`^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@$`)

// applyUnified applies a unified diff to a, checking its hunk headers
// against their lines, and returns the result.
func applyUnified(t *testing.T, a, diff string) string {
	t.Helper()
	if diff == "" {
		return a
	}
	lines := strings.SplitAfter(a, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	dl := strings.SplitAfter(diff, "\n")
	dl = dl[:len(dl)-1]
	if dl[0] != "--- a\n" || dl[1] != "+++ b\n" {
		t.Fatalf("headers: %q", dl[:2])
	}
	var out []string
	pos := 0 // next line of a to copy
	atoi := func(s string, def int) int {
		if s == "" {
			return def
		}
		n, _ := strconv.Atoi(s)
		return n
	}
	for i := 2; i < len(dl); {
		m := hunkHeader.FindStringSubmatch(strings.TrimSuffix(dl[i], "\n"))
		if m == nil {
			t.Fatalf("line %d is not a hunk header: %q", i, dl[i])
		}
		aStart, aCount := atoi(m[1], 0), atoi(m[2], 1)
		bCount := atoi(m[4], 1)
		first := aStart - 1
		if aCount == 0 {
			first = aStart
		}
		if first < pos {
			t.Fatalf("hunks overlap or go back: %q", dl[i])
		}
		out = append(out, lines[pos:first]...)
		pos = first
		i++
		seenA, seenB := 0, 0
		for i < len(dl) && !strings.HasPrefix(dl[i], "@@") {
			l := dl[i]
			i++
			text := l[1:]
			if i < len(dl) && dl[i] == "\\ No newline at end of file\n" {
				text = strings.TrimSuffix(text, "\n")
				i++
			}
			switch l[0] {
			case ' ':
				if lines[pos] != text {
					t.Fatalf("context %q does not match line %d %q", text, pos+1, lines[pos])
				}
				out = append(out, text)
				pos++
				seenA++
				seenB++
			case '-':
				if lines[pos] != text {
					t.Fatalf("removed %q does not match line %d %q", text, pos+1, lines[pos])
				}
				pos++
				seenA++
			case '+':
				out = append(out, text)
				seenB++
			default:
				t.Fatalf("bad diff line %q", l)
			}
		}
		if seenA != aCount || seenB != bCount {
			t.Fatalf("hunk %q holds %d and %d lines", m[0], seenA, seenB)
		}
	}
	out = append(out, lines[pos:]...)
	return strings.Join(out, "")
}

// TestUnifiedApplies: for random pairs of texts, applying the diff to the
// first gives the second, every hunk has at most 3 lines of context on
// each side, and near-identical texts give short diffs.
func TestUnifiedApplies(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	text := func(n int) string {
		var b strings.Builder
		for range n {
			fmt.Fprintf(&b, "line %d\n", rng.IntN(8))
		}
		s := b.String()
		if rng.IntN(4) == 0 {
			s = strings.TrimSuffix(s, "\n")
		}
		return s
	}
	for i := range 2000 {
		a, b := text(rng.IntN(30)), text(rng.IntN(30))
		d := unified(t, a, b)
		if got := applyUnified(t, a, d); got != b {
			t.Fatalf("case %d: applying the diff gives\n%q\nwant\n%q\ndiff:\n%s", i, got, b, d)
		}
		if (d == "") != (a == b) {
			t.Fatalf("case %d: diff %q for a == b: %v", i, d, a == b)
		}
		if got, want := editCount(d), minEdits(a, b); got != want {
			t.Fatalf("case %d: %d lines added and removed, the fewest is %d:\n%s", i, got, want, d)
		}
	}
	// One line changed in a long text: one hunk of 7 lines.
	var long strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&long, "%d\n", i)
	}
	a := long.String()
	b := strings.Replace(a, "\n2500\n", "\nchanged\n", 1)
	d := unified(t, a, b)
	if n := strings.Count(d, "\n"); n != 2+1+8 {
		t.Errorf("one changed line gives %d diff lines:\n%s", n, d)
	}
	if got := applyUnified(t, a, d); got != b {
		t.Error("the one-line diff does not apply")
	}
}

// TestUnifiedUnrelated: texts with nothing in common are still diffed
// correctly, also past the point where the search gives up on a smallest
// diff.
func TestUnifiedUnrelated(t *testing.T) {
	t.Parallel()
	var a, b strings.Builder
	for i := range 20000 {
		fmt.Fprintf(&a, "a%d\n", i)
		fmt.Fprintf(&b, "b%d\n", i)
		if i%100 == 0 {
			fmt.Fprintf(&a, "common %d\n", i)
			fmt.Fprintf(&b, "common %d\n", i)
		}
	}
	d := unified(t, a.String(), b.String())
	if got := applyUnified(t, a.String(), d); got != b.String() {
		t.Error("the diff of unrelated texts does not apply")
	}
}

// editCount counts the added and removed lines of a diff.
func editCount(d string) int {
	n := 0
	for _, l := range strings.Split(d, "\n") {
		if strings.HasPrefix(l, "+") && !strings.HasPrefix(l, "+++ ") || strings.HasPrefix(l, "-") && !strings.HasPrefix(l, "--- ") {
			n++
		}
	}
	return n
}

// minEdits is the fewest lines to add and remove to turn a into b, from
// their longest common subsequence of lines.
func minEdits(a, b string) int {
	la, lb := strings.SplitAfter(a, "\n"), strings.SplitAfter(b, "\n")
	if la[len(la)-1] == "" {
		la = la[:len(la)-1]
	}
	if lb[len(lb)-1] == "" {
		lb = lb[:len(lb)-1]
	}
	lcs := make([][]int, len(la)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(lb)+1)
	}
	for i := len(la) - 1; i >= 0; i-- {
		for j := len(lb) - 1; j >= 0; j-- {
			if la[i] == lb[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	return len(la) + len(lb) - 2*lcs[0][0]
}
