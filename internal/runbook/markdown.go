package runbook

import (
	"bytes"
	"fmt"
	"strings"
)

// Markdown renders d as CommonMark (with GitHub's tables). Text from the
// facts is escaped, so a host name or label cannot add markup or HTML.
func (d *Doc) Markdown() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# %s\n", mdInline(d.Title, false))
	for _, s := range d.Sections {
		fmt.Fprintf(&b, "\n## %s\n", mdInline(s.Title, false))
		for _, bl := range s.Blocks {
			b.WriteString("\n")
			mdBlock(&b, bl)
		}
	}
	return b.Bytes()
}

func mdBlock(b *bytes.Buffer, bl Block) {
	switch {
	case bl.Para != "":
		fmt.Fprintf(b, "%s\n", mdInline(bl.Para, false))
	case bl.List != nil:
		for _, it := range bl.List {
			fmt.Fprintf(b, "- %s\n", mdInline(it, false))
		}
	case bl.Table != nil:
		row := func(cells []string) {
			b.WriteString("|")
			for _, c := range cells {
				fmt.Fprintf(b, " %s |", mdInline(c, true))
			}
			b.WriteString("\n")
		}
		row(bl.Table.Header)
		b.WriteString("|" + strings.Repeat("---|", len(bl.Table.Header)) + "\n")
		for _, r := range bl.Table.Rows {
			row(r)
		}
	case bl.Steps != nil:
		for i, st := range bl.Steps {
			if i > 0 {
				b.WriteString("\n")
			}
			n := fmt.Sprintf("%d. ", i+1)
			fmt.Fprintf(b, "%s%s\n", n, mdInline(st.Text, false))
			if len(st.Commands) > 0 {
				b.WriteString("\n")
				mdFence(b, strings.Join(st.Commands, "\n"), strings.Repeat(" ", len(n)))
			}
		}
	case bl.Code != "":
		mdFence(b, bl.Code, "")
	}
}

// mdFence writes text as a fenced code block, indented by indent, with a
// fence longer than any run of backticks in text.
func mdFence(b *bytes.Buffer, text, indent string) {
	fence := strings.Repeat("`", max(3, longestRun(text, '`')+1))
	fmt.Fprintf(b, "%s%s\n", indent, fence)
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		fmt.Fprintf(b, "%s%s\n", indent, l)
	}
	fmt.Fprintf(b, "%s%s\n", indent, fence)
}

func longestRun(s string, c byte) int {
	best, n := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			n++
			best = max(best, n)
		} else {
			n = 0
		}
	}
	return best
}

// mdInline renders inline text: plain runs with Markdown's punctuation
// escaped, code runs as code spans. In a table cell, | is escaped in both.
func mdInline(s string, cell bool) string {
	var b strings.Builder
	for i, sg := range segments(s) {
		if sg.Code {
			t := sg.Text
			if cell {
				t = strings.ReplaceAll(t, "|", `\|`)
			}
			fence := strings.Repeat("`", longestRun(t, '`')+1)
			pad := ""
			if t == "" || t[0] == '`' || t[len(t)-1] == '`' || t[0] == ' ' && t[len(t)-1] == ' ' {
				pad = " "
			}
			b.WriteString(fence + pad + t + pad + fence)
			continue
		}
		t := sg.Text
		for j, r := range t {
			if strings.ContainsRune("\\`*_[]<>|&#!~", r) || !cell && i == 0 && j == 0 && strings.ContainsRune("-+=", r) {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		}
	}
	return b.String()
}
