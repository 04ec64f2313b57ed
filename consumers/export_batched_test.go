package consumers

import "context"

// ApplyBatchedOnly applies evs the batched way alone (stages of set-based,
// queued and direct events in one transaction), without the per-event
// fallback: failed reports that the batch would have been redone event by
// event, and nothing is committed then. Tests use it to tell that a batch
// was applied set-based, not isolated.
func (a *Applier) ApplyBatchedOnly(ctx context.Context, evs []Event) (res []Result, failed bool, err error) {
	res = make([]Result, len(evs))
	todo, err := a.unseen(ctx, evs, res)
	if err != nil || len(todo) == 0 {
		return res, false, err
	}
	failed, err = a.applyBatched(ctx, evs, todo, res)
	return res, failed, err
}
