package recovery

import (
	"strings"

	"github.com/rewind-backup/rewind/internal/inventory"
)

// FstabEntry is one line of an fstab.
type FstabEntry struct {
	Line    int // 1-based
	Spec    string
	File    string
	Type    string
	Options string
}

// ParseFstab reads the entries of an fstab, skipping comments and lines
// with fewer than three fields. Octal escapes (\040) are undone.
func ParseFstab(content string) []FstabEntry {
	var out []FstabEntry
	for i, line := range strings.Split(content, "\n") {
		t := strings.TrimSpace(line)
		if t == "" || t[0] == '#' {
			continue
		}
		f := strings.Fields(t)
		if len(f) < 3 {
			continue
		}
		e := FstabEntry{Line: i + 1, Spec: unescape(f[0]), File: unescape(f[1]), Type: f[2]}
		if len(f) > 3 {
			e.Options = f[3]
		}
		out = append(out, e)
	}
	return out
}

func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// resolver finds the recorded filesystem an fstab spec names.
type resolver struct {
	doc *inventory.Document
	// parts maps a recorded partition's device to its table entry.
	parts map[string]inventory.Partition
}

func newResolver(doc *inventory.Document) *resolver {
	r := &resolver{doc: doc, parts: map[string]inventory.Partition{}}
	for _, d := range doc.Disks {
		if d.Table == nil {
			continue
		}
		for _, p := range d.Table.Partitions {
			r.parts[p.Path] = p
		}
	}
	return r
}

// device returns the recorded device that spec names ("" when none):
// UUID=, LABEL=, PARTUUID=, PARTLABEL=, /dev/disk/by-*/ links and /dev/
// names.
func (r *resolver) device(spec string) string {
	spec = strings.Trim(spec, `"`)
	key, val, ok := strings.Cut(spec, "=")
	if !ok {
		for _, by := range []string{"uuid", "label", "partuuid", "partlabel"} {
			if v, found := strings.CutPrefix(spec, "/dev/disk/by-"+by+"/"); found {
				key, val, ok = strings.ToUpper(by), unescape(strings.ReplaceAll(v, `\x20`, " ")), true
			}
		}
	}
	if !ok {
		if !strings.HasPrefix(spec, "/dev/") {
			return ""
		}
		for _, f := range r.doc.Filesystems {
			if f.Device == spec {
				return spec
			}
		}
		return ""
	}
	val = strings.Trim(val, `"`)
	switch strings.ToUpper(key) {
	case "UUID":
		for _, f := range r.doc.Filesystems {
			if f.UUID != "" && strings.EqualFold(f.UUID, val) {
				return f.Device
			}
		}
	case "LABEL":
		for _, f := range r.doc.Filesystems {
			if f.Label != "" && f.Label == val {
				return f.Device
			}
		}
	case "PARTUUID":
		for dev, p := range r.parts {
			if p.UUID != "" && strings.EqualFold(p.UUID, val) {
				return dev
			}
		}
	case "PARTLABEL":
		for dev, p := range r.parts {
			if p.Name != "" && p.Name == val {
				return dev
			}
		}
	}
	return ""
}

// optionValue returns the value of key=value in a comma list of options.
func optionValue(opts, key string) (string, bool) {
	for _, o := range strings.Split(opts, ",") {
		if v, ok := strings.CutPrefix(o, key+"="); ok {
			return v, true
		}
	}
	return "", false
}
