package plan

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Probe kinds of a drill (docs/RECOVERY.md, "Drills").
const (
	ProbeMarker = "marker" // a line on the serial console
	ProbeTCP    = "tcp"    // a TCP port accepts connections
	ProbeHTTP   = "http"   // an HTTP GET answers as expected
	ProbeUnit   = "unit"   // a systemd unit is active (through qemu-guest-agent)
)

// ProbeKinds lists the probe kinds, in the order docs/PLAN.md gives them.
var ProbeKinds = []string{ProbeMarker, ProbeTCP, ProbeHTTP, ProbeUnit}

// Probe is one check a drill runs against the booted copy of a server.
// It is written as one line, the kind first, split into words as a
// command is (quotes keep blanks):
//
//	marker TEXT                  TEXT appears on the serial console
//	tcp PORT                     the guest's PORT accepts a connection
//	http PATH [PORT] [EXPECT]    GET PATH on PORT (80) answers 2xx, or the
//	                             status EXPECT (3 digits), or a body
//	                             holding EXPECT; a number right after
//	                             PATH is the port
//	unit NAME                    systemctl is-active NAME, through the
//	                             QEMU guest agent
type Probe struct {
	Kind   string
	Text   string // marker: the text; http: EXPECT; unit: the unit
	Port   int    // tcp, http
	Path   string // http
	Status int    // http: the status EXPECT names (0: any 2xx, or Text in the body)
}

// maxProbeLen bounds a probe's line.
const maxProbeLen = 4096

// ParseProbe reads one probe line.
func ParseProbe(s string) (Probe, error) {
	if len(s) > maxProbeLen {
		return Probe{}, fmt.Errorf("probe is longer than %d characters", maxProbeLen)
	}
	w, err := SplitCommand(s)
	if err != nil {
		return Probe{}, fmt.Errorf("probe %q: %v", s, err)
	}
	if len(w) == 0 {
		return Probe{}, errors.New("empty probe: write one of marker TEXT, tcp PORT, http PATH [PORT] [EXPECT], unit NAME")
	}
	p := Probe{Kind: w[0]}
	args := w[1:]
	bad := func(format string, a ...any) (Probe, error) {
		return Probe{}, fmt.Errorf("probe %q: %s", s, fmt.Sprintf(format, a...))
	}
	switch p.Kind {
	case ProbeMarker:
		if len(args) == 0 || strings.Join(args, " ") == "" {
			return bad("marker needs the text to wait for on the console")
		}
		p.Text = strings.Join(args, " ")
	case ProbeTCP:
		if len(args) != 1 {
			return bad("write tcp PORT")
		}
		if p.Port, err = probePort(args[0]); err != nil {
			return bad("%v", err)
		}
	case ProbeHTTP:
		if len(args) == 0 || len(args) > 3 {
			return bad("write http PATH [PORT] [EXPECT]")
		}
		p.Path, p.Port = args[0], 80
		if !strings.HasPrefix(p.Path, "/") {
			return bad("the path %q must start with /", p.Path)
		}
		rest := args[1:]
		if len(rest) > 0 {
			if port, err := probePort(rest[0]); err == nil {
				p.Port, rest = port, rest[1:]
			} else if len(rest) == 2 {
				return bad("%v", err)
			}
		}
		if len(rest) == 1 {
			p.Text = rest[0]
			if len(p.Text) == 3 && p.Text[0] >= '1' && p.Text[0] <= '5' {
				if n, err := strconv.Atoi(p.Text); err == nil {
					p.Status, p.Text = n, ""
				}
			}
			if p.Status == 0 && p.Text == "" {
				return bad("the expected body text is empty")
			}
		}
	case ProbeUnit:
		if len(args) != 1 || args[0] == "" || strings.HasPrefix(args[0], "-") {
			return bad("write unit NAME (a systemd unit, nginx.service)")
		}
		p.Text = args[0]
	default:
		return bad("unknown kind %q: one of %s%s", p.Kind, strings.Join(ProbeKinds, ", "), suggest(p.Kind, ProbeKinds))
	}
	return p, nil
}

func probePort(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%q is not a port (1-65535)", s)
	}
	return n, nil
}

// String writes p as a line ParseProbe reads back.
func (p Probe) String() string {
	w := Command{p.Kind}
	switch p.Kind {
	case ProbeMarker:
		w = append(w, p.Text)
	case ProbeTCP:
		w = append(w, strconv.Itoa(p.Port))
	case ProbeHTTP:
		w = append(w, p.Path, strconv.Itoa(p.Port))
		if p.Status != 0 {
			w = append(w, strconv.Itoa(p.Status))
		} else if p.Text != "" {
			w = append(w, p.Text)
		}
	case ProbeUnit:
		w = append(w, p.Text)
	}
	return w.String()
}
