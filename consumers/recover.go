package consumers

import (
	"errors"
	"fmt"
	"path"
	"runtime/debug"
	"strings"
)

// ErrPanic marks a panic recovered in the apply path. Whatever the panic
// carried, it is the event's permanent failure: retried MaxAttempts times,
// then dead-lettered, and never the end of the process.
var ErrPanic = errors.New("panic")

// panicError is a recovered panic with the stack it unwound. It unwraps
// to ErrPanic only, not to the panic's value: a panic(context.Canceled)
// must not pass for a transient failure and be retried forever.
type panicError struct {
	value any
	stack string
}

func (e *panicError) Error() string {
	return fmt.Sprintf("panic: %v [%s]", e.value, e.frames(8))
}

func (e *panicError) Unwrap() error { return ErrPanic }

// frames sums up the stack below the panic in at most n frames, innermost
// first, each "function (file:line)": enough to find the bug from a dead
// letter's reason, whose length is bounded. The log has the whole stack.
func (e *panicError) frames(n int) string {
	lines := strings.Split(e.stack, "\n")
	// Frames come in pairs, the function then "\tfile:line +0x…"; the
	// interesting ones start after runtime's panic frame.
	start := 0
	for i, l := range lines {
		if strings.HasPrefix(l, "panic(") {
			start = i + 2
			break
		}
	}
	var out []string
	for i := start; i+1 < len(lines) && len(out) < n; i += 2 {
		fn := lines[i]
		if j := strings.LastIndexByte(fn, '('); j > 0 {
			fn = fn[:j]
		}
		fn = path.Base(fn)
		loc := strings.TrimSpace(lines[i+1])
		if j := strings.LastIndex(loc, " +0x"); j > 0 {
			loc = loc[:j]
		}
		out = append(out, fn+" ("+path.Base(loc)+")")
	}
	return strings.Join(out, " < ")
}

// recovered turns the value of recover() into an error, or nil.
func recovered(v any) error {
	if v == nil {
		return nil
	}
	return &panicError{value: v, stack: string(debug.Stack())}
}

// protect runs f and turns a panic in it into a permanent error.
func protect(f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = recovered(v)
		}
	}()
	return f()
}

// panicStack is the full stack of a recovered panic in err, for the log.
func panicStack(err error) (string, bool) {
	var pe *panicError
	if errors.As(err, &pe) {
		return pe.stack, true
	}
	return "", false
}
