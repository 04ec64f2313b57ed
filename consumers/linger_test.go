package consumers_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/syncdtest"
)

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
	if n := metric(t, h.Service.Registry(), "syncd_apply_batch_duration_seconds", nil); n != 1 {
		t.Errorf("%v batches, want the three events in one", n)
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
