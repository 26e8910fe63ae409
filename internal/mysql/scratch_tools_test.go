package mysql

import (
	"strings"
	"testing"
)

// mariadb-check's report: a table alone on its line with OK, or its name
// and then its messages, one per line ("Msg_type : text").
const checkSample = `mysql.column_stats                                 OK
mysql.user                                         OK
d.good                                             OK
d.bad
Warning  : InnoDB: The B-tree of index PRIMARY is corrupted.
error    : Corrupt
d.myisam
note     : The storage engine for the table doesn't support check
d.crashed
status   : Table is marked as crashed
`

func TestParseCheckOutput(t *testing.T) {
	r := parseCheckOutput(checkSample)
	if r.OK || r.Tables != 6 {
		t.Fatalf("%+v", r)
	}
	if len(r.Failed) != 2 || !strings.HasPrefix(r.Failed[0], "d.bad") || !strings.HasPrefix(r.Failed[1], "d.crashed") {
		t.Errorf("failed: %q", r.Failed)
	}
	good := parseCheckOutput("d.t                OK\nd.u\nnote     : The storage engine for the table doesn't support check\n")
	if !good.OK || good.Tables != 2 {
		t.Errorf("%+v", good)
	}
}

func TestSplitTable(t *testing.T) {
	if db, tb, err := SplitTable("shop.orders"); err != nil || db != "shop" || tb != "orders" {
		t.Errorf("%q %q %v", db, tb, err)
	}
	for _, bad := range []string{"orders", "a.b.c", ".x", "x."} {
		if _, _, err := SplitTable(bad); err == nil {
			t.Errorf("SplitTable(%q) took it", bad)
		}
	}
}

func FuzzParseCheckOutput(f *testing.F) {
	f.Add(checkSample)
	f.Add("x\nerror : y\n")
	f.Fuzz(func(t *testing.T, s string) {
		r := parseCheckOutput(s)
		if r.OK != (len(r.Failed) == 0) || r.Tables < 0 {
			t.Fatalf("%+v", r)
		}
	})
}
