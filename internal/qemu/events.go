package qemu

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Subscription receives the events of the names it was made for, from
// the moment Subscribe returned: subscribe before sending the command
// whose event you wait for. Events are queued without bound until read,
// so a slow reader never stalls the connection.
type Subscription struct {
	names []string
	mu    sync.Mutex
	queue []Event
	wake  chan struct{}
	ended bool
	c     *Client
}

// Subscribe starts receiving events named in names (all events when
// names is empty). Close the subscription when done.
func (c *Client) Subscribe(names ...string) *Subscription {
	s := &Subscription{names: names, wake: make(chan struct{}, 1), c: c}
	c.mu.Lock()
	if c.err != nil {
		s.ended = true
	} else {
		c.subs[s] = struct{}{}
	}
	c.mu.Unlock()
	return s
}

func (c *Client) deliver(m message) {
	e := Event{Name: m.Event, Data: m.Data}
	if m.Timestamp != nil {
		e.Time = time.Unix(m.Timestamp.Seconds, m.Timestamp.Microseconds*1000)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for s := range c.subs {
		if len(s.names) == 0 || slices.Contains(s.names, e.Name) {
			s.push(e)
		}
	}
}

func (s *Subscription) push(e Event) {
	s.mu.Lock()
	s.queue = append(s.queue, e)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Subscription) close() {
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Next waits for the next event that match accepts (any, when match is
// nil); events it does not accept are dropped. It fails when ctx ends or
// the connection closes.
func (s *Subscription) Next(ctx context.Context, match func(Event) bool) (Event, error) {
	for {
		s.mu.Lock()
		for len(s.queue) > 0 {
			e := s.queue[0]
			s.queue = s.queue[1:]
			if match == nil || match(e) {
				s.mu.Unlock()
				return e, nil
			}
		}
		ended := s.ended
		s.mu.Unlock()
		if ended {
			return Event{}, fmt.Errorf("waiting for QEMU event %v: %w", s.names, s.c.closedErr())
		}
		select {
		case <-s.wake:
		case <-ctx.Done():
			return Event{}, fmt.Errorf("waiting for QEMU event %v: %w", s.names, ctx.Err())
		}
	}
}

// Close stops the subscription.
func (s *Subscription) Close() {
	s.c.mu.Lock()
	delete(s.c.subs, s)
	s.c.mu.Unlock()
	s.close()
}
