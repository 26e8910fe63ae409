package ui

import (
	"strings"
	"testing"
)

func TestTableColumnsFollowContent(t *testing.T) {
	tb := NewTable("ID", "Host", "Size", "Paths").Right(2)
	tb.Row("a1", "web1", "7", "/etc")
	tb.Row("b2", "a-very-long-host-name.example.org", "12345", "/srv /home")
	tb.Row("c3", "h", "", "")
	got := tb.String()
	want := "" +
		"ID  Host                                Size  Paths\n" +
		"--------------------------------------------------------\n" +
		"a1  web1                                   7  /etc\n" +
		"b2  a-very-long-host-name.example.org  12345  /srv /home\n" +
		"c3  h\n"
	if got != want {
		t.Fatalf("table:\n%s\nwant:\n%s", got, want)
	}
	// Every row's third column ends at the same place, whatever the host.
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	end := strings.Index(lines[0], "Size") + len("Size")
	for _, l := range lines[2:4] {
		if l[end-1] == ' ' || l[end] != ' ' {
			t.Errorf("size column not aligned at %d in %q", end, l)
		}
	}
}

func TestTableWidthCountsRunes(t *testing.T) {
	tb := NewTable("Name", "N").Right(1)
	tb.Row("é", "1")
	tb.Row("ab", "22")
	want := "Name   N\n--------\né      1\nab    22\n"
	if got := tb.String(); got != want {
		t.Fatalf("got:\n%q\nwant:\n%q", got, want)
	}
}

func TestTableRuleIgnoresLongLastColumn(t *testing.T) {
	tb := NewTable("A", "Path")
	tb.Row("1", "/a/path/much/longer/than/twenty/characters")
	want := "A  Path\n" + strings.Repeat("-", 23) + "\n1  /a/path/much/longer/than/twenty/characters\n"
	if got := tb.String(); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}
