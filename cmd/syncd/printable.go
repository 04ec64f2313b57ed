package main

import (
	"encoding/json"
	"io"

	"github.com/syncd/syncd/stream"
)

// Event data reaches the operator's terminal in dlq, replay, backfill and
// status output; an id or header holding ESC or BEL would otherwise clear
// the screen or retitle the window. Human-readable output passes it
// through printable (one line) or printableLines (text of several lines);
// --json output stays exact.

// printable escapes control characters and invalid UTF-8 (stream.Escape).
func printable(s string) string { return stream.Escape(s) }

// printableLines escapes s keeping its line breaks and tabs (an error of
// several lines, an indented payload).
func printableLines(s string) string { return stream.EscapeLines(s) }

// writeJSON is the --json output: v exact, indented for the reader.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
