package main

import (
	"encoding/json"
	"io"
	"strings"

	"github.com/syncd/syncd/stream"
)

// Event data reaches the operator's terminal in dlq, replay, backfill and
// status output; an id or header holding ESC or BEL would otherwise clear
// the screen or retitle the window. Human-readable output passes it
// through printable (one line) or printableLines (text of several lines);
// --json output stays exact.

// printable escapes control characters and invalid UTF-8 (stream.Escape).
func printable(s string) string { return stream.Escape(s) }

// printableLines escapes each line of s, keeping its line breaks and
// tabs (an error of several lines, an indented payload).
func printableLines(s string) string {
	if !strings.ContainsAny(s, "\n\t") {
		return printable(s)
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		cells := strings.Split(l, "\t")
		for j, c := range cells {
			cells[j] = printable(c)
		}
		lines[i] = strings.Join(cells, "\t")
	}
	return strings.Join(lines, "\n")
}

// writeJSON is the --json output: v exact, indented for the reader.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
