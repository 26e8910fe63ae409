package plan

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// docExample returns the YAML block of docs/PLAN.md that follows the
// "example: web-and-db" marker, so the documentation cannot rot.
func docExample(t *testing.T) []byte {
	t.Helper()
	doc, err := os.ReadFile("../../docs/PLAN.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "<!-- example: web-and-db")
	if !ok {
		t.Fatal("docs/PLAN.md has no web-and-db example marker")
	}
	_, rest, _ = strings.Cut(rest, "```yaml\n")
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("the example's YAML block is not closed")
	}
	return []byte(block)
}

// clearPos zeroes every Pos in v, for comparing plans read from different
// text.
func clearPos(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			clearPos(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).Type == posType {
				v.Field(i).Set(reflect.Zero(posType))
			} else if v.Type().Field(i).IsExported() {
				clearPos(v.Field(i))
			}
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			clearPos(v.MapIndex(k))
		}
	case reflect.Slice:
		for i := range v.Len() {
			clearPos(v.Index(i))
		}
	}
}

func TestDocExampleRoundTrip(t *testing.T) {
	data := docExample(t)
	p, err := Parse("PLAN.md", data)
	if err != nil {
		t.Fatal(err)
	}
	if probs := p.Check(context.Background(), nil); len(probs) > 0 {
		t.Fatalf("the example has problems:\n%v", probs)
	}
	if len(p.Jobs) != 6 || p.Jobs["postgres"].Command[4] != "pg_dumpall" || p.Notify.Email.TLS != "starttls" {
		t.Errorf("example read as %+v", p)
	}
	out, err := yaml.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	q, err := Parse("again.yaml", out)
	if err != nil {
		t.Fatalf("re-reading the marshalled plan: %v\n%s", err, out)
	}
	q.Path, q.pos = p.Path, p.pos
	clearPos(reflect.ValueOf(p))
	clearPos(reflect.ValueOf(q))
	if !reflect.DeepEqual(p, q) {
		a, _ := json.MarshalIndent(p, "", " ")
		b, _ := json.MarshalIndent(q, "", " ")
		t.Errorf("round trip changed the plan:\n%s\n---\n%s", a, b)
	}
}

// schema is the part of docs/plan.schema.json the tests read.
type schema struct {
	Ref                  string             `json:"$ref"`
	Type                 any                `json:"type"`
	Enum                 []any              `json:"enum"`
	Required             []string           `json:"required"`
	Properties           map[string]*schema `json:"properties"`
	AdditionalProperties any                `json:"additionalProperties"`
	Items                *schema            `json:"items"`
	Pattern              string             `json:"pattern"`
	Minimum              *float64           `json:"minimum"`
	Maximum              *float64           `json:"maximum"`
	OneOf                []*schema          `json:"oneOf"`
	Defs                 map[string]*schema `json:"$defs"`
}

func loadSchema(t *testing.T) *schema {
	t.Helper()
	data, err := os.ReadFile("../../docs/plan.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var s schema
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

// TestSchemaMatchesStructs checks that the schema's properties are the
// yaml keys of the Go types, no more and no less.
func TestSchemaMatchesStructs(t *testing.T) {
	s := loadSchema(t)
	for def, typ := range map[string]reflect.Type{
		"":           reflect.TypeFor[Plan](),
		"repository": reflect.TypeFor[Repository](),
		"job":        reflect.TypeFor[Job](),
		"retention":  reflect.TypeFor[Retention](),
		"limits":     reflect.TypeFor[Limits](),
		"retry":      reflect.TypeFor[Retry](),
		"notify":     reflect.TypeFor[Notify](),
		"email":      reflect.TypeFor[Email](),
		"metrics":    reflect.TypeFor[Metrics](),
		"agent":      reflect.TypeFor[AgentSettings](),
		"step":       nil,
	} {
		var want []string
		if typ == nil {
			want = append(slices.Clone(StepKinds), stepModifiers...)
		} else {
			want, _ = yamlKeys(typ)
		}
		node := s
		if def != "" {
			node = s.Defs[def]
		}
		if node == nil {
			t.Errorf("schema has no $defs.%s", def)
			continue
		}
		got := slices.Sorted(maps.Keys(node.Properties))
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("schema %q properties %v, Go keys %v", def, got, want)
		}
		if node.AdditionalProperties != false {
			t.Errorf("schema %q allows other properties", def)
		}
	}
	var kinds []any
	for _, k := range Kinds {
		kinds = append(kinds, k)
	}
	if !reflect.DeepEqual(s.Defs["job"].Properties["kind"].Enum, kinds) {
		t.Errorf("schema kinds %v, Go %v", s.Defs["job"].Properties["kind"].Enum, Kinds)
	}
}

// validate checks v (decoded from YAML) against the parts of s that are
// cheap to check: $ref, type, enum, required, properties,
// additionalProperties, items, pattern, minimum, maximum, and oneOf of
// required keys.
func validate(root, s *schema, v any, path string) []string {
	if s.Ref != "" {
		return validate(root, root.Defs[strings.TrimPrefix(s.Ref, "#/$defs/")], v, path)
	}
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, path+": "+fmt.Sprintf(format, args...)) }
	if s.Type != nil {
		types := []string{}
		switch tt := s.Type.(type) {
		case string:
			types = append(types, tt)
		case []any:
			for _, x := range tt {
				types = append(types, x.(string))
			}
		}
		if !slices.Contains(types, jsonType(v)) {
			fail("is %s, want %v", jsonType(v), types)
			return errs
		}
	}
	if s.Enum != nil && !slices.Contains(s.Enum, v) {
		fail("%v is not one of %v", v, s.Enum)
	}
	if s.Pattern != "" {
		if str, ok := v.(string); ok && !regexp.MustCompile(s.Pattern).MatchString(str) {
			fail("%q does not match %s", str, s.Pattern)
		}
	}
	if n, ok := v.(int); ok {
		if s.Minimum != nil && float64(n) < *s.Minimum || s.Maximum != nil && float64(n) > *s.Maximum {
			fail("%d is out of range", n)
		}
	}
	if m, ok := v.(map[string]any); ok {
		for _, r := range s.Required {
			if _, ok := m[r]; !ok {
				fail("%s is required", r)
			}
		}
		if len(s.OneOf) > 0 {
			n := 0
			for _, o := range s.OneOf {
				if len(validate(root, o, v, path)) == 0 {
					n++
				}
			}
			if n != 1 {
				fail("matches %d of oneOf", n)
			}
		}
		for k, x := range m {
			if ps, ok := s.Properties[k]; ok {
				errs = append(errs, validate(root, ps, x, path+"."+k)...)
			} else if ap, ok := s.AdditionalProperties.(map[string]any); ok {
				b, _ := json.Marshal(ap)
				var sub schema
				json.Unmarshal(b, &sub)
				errs = append(errs, validate(root, &sub, x, path+"."+k)...)
			} else if s.AdditionalProperties == false {
				fail("unknown property %q", k)
			}
		}
	}
	if l, ok := v.([]any); ok && s.Items != nil {
		for i, x := range l {
			errs = append(errs, validate(root, s.Items, x, fmt.Sprintf("%s[%d]", path, i))...)
		}
	}
	return errs
}

func jsonType(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case int:
		return "integer"
	case bool:
		return "boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

func TestDocExampleMatchesSchema(t *testing.T) {
	s := loadSchema(t)
	var v any
	if err := yaml.Unmarshal(docExample(t), &v); err != nil {
		t.Fatal(err)
	}
	if errs := validate(s, s, v, "plan"); len(errs) > 0 {
		t.Errorf("the docs example does not match the schema:\n%s", strings.Join(errs, "\n"))
	}
	// The validator must be able to fail.
	var bad any
	yaml.Unmarshal([]byte("repositories: {r: {password_file: x}}\njobs: {j: {kind: tape, before: [{stop: a, start: b}], limits: {nice: 40}}}\nextra: 1\n"), &bad)
	if errs := validate(s, s, bad, "plan"); len(errs) != 5 {
		t.Errorf("a bad plan gave %d schema errors, want 5:\n%s", len(errs), strings.Join(errs, "\n"))
	}
}
