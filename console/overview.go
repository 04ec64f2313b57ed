package console

import (
	"context"
	"html/template"
	"net/http"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/syncd/syncd/status"
	"github.com/syncd/syncd/stream"
)

const chartMinutes = 60

// health is one dependency's state.
type health struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// sourceOverview is one source's row of the overview.
type sourceOverview struct {
	Source      string           `json:"source"`
	PerMinute   []status.Minute  `json:"per_minute"`
	Received    int64            `json:"received_last_hour"`
	Applied     int64            `json:"applied_last_hour"`
	DeadLetters uint64           `json:"dead_letters"`
	Last        *status.Source   `json:"last_applied,omitempty"`
	LastAge     string           `json:"last_applied_age,omitempty"`
	Chart       template.HTML    `json:"-"`
	Outcomes    map[string]int64 `json:"outcomes"`
}

type overviewData struct {
	Now      time.Time        `json:"now"`
	Report   status.Report    `json:"report"`
	Error    string           `json:"error,omitempty"`
	Sources  []sourceOverview `json:"sources"`
	Paused   *bool            `json:"paused"`
	NATS     health           `json:"nats"`
	Postgres health           `json:"postgres"`
	// Window is how long WEBHOOKS keeps events: how far back replay
	// reaches.
	Window string `json:"window"`
}

func (c *Console) overview(ctx context.Context) overviewData {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	now := c.cfg.Now()
	d := overviewData{Now: now, Paused: c.paused()}
	if err := c.conn.Ready(ctx); err != nil {
		d.NATS.Error = err.Error()
	} else {
		d.NATS.OK = true
	}
	if err := c.pool.Ping(ctx); err != nil {
		d.Postgres.Error = err.Error()
	} else {
		d.Postgres.OK = true
	}
	var err error
	pool := c.pool
	if !d.Postgres.OK {
		pool = nil
	}
	if d.Report, err = status.Gather(ctx, c.conn.JS, pool, status.DefaultOutcomesWindow); err != nil {
		d.Error = err.Error()
	}
	if s, err := c.conn.JS.Stream(ctx, stream.Webhooks); err == nil {
		d.Window = s.CachedInfo().Config.MaxAge.String()
	}
	for _, src := range []string{stream.SourceWorkOS, stream.SourceStripe} {
		so := sourceOverview{Source: src, DeadLetters: d.Report.DeadLettersBySource[src], Outcomes: d.Report.Outcomes[src]}
		for i := range d.Report.Sources {
			if d.Report.Sources[i].Source == src {
				so.Last = &d.Report.Sources[i]
				so.LastAge = ago(so.Last.AppliedAt, now)
			}
		}
		if pool != nil {
			if so.PerMinute, err = status.PerMinute(ctx, pool, src, now, chartMinutes); err != nil && d.Error == "" {
				d.Error = err.Error()
			}
		}
		for _, m := range so.PerMinute {
			so.Received += m.Received
			so.Applied += m.Applied
		}
		so.Chart = chartSVG(src, so.PerMinute)
		d.Sources = append(d.Sources, so)
	}
	return d
}

// paused reads the consumer's paused gauge from this process's registry;
// nil when no consumer runs here.
func (c *Console) paused() *bool {
	if c.cfg.Gatherer == nil {
		return nil
	}
	mfs, err := c.cfg.Gatherer.Gather()
	if err != nil {
		return nil
	}
	for _, mf := range mfs {
		if mf.GetName() == "syncd_consumer_paused" && mf.GetType() == dto.MetricType_GAUGE && len(mf.GetMetric()) > 0 {
			p := mf.GetMetric()[0].GetGauge().GetValue() == 1
			return &p
		}
	}
	return nil
}

func (c *Console) overviewPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "overview.html", c.overview(r.Context()))
}

func (c *Console) overviewAPI(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, c.overview(r.Context()))
}
