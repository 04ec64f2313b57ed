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
