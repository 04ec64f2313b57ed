package status_test

import (
	"context"
	"testing"
	"time"

	"github.com/syncd/syncd/status"
	"github.com/syncd/syncd/syncdtest"
)

func TestPerMinute(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	now := time.Date(2026, 1, 15, 12, 30, 40, 0, time.UTC)
	ins := func(source, id string, received, applied time.Time) {
		t.Helper()
		if _, err := pool.Exec(context.Background(), `INSERT INTO webhook_events (source, event_id, event_type, received_at, applied_at, outcome) VALUES ($1, $2, 'user.created', $3, $4, 'applied')`, source, id, received, applied); err != nil {
			t.Fatal(err)
		}
	}
	m := func(min int) time.Time { return now.Truncate(time.Minute).Add(time.Duration(min) * time.Minute) }
	ins("workos", "a", m(-10), m(-10).Add(5*time.Second))
	ins("workos", "b", m(-10).Add(30*time.Second), m(-9)) // applied a minute later
	ins("workos", "c", m(0), m(0).Add(time.Second))
	ins("workos", "old", m(-120), m(-3))  // replayed: applied now, received long ago
	ins("workos", "gone", m(-90), m(-89)) // before the hour
	ins("stripe", "s", m(-10), m(-10))    // another source

	got, err := status.PerMinute(context.Background(), pool, "workos", now, 60)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 60 || !got[0].At.Equal(m(-59)) || !got[59].At.Equal(m(0)) {
		t.Fatalf("minutes %v .. %v (%d)", got[0].At, got[len(got)-1].At, len(got))
	}
	want := map[time.Time][2]int64{m(-10): {2, 1}, m(-9): {0, 1}, m(-3): {0, 1}, m(0): {1, 1}}
	for _, g := range got {
		w := want[g.At]
		if g.Received != w[0] || g.Applied != w[1] {
			t.Errorf("%s: received %d applied %d, want %d %d", g.At.Format("15:04"), g.Received, g.Applied, w[0], w[1])
		}
	}
}
