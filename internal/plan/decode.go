package plan

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads and decodes the plan file at path. See Parse.
func Load(path string) (*Plan, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse decodes a plan; name is the file it came from, for messages.
// Every mistake found while decoding (bad YAML, an unknown key, a value
// of the wrong type) is returned as Problems. When the YAML itself could
// be read, the plan is returned too, as far as it could be decoded, so
// that Check can add its own problems to the same list.
//
// Parse fills the defaults: Name fields, Host (os.Hostname), and a job's
// repository when the plan has exactly one, or exactly one that is not in
// the job's copy_to.
func Parse(name string, data []byte) (*Plan, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, Problems{yamlProblem(name, err)}
	}
	d := &decoder{file: name, pos: map[string]Pos{}}
	p := &Plan{Path: name}
	if len(doc.Content) == 0 {
		d.add(Pos{Line: 1, Column: 1}, "", "the plan is empty: it needs repositories and jobs")
		return p, d.probs
	}
	root := doc.Content[0]
	d.value(root, reflect.ValueOf(p).Elem(), "")
	p.pos = d.pos
	p.fillDefaults()
	if len(d.probs) > 0 {
		return p, d.probs
	}
	return p, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// yamlProblem turns a YAML syntax error into a problem with its line.
func yamlProblem(file string, err error) Problem {
	msg := err.Error()
	pr := Problem{File: file}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		pr.Pos.Line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
		// yaml.v3 numbers the lines of its parser's errors (not its
		// scanner's) from 0; its messages are the only way to tell.
		if strings.HasPrefix(msg, "did not find expected") {
			pr.Pos.Line++
		}
	}
	pr.Msg = "not valid YAML: " + strings.TrimPrefix(msg, "yaml: ")
	return pr
}

func (p *Plan) fillDefaults() {
	if p.Host == "" {
		p.Host, _ = os.Hostname()
	}
	for name, r := range p.Repositories {
		if r != nil {
			r.Name = name
		}
	}
	only := ""
	if len(p.Repositories) == 1 {
		for name := range p.Repositories {
			only = name
		}
	}
	for name, j := range p.Jobs {
		if j == nil {
			continue
		}
		j.Name = name
		if j.Repository == "" {
			j.Repository = only
		}
		if j.Repository == "" && len(j.CopyTo) > 0 {
			// The one repository the job does not copy to is its own.
			var rest []string
			for r := range p.Repositories {
				if !slices.Contains(j.CopyTo, r) {
					rest = append(rest, r)
				}
			}
			if len(rest) == 1 {
				j.Repository = rest[0]
			}
		}
	}
}

// PosOf returns where field ("jobs.www.schedule") was written in the
// file, or where its nearest written parent was, or the zero Pos.
func (p *Plan) PosOf(field string) Pos {
	for f := field; f != ""; {
		if pos, ok := p.pos[f]; ok {
			return pos
		}
		i := strings.LastIndexAny(f, ".[")
		if i < 0 {
			break
		}
		f = f[:i]
	}
	return Pos{}
}

// maxNodes bounds the values a plan decodes to, so that aliases cannot
// make a small file expand without end.
const maxNodes = 100000

type decoder struct {
	nodes int
	file  string
	probs Problems
	pos   map[string]Pos
}

func nodePos(n *yaml.Node) Pos { return Pos{Line: n.Line, Column: n.Column} }

func (d *decoder) add(pos Pos, field, format string, args ...any) {
	d.probs = append(d.probs, Problem{File: d.file, Pos: pos, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func join(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}

var (
	durationType = reflect.TypeFor[Duration]()
	commandType  = reflect.TypeFor[Command]()
	stepType     = reflect.TypeFor[*Step]()
	posType      = reflect.TypeFor[Pos]()
)

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a map"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "nothing"
}

// value decodes n into v, recording the position of field.
func (d *decoder) value(n *yaml.Node, v reflect.Value, field string) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if _, ok := d.pos[field]; !ok {
		d.pos[field] = nodePos(n)
	}
	if d.nodes++; d.nodes > maxNodes {
		if d.nodes == maxNodes+1 {
			d.add(nodePos(n), field, "the plan is too large (more than %d values, counting what aliases repeat)", maxNodes)
		}
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		if v.Type() == stepType {
			d.add(nodePos(n), field, "an empty step: a step is a map with one action, such as {stop: nginx.service}")
			v.Set(reflect.ValueOf(&Step{Pos: nodePos(n)}))
		}
		return
	}
	pos := nodePos(n)
	switch v.Type() {
	case durationType:
		if n.Kind != yaml.ScalarNode {
			d.add(pos, field, "expected a duration such as 90s, 1h30m or 2d, not %s", kindName(n))
			return
		}
		dur, err := ParseDuration(n.Value)
		if err != nil {
			d.add(pos, field, "%v", err)
			return
		}
		v.SetInt(int64(dur))
		return
	case commandType:
		d.command(n, v, field)
		return
	case stepType:
		s := &Step{}
		d.step(n, s, field)
		v.Set(reflect.ValueOf(s))
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.value(n, v.Elem(), field)
	case reflect.Struct:
		d.structure(n, v, field)
	case reflect.Map:
		d.mapping(n, v, field)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.add(pos, field, "expected a list, not %s (write [a, b] or one \"- item\" per line)", kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, el := range n.Content {
			d.value(el, s.Index(i), fmt.Sprintf("%s[%d]", field, i))
		}
		v.Set(s)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.add(pos, field, "expected a string, not %s", kindName(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Int:
		i, err := strconv.Atoi(n.Value)
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || err != nil {
			d.add(pos, field, "expected a whole number, not %s", kindName(n))
			return
		}
		v.SetInt(int64(i))
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&b) != nil {
			d.add(pos, field, "expected true or false, not %s", kindName(n))
			return
		}
		v.SetBool(b)
	default:
		panic("plan: cannot decode into " + v.Type().String())
	}
}

func (d *decoder) command(n *yaml.Node, v reflect.Value, field string) {
	pos := nodePos(n)
	switch n.Kind {
	case yaml.SequenceNode:
		c := make(Command, 0, len(n.Content))
		for i, el := range n.Content {
			if el.Kind != yaml.ScalarNode {
				d.add(nodePos(el), fmt.Sprintf("%s[%d]", field, i), "expected a word of the command, not %s", kindName(el))
				return
			}
			c = append(c, el.Value)
		}
		v.Set(reflect.ValueOf(c))
	case yaml.ScalarNode:
		c, err := SplitCommand(n.Value)
		if err != nil {
			d.add(pos, field, "%v", err)
			return
		}
		v.Set(reflect.ValueOf(c))
	default:
		d.add(pos, field, "expected a command (a string or a list of words), not %s", kindName(n))
	}
}

// yamlKeys returns the yaml names of t's fields and their indexes.
func yamlKeys(t reflect.Type) (names []string, index map[string]int) {
	index = map[string]int{}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		names = append(names, name)
		index[name] = i
	}
	return names, index
}

// what names the thing a struct field path is, for messages.
func what(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[Plan]():
		return "the plan"
	case reflect.TypeFor[Job]():
		return "a job"
	case reflect.TypeFor[Repository]():
		return "a repository"
	}
	return strings.ToLower(t.Name())
}

func (d *decoder) structure(n *yaml.Node, v reflect.Value, field string) {
	if n.Kind != yaml.MappingNode {
		d.add(nodePos(n), field, "expected a map of keys, not %s", kindName(n))
		return
	}
	if f := v.FieldByName("Pos"); f.IsValid() && f.Type() == posType {
		f.Set(reflect.ValueOf(nodePos(n)))
	}
	names, index := yamlKeys(v.Type())
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := k.Value
		if k.Kind != yaml.ScalarNode {
			d.add(nodePos(k), field, "a key must be a plain name")
			continue
		}
		if key == "<<" {
			d.add(nodePos(k), field, "merge keys (<<) are not supported in a plan")
			continue
		}
		fi, ok := index[key]
		if !ok {
			d.add(nodePos(k), join(field, key), "unknown key %q in %s%s", key, what(v.Type()), suggest(key, names))
			continue
		}
		if seen[key] {
			d.add(nodePos(k), join(field, key), "%q is given twice", key)
			continue
		}
		seen[key] = true
		// A missing key inside a map is best shown at the map's own key.
		if val.Kind == yaml.MappingNode {
			d.pos[join(field, key)] = nodePos(k)
		} else {
			d.pos[join(field, key)] = nodePos(val)
		}
		d.value(val, v.Field(fi), join(field, key))
	}
}

func (d *decoder) mapping(n *yaml.Node, v reflect.Value, field string) {
	if n.Kind != yaml.MappingNode {
		d.add(nodePos(n), field, "expected a map of names, not %s", kindName(n))
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	et := v.Type().Elem()
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Value == "" {
			d.add(nodePos(k), field, "a name must be a plain, non-empty string")
			continue
		}
		f := join(field, k.Value)
		if v.MapIndex(reflect.ValueOf(k.Value)).IsValid() {
			d.add(nodePos(k), f, "%q is defined twice", k.Value)
			continue
		}
		d.pos[f] = nodePos(k)
		el := reflect.New(et).Elem()
		d.value(val, el, f)
		if el.Kind() == reflect.Pointer && el.IsNil() {
			// "name:" with nothing after it: keep an empty entry, so Check
			// can say what is missing.
			el.Set(reflect.New(et.Elem()))
		}
		if el.Kind() == reflect.Pointer {
			if pf := el.Elem().FieldByName("Pos"); pf.IsValid() && pf.Type() == posType {
				pf.Set(reflect.ValueOf(nodePos(k)))
			}
		}
		v.SetMapIndex(reflect.ValueOf(k.Value), el)
	}
}

// StepKinds lists the step kinds, in the order docs/PLAN.md gives them.
var StepKinds = []string{StepStop, StepStart, StepRestart, StepReload, StepRun, StepCheck, StepFsfreeze, StepBtrfsSnapshot}

// stepModifiers are the keys a step may have beside its kind.
var stepModifiers = []string{"timeout", "max", "always"}

func (d *decoder) step(n *yaml.Node, s *Step, field string) {
	s.Pos = nodePos(n)
	if n.Kind != yaml.MappingNode {
		d.add(s.Pos, field, "a step is a map with one action, such as {stop: nginx.service} or {run: /usr/local/bin/check}, not %s", kindName(n))
		return
	}
	all := append(slices.Clone(StepKinds), stepModifiers...)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := k.Value
		f := join(field, key)
		switch {
		case slices.Contains(StepKinds, key):
			if s.Kind != "" {
				d.add(nodePos(k), f, "a step has exactly one action: %q and %q are both given (write two steps)", s.Kind, key)
				continue
			}
			s.Kind = key
			d.pos[f] = nodePos(val)
			if key == StepRun || key == StepCheck {
				d.value(val, reflect.ValueOf(&s.Command).Elem(), f)
			} else {
				d.value(val, reflect.ValueOf(&s.Arg).Elem(), f)
			}
		case key == "timeout":
			d.value(val, reflect.ValueOf(&s.Timeout).Elem(), f)
		case key == "max":
			d.value(val, reflect.ValueOf(&s.Max).Elem(), f)
		case key == "always":
			d.value(val, reflect.ValueOf(&s.Always).Elem(), f)
		default:
			d.add(nodePos(k), f, "unknown key %q in a step%s", key, suggest(key, all))
		}
	}
	if s.Kind == "" {
		d.add(s.Pos, field, "a step needs one action: %s", strings.Join(StepKinds, ", "))
	}
}

// suggest returns `, did you mean "x"?` for the name closest to key, or ""
// when none is close.
func suggest(key string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if dd := distance(strings.ToLower(key), n); dd < bestD {
			best, bestD = n, dd
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(`; did you mean %q?`, best)
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
