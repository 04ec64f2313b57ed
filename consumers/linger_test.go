package consumers_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/syncdtest"
)

// batches is how many batches the consumer has applied.
func batches(t *testing.T, h *syncdtest.Harness) uint64 {
	t.Helper()
	mfs, err := h.Service.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "syncd_apply_batch_duration_seconds" {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}

func users(t *testing.T, h *syncdtest.Harness) int {
	t.Helper()
	var n int
	if err := h.Pool.QueryRow(context.Background(), "SELECT count(*) FROM users").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Events that trickle in within Linger of the first are applied in its
// batch, one transaction instead of one each.
func TestLingerFillsTheBatch(t *testing.T) {
	t.Parallel()
	h := syncdtest.NewHarness(t)
	h.ConsumerConfig.Linger = 2 * time.Second
	h.StartConsumer()
	for i := range 3 {
		u := fmt.Sprintf("user_linger%d", i)
		h.PostWorkOS(syncdtest.WorkOSEvent("e"+u, "user.created", userData(u, u+"@x.test", 1)))
	}
	syncdtest.Eventually(t, 30*time.Second, "the three users applied", func() bool { return users(t, h) == 3 })
	if n := batches(t, h); n != 1 {
		t.Errorf("%d batches, want the three events in one", n)
	}
}

// A batch that is full does not wait for Linger.
func TestLingerDoesNotHoldAFullBatch(t *testing.T) {
	t.Parallel()
	h := syncdtest.NewHarness(t)
	h.ConsumerConfig.Linger = consumers.LingerMax
	h.ConsumerConfig.BatchSize = 2
	for i := range 2 {
		u := fmt.Sprintf("user_full%d", i)
		h.PostWorkOS(syncdtest.WorkOSEvent("e"+u, "user.created", userData(u, u+"@x.test", 1)))
	}
	h.StartConsumer()
	syncdtest.Eventually(t, 30*time.Second, "the full batch applied without waiting", func() bool { return users(t, h) == 2 })
}
