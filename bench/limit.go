package main

import (
	"context"

	"github.com/syncd/syncd/consumers"
)

// benchLimit is filled in with the batched-SQL references.
func benchLimit(ctx context.Context, o options, evs []consumers.Event) (float64, string, error) {
	return 1, "not measured yet", nil
}
