package plan

import (
	"strings"
	"testing"
)

func TestParseProbe(t *testing.T) {
	good := map[string]Probe{
		"marker login:":                 {Kind: ProbeMarker, Text: "login:"},
		"marker 'REWIND-SERVER-UP srv'": {Kind: ProbeMarker, Text: "REWIND-SERVER-UP srv"},
		"marker REWIND-SERVER-UP srv":   {Kind: ProbeMarker, Text: "REWIND-SERVER-UP srv"},
		"tcp 22":                        {Kind: ProbeTCP, Port: 22},
		"http /":                        {Kind: ProbeHTTP, Path: "/", Port: 80},
		"http /health 8080":             {Kind: ProbeHTTP, Path: "/health", Port: 8080},
		"http / 80 204":                 {Kind: ProbeHTTP, Path: "/", Port: 80, Status: 204},
		"http / 443":                    {Kind: ProbeHTTP, Path: "/", Port: 443},
		"http / 80 token-123":           {Kind: ProbeHTTP, Path: "/", Port: 80, Text: "token-123"},
		`http /x 8080 "it works"`:       {Kind: ProbeHTTP, Path: "/x", Port: 8080, Text: "it works"},
		"unit nginx.service":            {Kind: ProbeUnit, Text: "nginx.service"},
	}
	for s, want := range good {
		got, err := ParseProbe(s)
		if err != nil || got != want {
			t.Errorf("ParseProbe(%q) = %+v, %v; want %+v", s, got, err, want)
			continue
		}
		if back, err := ParseProbe(got.String()); err != nil || back != got {
			t.Errorf("%q: String %q reads back as %+v, %v", s, got.String(), back, err)
		}
	}
	bad := map[string]string{
		"":              "empty probe",
		"marker":        "needs the text",
		"tcp":           "tcp PORT",
		"tcp 0":         "not a port",
		"tcp 70000":     "not a port",
		"http":          "http PATH",
		"http health":   "must start with /",
		"http / x y":    "not a port",
		"unit":          "unit NAME",
		"unit a b":      "unit NAME",
		"markr login:":  `did you mean "marker"`,
		"ping 10.0.0.1": "unknown kind",
		"marker 'open":  "unterminated",
	}
	for s, want := range bad {
		_, err := ParseProbe(s)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseProbe(%q) = %v, want an error with %q", s, err, want)
		}
	}
}

func TestDrillJobChecked(t *testing.T) {
	p, err := Parse("d.yaml", []byte(`repositories: {r: {location: /r, password_file: /p}}
jobs:
  ok: {kind: drill, host: web1, probes: ["marker login:", "http / 80 200"], timeout: 5m}
  bad: {kind: drill, probes: ["http nope"], timeout: 2s, tags: [x]}
  files: {kind: files, paths: [/etc], probes: ["tcp 22"]}
`))
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, pr := range p.Check(t.Context(), nil) {
		msgs = append(msgs, pr.Field+": "+pr.Msg)
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{
		"jobs.bad.probes[0]: probe \"http nope\": the path \"nope\" must start with /",
		"jobs.bad.timeout: 2s is too short",
		"jobs.bad: a drill job saves no snapshot",
		"jobs.files.probes: probes is only for drill jobs",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("problems lack %q:\n%s", want, all)
		}
	}
	if strings.Contains(all, "jobs.ok") {
		t.Errorf("a good drill job has problems:\n%s", all)
	}
}

func FuzzParseProbe(f *testing.F) {
	for _, s := range []string{"marker login:", "tcp 22", "http / 80 ok", "http /a 8080 '2 words'", "unit x.service", "http / 200", `marker "a\"b"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseProbe(s)
		if err != nil {
			return
		}
		back, err := ParseProbe(p.String())
		if err != nil || back != p {
			t.Fatalf("%q parsed as %+v; its String %q reads back as %+v, %v", s, p, p.String(), back, err)
		}
	})
}
