package ui

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Counter is a progress counter of files and bytes, safe for concurrent
// use.
type Counter struct {
	Files, Bytes           atomic.Int64
	TotalFiles, TotalBytes atomic.Int64
	// Scanning is true while totals are still growing.
	Scanning atomic.Bool
}

// Progress draws a bar for a Counter on a terminal, or emits JSON status
// lines, until Stop is called. With neither (a script), it does nothing.
type Progress struct {
	u     *UI
	c     *Counter
	verb  string
	start time.Time
	stop  chan struct{}
	wg    sync.WaitGroup
}

// StartProgress begins reporting c. verb names the work ("backup").
func (u *UI) StartProgress(verb string, c *Counter) *Progress {
	p := &Progress{u: u, c: c, verb: verb, start: time.Now(), stop: make(chan struct{})}
	if u.Quiet || (!u.TTY && !u.JSON) {
		return p
	}
	interval := 250 * time.Millisecond
	if u.JSON {
		interval = time.Second
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.draw()
			}
		}
	}()
	return p
}

// Status is the JSON status event (docs/JSON.md).
type Status struct {
	MessageType    string  `json:"message_type"`
	Action         string  `json:"action"`
	SecondsElapsed float64 `json:"seconds_elapsed"`
	PercentDone    float64 `json:"percent_done"`
	FilesDone      int64   `json:"files_done"`
	TotalFiles     int64   `json:"total_files"`
	BytesDone      int64   `json:"bytes_done"`
	TotalBytes     int64   `json:"total_bytes"`
	Scanning       bool    `json:"scanning"`
}

func (p *Progress) status() Status {
	s := Status{
		MessageType: "status", Action: p.verb,
		SecondsElapsed: time.Since(p.start).Seconds(),
		FilesDone:      p.c.Files.Load(), TotalFiles: p.c.TotalFiles.Load(),
		BytesDone: p.c.Bytes.Load(), TotalBytes: p.c.TotalBytes.Load(),
		Scanning: p.c.Scanning.Load(),
	}
	if s.TotalBytes > 0 {
		s.PercentDone = float64(s.BytesDone) / float64(s.TotalBytes)
	}
	return s
}

func (p *Progress) draw() {
	s := p.status()
	if p.u.JSON {
		p.u.JSONLine(s)
		return
	}
	el := time.Since(p.start)
	rate := float64(s.BytesDone) / max(el.Seconds(), 0.001)
	eta := "?"
	if !s.Scanning && rate > 0 && s.TotalBytes >= s.BytesDone {
		eta = fmtDuration(time.Duration(float64(s.TotalBytes-s.BytesDone) / rate * float64(time.Second)))
	}
	width := 20
	filled := int(s.PercentDone * float64(width))
	bar := strings.Repeat("=", min(filled, width)) + strings.Repeat(" ", width-min(filled, width))
	line := fmt.Sprintf("\r[%s] %s [%s] %3.0f%%  %d/%s  %s/%s  %s/s  ETA %s ",
		fmtDuration(el), p.verb, bar, s.PercentDone*100, s.FilesDone, Count(int64(s.TotalFiles), "file", "files"),
		Bytes(s.BytesDone), Bytes(s.TotalBytes), Bytes(int64(rate)), eta)
	p.u.mu.Lock()
	fmt.Fprint(p.u.Err, line)
	p.u.mu.Unlock()
}

// Stop ends the reporting and clears the bar.
func (p *Progress) Stop() {
	close(p.stop)
	p.wg.Wait()
	if p.u.TTY && !p.u.JSON && !p.u.Quiet {
		p.u.mu.Lock()
		fmt.Fprint(p.u.Err, "\r\033[K")
		p.u.mu.Unlock()
	}
}

func fmtDuration(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, s)
	}
	return fmt.Sprintf("%d:%02d", m, s)
}
