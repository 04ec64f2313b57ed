package consumers

import "context"

// ApplyEventByEvent applies evs the per-event way — each event directly,
// under its own savepoint with its own links — which is the reference the
// batched path is held to.
func (a *Applier) ApplyEventByEvent(ctx context.Context, evs []Event) ([]Result, error) {
	res := make([]Result, len(evs))
	todo, err := a.unseen(ctx, evs, res)
	if err != nil || len(todo) == 0 {
		return res, err
	}
	return res, a.applyIsolated(ctx, evs, todo, res)
}

// SetHandler routes an event type to h on this consumer only: tests inject
// handlers (one that panics, one that blocks) without a test-only branch
// in the code they test. The route keeps what it declared, but applies
// through h event by event (not set-based); a new type only writes.
func (c *Consumer) SetHandler(source, typ string, h Handler) {
	r := Route{Source: source, Type: typ}
	if old := c.applier.routes[source][typ]; old != nil {
		r = *old
	}
	r.Handle, r.set = h, nil
	c.SetRoute(r)
}

// SetRoute adds or replaces a route on this consumer only.
func (c *Consumer) SetRoute(r Route) {
	if c.applier.routes[r.Source] == nil {
		c.applier.routes[r.Source] = map[string]*Route{}
	}
	c.applier.routes[r.Source][r.Type] = &r
}

// Handler is the handler c routes an event type to, or nil.
func (c *Consumer) Handler(source, typ string) Handler {
	if r := c.applier.routes[source][typ]; r != nil {
		return r.Handle
	}
	return nil
}

// AnalyzeStale runs one round of the planner statistics keeper.
func (c *Consumer) AnalyzeStale(ctx context.Context) ([]string, error) {
	return c.stats.analyzeStale(ctx)
}
