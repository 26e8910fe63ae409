package drill

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"time"
)

// ErrNoAgent: the guest does not answer on the guest agent channel.
var ErrNoAgent = errors.New("unit probes need qemu-guest-agent in the guest: nothing answered on its virtio-serial channel org.qemu.guest_agent.0 (install and enable qemu-guest-agent on the server)")

// agent is a connection to the QEMU guest agent (qemu-ga) through the
// chardev socket of its virtio-serial channel. Its protocol is QMP's
// commands without a greeting: one JSON object per line each way.
type agent struct {
	conn net.Conn
	rd   *bufio.Reader
}

// dialAgent connects to the socket and synchronises with guest-sync:
// qemu-ga answers with the number sent, after any stale replies left in
// the channel. A guest without qemu-ga never answers: ErrNoAgent.
func dialAgent(ctx context.Context, socket string, wait time.Duration) (*agent, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Errorf("the guest agent socket: %w", err)
	}
	a := &agent{conn: conn, rd: bufio.NewReader(conn)}
	id := rand.Int64N(1 << 40)
	var got int64
	if err := a.call(ctx, wait, "guest-sync", map[string]any{"id": id}, &got, func(r json.RawMessage) bool {
		var n int64
		return json.Unmarshal(r, &n) == nil && n == id
	}); err != nil {
		conn.Close()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, ErrNoAgent
		}
		return nil, err
	}
	return a, nil
}

func (a *agent) Close() error { return a.conn.Close() }

// agentReply is one line qemu-ga writes.
type agentReply struct {
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
}

// call sends one command and decodes its return into out. accept, when
// not nil, skips replies it refuses (stale ones before a guest-sync).
func (a *agent) call(ctx context.Context, wait time.Duration, cmd string, args any, out any, accept func(json.RawMessage) bool) error {
	deadline := time.Now().Add(wait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	a.conn.SetDeadline(deadline)
	req, err := json.Marshal(map[string]any{"execute": cmd, "arguments": args})
	if err != nil {
		return err
	}
	if _, err := a.conn.Write(append(req, '\n')); err != nil {
		return fmt.Errorf("guest agent %s: %w", cmd, err)
	}
	for {
		line, err := a.rd.ReadBytes('\n')
		if err != nil {
			return fmt.Errorf("guest agent %s: %w", cmd, err)
		}
		ret, err := parseAgentLine(cmd, line, accept)
		if err != nil {
			return err
		}
		if ret == nil {
			continue
		}
		return json.Unmarshal(ret, out)
	}
}

// execStatus is guest-exec-status's return.
type execStatus struct {
	Exited   bool   `json:"exited"`
	ExitCode int    `json:"exitcode"`
	Signal   int    `json:"signal"`
	OutData  string `json:"out-data"`
	ErrData  string `json:"err-data"`
}

// Exec runs path with args in the guest and returns its exit code and
// standard output.
func (a *agent) Exec(ctx context.Context, path string, args ...string) (int, string, error) {
	var started struct {
		PID int `json:"pid"`
	}
	if err := a.call(ctx, 10*time.Second, "guest-exec", map[string]any{"path": path, "arg": args, "capture-output": true}, &started, nil); err != nil {
		return 0, "", err
	}
	for {
		var st execStatus
		if err := a.call(ctx, 10*time.Second, "guest-exec-status", map[string]any{"pid": started.PID}, &st, nil); err != nil {
			return 0, "", err
		}
		if st.Exited {
			out, _ := base64.StdEncoding.DecodeString(st.OutData)
			code := st.ExitCode
			if st.Signal != 0 {
				code = 128 + st.Signal
			}
			return code, string(out), nil
		}
		select {
		case <-ctx.Done():
			return 0, "", ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// UnitActive asks systemd in the guest whether unit is active.
func (a *agent) UnitActive(ctx context.Context, unit string) error {
	code, out, err := a.Exec(ctx, "systemctl", "is-active", "--", unit)
	if err != nil {
		return err
	}
	state := strings.TrimSpace(out)
	if code != 0 || state != "active" {
		if state == "" {
			state = fmt.Sprintf("exit status %d", code)
		}
		return fmt.Errorf("unit %s is %s, not active", unit, state)
	}
	return nil
}

// parseAgentLine reads one line qemu-ga wrote in answer to cmd: the
// return to use, nil for a line to skip (noise, a stale reply accept
// refuses), or the error the agent returned.
func parseAgentLine(cmd string, line []byte, accept func(json.RawMessage) bool) (json.RawMessage, error) {
	// qemu-ga may send 0xff before a reply to resynchronise.
	line = []byte(strings.TrimLeft(string(line), "\xff \r\n"))
	if len(line) == 0 {
		return nil, nil
	}
	var r agentReply
	if err := json.Unmarshal(line, &r); err != nil {
		return nil, nil
	}
	if r.Error != nil {
		return nil, fmt.Errorf("guest agent %s: %s (%s)", cmd, r.Error.Desc, r.Error.Class)
	}
	if r.Return == nil || (accept != nil && !accept(r.Return)) {
		return nil, nil
	}
	return r.Return, nil
}
