package console

import (
	"context"
	"errors"
	"testing"
	"time"
)

// One job at a time per kind and window, as the CLI's backfill lock
// enforces; another window, or another kind, runs beside it.
func TestJobsOneAtATimePerWindow(t *testing.T) {
	t.Parallel()
	j := newJobs()
	release := make(chan struct{})
	block := func(ctx context.Context, update func(func(*job))) (any, error) {
		update(func(jb *job) { jb.Progress.Done = 1 })
		select {
		case <-release:
			return "ok", nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	first, err := j.run("replay", "webhooks.workos.>", nil, block)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.run("replay", "webhooks.workos.>", nil, block); !errors.Is(err, errJobRunning) {
		t.Fatalf("second replay of the same window: %v, want errJobRunning", err)
	}
	other, err := j.run("replay", "webhooks.stripe.>", nil, block)
	if err != nil {
		t.Fatalf("replay of another window: %v", err)
	}
	if _, err := j.run("backfill", "webhooks.workos.>", nil, block); err != nil {
		t.Fatalf("another kind: %v", err)
	}
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for {
		a, _ := j.get(first.ID)
		b, _ := j.get(other.ID)
		if a.State == jobDone && b.State == jobDone {
			if a.Result != "ok" || a.Finished == nil || a.Progress.Done != 1 {
				t.Errorf("finished job %+v", a)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("jobs did not finish: %+v %+v", a, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := j.run("replay", "webhooks.workos.>", nil, block); err != nil {
		t.Fatalf("the window is free again once the job ended: %v", err)
	}
	// Stopping the console stops what runs, marked as such.
	j.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	j.wait(ctx)
	for _, jb := range j.all() {
		if jb.State == jobRunning {
			t.Errorf("job still running after stop: %+v", jb)
		}
	}
	if _, err := j.run("replay", "x", nil, block); err == nil {
		t.Errorf("a job started on a stopping console")
	}
}

func TestPrintable(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"evt_1":                  "evt_1",
		"a\x1b[31mb":             `a\x1b[31mb`,
		"line\nnext\ttab":        "line\nnext\ttab",
		"nul\x00":                `nul\x00`,
		"bidi\u202eevil":         `bidi\u202eevil`,
		"bad utf8 \xff":          `bad utf8 \xff`,
		"real \uFFFD stays":      "real \uFFFD stays",
		"del \x7f and c1 \u0085": `del \x7f and c1 \u0085`,
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %q, want %q", in, got, want)
		}
	}
}
