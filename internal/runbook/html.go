package runbook

import (
	"bytes"
	"html/template"
	"strings"
)

// htmlPage renders a Doc as one HTML page; html/template escapes every
// value, so a host name or label cannot add markup or script.
var htmlPage = template.Must(template.New("runbook").Funcs(template.FuncMap{
	"segs":  segments,
	"plain": plain,
	"inc":   func(i int) int { return i + 1 },
	"lines": func(cmds []string) string { return strings.Join(cmds, "\n") },
}).Parse(`{{define "inline"}}{{range segs .}}{{if .Code}}<code>{{.Text}}</code>{{else}}{{.Text}}{{end}}{{end}}{{end -}}
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{plain .Title}}</title>
<style>
body { font-family: sans-serif; max-width: 60em; margin: 2em auto; line-height: 1.4; }
table { border-collapse: collapse; } th, td { border: 1px solid #999; padding: 0.2em 0.5em; text-align: left; }
pre { background: #f4f4f4; padding: 0.5em; overflow-x: auto; }
</style>
</head>
<body>
<h1>{{template "inline" .Title}}</h1>
{{- range .Sections}}
<h2>{{template "inline" .Title}}</h2>
{{- range .Blocks}}
{{- if .Para}}
<p>{{template "inline" .Para}}</p>
{{- else if .List}}
<ul>
{{- range .List}}
<li>{{template "inline" .}}</li>
{{- end}}
</ul>
{{- else if .Table}}
<table>
<tr>{{range .Table.Header}}<th>{{template "inline" .}}</th>{{end}}</tr>
{{- range .Table.Rows}}
<tr>{{range .}}<td>{{template "inline" .}}</td>{{end}}</tr>
{{- end}}
</table>
{{- else if .Steps}}
<ol>
{{- range .Steps}}
<li><p>{{template "inline" .Text}}</p>{{if .Commands}}<pre><code>{{lines .Commands}}</code></pre>{{end}}</li>
{{- end}}
</ol>
{{- else if .Code}}
<pre><code>{{.Code}}</code></pre>
{{- end}}
{{- end}}
{{- end}}
</body>
</html>
`))

// HTML renders d as one self-contained HTML page.
func (d *Doc) HTML() ([]byte, error) {
	var b bytes.Buffer
	if err := htmlPage.Execute(&b, d); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
