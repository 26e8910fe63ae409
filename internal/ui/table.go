package ui

import (
	"strings"
	"unicode/utf8"
)

// Table lays out rows in columns as every listing prints them: a header
// row, a rule under it, then the rows. Each column is as wide as its
// widest cell, so a long value (a host name) widens its column instead of
// pushing the others out of line. Columns marked Right (numbers) are
// right-aligned; the last column is not padded, and counts in the rule for
// at most 20 characters.
type Table struct {
	headers []string
	right   []bool
	rows    [][]string
}

// NewTable returns a table with these column headers.
func NewTable(headers ...string) *Table {
	return &Table{headers: headers, right: make([]bool, len(headers))}
}

// Right right-aligns the columns at these indexes (counts and sizes).
func (t *Table) Right(cols ...int) *Table {
	for _, c := range cols {
		t.right[c] = true
	}
	return t
}

// Row adds one row; missing cells are empty, extra ones are dropped.
func (t *Table) Row(cells ...string) {
	row := make([]string, len(t.headers))
	copy(row, cells)
	t.rows = append(t.rows, row)
}

// Len is the number of rows added.
func (t *Table) Len() int { return len(t.rows) }

// String renders the table, one line per row, each ending in a newline.
func (t *Table) String() string {
	width := make([]int, len(t.headers))
	for _, row := range append([][]string{t.headers}, t.rows...) {
		for i, c := range row {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	line := func(row []string) {
		var l strings.Builder
		for i, c := range row {
			if i > 0 {
				l.WriteString("  ")
			}
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			switch {
			case t.right[i]:
				l.WriteString(pad + c)
			case i == len(row)-1:
				l.WriteString(c)
			default:
				l.WriteString(c + pad)
			}
		}
		b.WriteString(strings.TrimRight(l.String(), " "))
		b.WriteByte('\n')
	}
	line(t.headers)
	// The rule spans the columns and the last one's header: a long path
	// in the last column does not draw a rule across the terminal.
	total := 0
	for i, w := range width {
		if i == len(width)-1 {
			w = max(utf8.RuneCountInString(t.headers[i]), min(w, 20))
		}
		total += w
		if i > 0 {
			total += 2
		}
	}
	b.WriteString(strings.Repeat("-", total))
	b.WriteByte('\n')
	for _, row := range t.rows {
		line(row)
	}
	return b.String()
}

// Table prints t to Out, unless in JSON mode.
func (u *UI) Table(t *Table) {
	u.Printf("%s", t.String())
}
