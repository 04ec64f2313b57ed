package console

import (
	"fmt"
	"html/template"
	"strings"

	"github.com/syncd/syncd/status"
)

// Chart geometry, in SVG user units.
const (
	chartW, chartH  = 600, 140
	padL, padR      = 40, 8
	padT, padB      = 10, 22
	plotW, plotH    = chartW - padL - padR, chartH - padT - padB
	chartGridLevels = 2
)

// chartSVG draws events received and applied per minute as two lines,
// server-side, so the overview needs no script. Only numbers and fixed
// words go into the markup.
func chartSVG(source string, ms []status.Minute) template.HTML {
	var peak int64 = 1
	for _, m := range ms {
		peak = max(peak, m.Received, m.Applied)
	}
	x := func(i int) float64 {
		if len(ms) < 2 {
			return padL
		}
		return padL + float64(i)*plotW/float64(len(ms)-1)
	}
	y := func(v int64) float64 { return padT + plotH - float64(v)*plotH/float64(peak) }
	line := func(get func(status.Minute) int64) string {
		pts := make([]string, len(ms))
		for i, m := range ms {
			pts[i] = fmt.Sprintf("%.1f,%.1f", x(i), y(get(m)))
		}
		return strings.Join(pts, " ")
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s events per minute, last hour">`, chartW, chartH, template.HTMLEscapeString(source))
	for i := 0; i <= chartGridLevels; i++ {
		v := peak * int64(i) / chartGridLevels
		fmt.Fprintf(&b, `<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/>`, padL, padL+plotW, y(v), y(v))
		fmt.Fprintf(&b, `<text class="axis" x="%d" y="%.1f" text-anchor="end">%d</text>`, padL-4, y(v)+4, v)
	}
	fmt.Fprintf(&b, `<text class="axis" x="%d" y="%d">-60m</text>`, padL, chartH-4)
	fmt.Fprintf(&b, `<text class="axis" x="%d" y="%d" text-anchor="middle">-30m</text>`, padL+plotW/2, chartH-4)
	fmt.Fprintf(&b, `<text class="axis" x="%d" y="%d" text-anchor="end">now</text>`, padL+plotW, chartH-4)
	if len(ms) > 0 {
		fmt.Fprintf(&b, `<polyline class="received" points="%s"/>`, line(func(m status.Minute) int64 { return m.Received }))
		fmt.Fprintf(&b, `<polyline class="applied" points="%s"/>`, line(func(m status.Minute) int64 { return m.Applied }))
	} else {
		fmt.Fprintf(&b, `<text class="axis" x="%d" y="%d" text-anchor="middle">no ledger data (Postgres unreachable)</text>`, padL+plotW/2, padT+plotH/2)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
