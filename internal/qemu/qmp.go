package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"
)

// Client is a connection to the QMP socket of a running QEMU. Commands
// may be sent from several goroutines; each waits for its own reply.
// Events are delivered to subscribers (Subscribe).
type Client struct {
	conn net.Conn
	// Version is the QEMU version from the greeting.
	Version Version

	writeMu sync.Mutex // one command written at a time

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan message
	subs    map[*Subscription]struct{}
	err     error // set when the connection ends
	done    chan struct{}
}

// Version is QEMU's version as its greeting gives it.
type Version struct {
	Major int `json:"major"`
	Minor int `json:"minor"`
	Micro int `json:"micro"`
}

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Micro) }

// Error is an error QEMU returned for a command.
type Error struct {
	Command string `json:"-"`
	Class   string `json:"class"`
	Desc    string `json:"desc"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("QEMU refused %s: %s (%s)", e.Command, e.Desc, e.Class)
}

// Event is an asynchronous event from QEMU, such as BLOCK_JOB_READY.
type Event struct {
	Name string
	Data json.RawMessage
	Time time.Time
}

// message is any one JSON object QEMU sends.
type message struct {
	Greeting *struct {
		Version struct {
			QEMU Version `json:"qemu"`
		} `json:"version"`
	} `json:"QMP,omitempty"`
	Return    json.RawMessage `json:"return,omitempty"`
	Error     *Error          `json:"error,omitempty"`
	ID        *uint64         `json:"id,omitempty"`
	Event     string          `json:"event,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
	Timestamp *struct {
		Seconds      int64 `json:"seconds"`
		Microseconds int64 `json:"microseconds"`
	} `json:"timestamp,omitempty"`
}

// parseMessage decodes one QMP message and checks that it is one of the
// shapes the protocol has: a greeting, a reply (return or error, with
// the id rewind sent) or an event.
func parseMessage(b []byte) (message, error) {
	var m message
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("QMP message is not JSON: %w", err)
	}
	return m, m.validate()
}

func (m *message) validate() error {
	kinds := 0
	if m.Greeting != nil {
		kinds++
	}
	if m.Return != nil || m.Error != nil {
		if m.Return != nil && m.Error != nil {
			return errors.New("QMP reply has both return and error")
		}
		kinds++
	}
	if m.Event != "" {
		kinds++
	}
	if kinds != 1 {
		return errors.New("QMP message is neither a greeting, a reply nor an event")
	}
	return nil
}

// Dial connects to the QMP unix socket, reads QEMU's greeting and leaves
// capability negotiation, so that commands can be sent.
func Dial(ctx context.Context, socket string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Errorf("connect to QEMU's QMP socket %s (is QEMU running with -qmp unix:%s,server,wait=off?): %w", socket, socket, err)
	}
	c := &Client{conn: conn, pending: map[uint64]chan message{}, subs: map[*Subscription]struct{}{}, done: make(chan struct{})}
	dec := json.NewDecoder(conn)
	greeting := make(chan error, 1)
	go func() {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			greeting <- fmt.Errorf("read QMP greeting from %s: %w", socket, err)
			return
		}
		m, err := parseMessage(raw)
		if err == nil && m.Greeting == nil {
			err = errors.New("first message is not a greeting")
		}
		if err != nil {
			greeting <- fmt.Errorf("QMP socket %s: %w", socket, err)
			return
		}
		c.Version = m.Greeting.Version.QEMU
		greeting <- nil
	}()
	select {
	case err = <-greeting:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	go c.read(dec)
	if err := c.Execute(ctx, "qmp_capabilities", nil, nil); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// read dispatches every message until the connection ends.
func (c *Client) read(dec *json.Decoder) {
	var err error
	for {
		var raw json.RawMessage
		if err = dec.Decode(&raw); err != nil {
			break
		}
		m, perr := parseMessage(raw)
		if perr != nil {
			err = perr
			break
		}
		if m.Event != "" {
			c.deliver(m)
			continue
		}
		if m.ID == nil {
			continue // a reply to no command of ours
		}
		c.mu.Lock()
		ch := c.pending[*m.ID]
		delete(c.pending, *m.ID)
		c.mu.Unlock()
		if ch != nil {
			ch <- m
		}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) {
		err = errors.New("QMP connection closed (QEMU exited?)")
	} else {
		err = fmt.Errorf("QMP connection: %w", err)
	}
	c.mu.Lock()
	c.err = err
	for id, ch := range c.pending {
		close(ch)
		delete(c.pending, id)
	}
	for s := range c.subs {
		s.close()
		delete(c.subs, s)
	}
	c.mu.Unlock()
	close(c.done)
}

// Execute sends command with args (nil for none, else anything that
// encodes to a JSON object) and waits for QEMU's reply; a successful
// reply's return value is decoded into result unless it is nil. QEMU's
// refusal is an *Error.
func (c *Client) Execute(ctx context.Context, command string, args any, result any) error {
	ch := make(chan message, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return fmt.Errorf("%s: %w", command, err)
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = ch
	c.mu.Unlock()
	req := struct {
		Execute   string `json:"execute"`
		Arguments any    `json:"arguments,omitempty"`
		ID        uint64 `json:"id"`
	}{command, args, id}
	b, err := json.Marshal(req)
	if err != nil {
		c.forget(id)
		return fmt.Errorf("encode QMP command %s: %w", command, err)
	}
	c.writeMu.Lock()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.conn.SetWriteDeadline(dl)
	}
	_, err = c.conn.Write(append(b, '\n'))
	_ = c.conn.SetWriteDeadline(time.Time{})
	c.writeMu.Unlock()
	if err != nil {
		c.forget(id)
		return fmt.Errorf("send QMP command %s: %w", command, err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return fmt.Errorf("%s: %w", command, c.closedErr())
		}
		if m.Error != nil {
			e := *m.Error
			e.Command = command
			return &e
		}
		if result != nil {
			if err := json.Unmarshal(m.Return, result); err != nil {
				return fmt.Errorf("decode QEMU's reply to %s: %w", command, err)
			}
		}
		return nil
	case <-ctx.Done():
		c.forget(id)
		return fmt.Errorf("%s: %w", command, ctx.Err())
	}
}

func (c *Client) forget(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

func (c *Client) closedErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	return errors.New("QMP connection closed")
}

// HumanMonitor runs a human monitor (HMP) command line and returns its
// output, for the few things QMP has no command for (qemu-io).
func (c *Client) HumanMonitor(ctx context.Context, cmdline string) (string, error) {
	var out string
	err := c.Execute(ctx, "human-monitor-command", map[string]string{"command-line": cmdline}, &out)
	return out, err
}

// Done is closed when the connection has ended; Err then says why.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is why the connection ended, or nil while it is open.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close ends the connection. QEMU keeps running.
func (c *Client) Close() error {
	err := c.conn.Close()
	<-c.done
	return err
}
