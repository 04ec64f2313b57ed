package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progressLine redraws one status line on a terminal, at most ten times a
// second; elsewhere (a pipe, a log file) it prints nothing.
type progressLine struct {
	mu   sync.Mutex
	w    io.Writer
	on   bool
	last time.Time
	drew bool
}

func newProgressLine(w io.Writer, disabled bool) *progressLine {
	return &progressLine{w: w, on: !disabled && isTerminal(w)}
}

func (p *progressLine) set(text func() string) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	fmt.Fprintf(p.w, "\r\033[K%s", text())
	p.drew = true
}

// done ends the line so what follows starts on a clean one.
func (p *progressLine) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drew {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

func barOf(done, total, width int) string {
	if total <= 0 {
		total = 1
	}
	n := min(width, done*width/total)
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// count adapts the line to a done/total callback.
func (p *progressLine) count(label string) func(done, total int) {
	return func(done, total int) {
		p.set(func() string { return fmt.Sprintf("%s %s %d/%d", label, barOf(done, total, 30), done, total) })
	}
}
