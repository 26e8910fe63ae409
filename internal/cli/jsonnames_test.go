package cli

import (
	"sort"
	"strings"
	"testing"
)

// jsonSynonyms are field names that name a concept which docs/JSON.md
// gives one name in every document (its Conventions): the key is the
// name not to use, the value the one to use.
var jsonSynonyms = map[string]string{
	"host":          "hostname",
	"host_name":     "hostname",
	"hostName":      "hostname",
	"user_name":     "username",
	"userName":      "username",
	"shortid":       "short_id",
	"short":         "short_id",
	"snapshot":      "snapshot_id",
	"snapshot_time": "time",
	"timestamp":     "time",
}

// TestJSONOneNamePerConcept: no document of docs/JSON.md (and so no
// output, which the schema tests hold to them) names a host, a user, a
// short ID or a snapshot's ID otherwise than the others do. `user` is
// the maker of a label or lock everywhere but in `node`, where `user`
// and `group` own the file, as in ls.
func TestJSONOneNamePerConcept(t *testing.T) {
	all, err := docSchemas()
	if err != nil {
		t.Fatalf("read docs/JSON.md: %v", err)
	}
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		for field, spec := range all[name] {
			last := field[strings.LastIndex(field, ".")+1:]
			last = strings.TrimSuffix(last, "[]")
			if want, ok := jsonSynonyms[last]; ok && !(last == "snapshot" && spec.typ != "id") {
				t.Errorf("schema %s: field %s: name it %s, as every other document does", name, field, want)
			}
			if last == "user" && name != "node" {
				t.Errorf("schema %s: field %s: name the user who made it username, as every other document does", name, field)
			}
		}
	}
}
