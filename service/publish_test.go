package service_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/syncd/syncd/ingest"
	"github.com/syncd/syncd/stream"
	"github.com/syncd/syncd/syncdtest"
)

func counter(t *testing.T, h *syncdtest.Harness, name string) float64 {
	t.Helper()
	mfs, err := h.Service.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// Concurrent webhooks on the embedded server share fsyncs (group commit):
// each is answered 200 only once stored, each is stored once, with the
// headers every event carries, and each is applied.
func TestConcurrentWebhooksAreGroupCommitted(t *testing.T) {
	h := syncdtest.NewHarness(t)
	const n = 300
	client := &http.Client{Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	codes := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := fmt.Sprintf("user_g%d", i)
			body := syncdtest.WorkOSEvent("e"+u, "user.created", map[string]any{
				"id": u, "email": u + "@x.test", "created_at": "2026-01-01T00:00:00.000Z", "updated_at": "2026-01-01T00:00:01.000Z",
			})
			req, _ := http.NewRequest(http.MethodPost, h.URL+"/webhooks/workos", bytes.NewReader(body))
			req.Header.Set("WorkOS-Signature", ingest.SignWorkOS(syncdtest.WorkOSSecret, body, time.Now()))
			resp, err := client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			codes[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusOK {
			t.Fatalf("webhook %d: %d", i, c)
		}
	}
	if b := counter(t, h, "syncd_ingest_group_batched_total"); b == 0 {
		t.Errorf("no webhook shared a batch; %v batches", counter(t, h, "syncd_ingest_group_batches_total"))
	}
	ctx := context.Background()
	s, err := h.NATS.JS.Stream(ctx, stream.Webhooks)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != n {
		t.Fatalf("stream holds %d, want %d", info.State.Msgs, n)
	}
	h.StartConsumer()
	h.WaitSettled()
	var users int
	if err := h.Pool.QueryRow(ctx, "SELECT count(*) FROM users").Scan(&users); err != nil {
		t.Fatal(err)
	}
	if users != n {
		t.Errorf("%d users applied, want %d", users, n)
	}
}
