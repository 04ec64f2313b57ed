package backoff_test

import (
	"context"
	"testing"
	"time"

	"github.com/syncd/syncd/backoff"
)

func TestDelayDoublesUpToTheCapWithJitter(t *testing.T) {
	lo, hi := 100*time.Millisecond, time.Second
	for n, want := range map[int]time.Duration{1: lo, 2: 2 * lo, 3: 4 * lo, 4: 8 * lo, 5: hi, 40: hi} {
		for range 100 {
			if d := backoff.Delay(n, lo, hi); d < want/2 || d > want {
				t.Fatalf("Delay(%d) = %s, want within [%s, %s]", n, d, want/2, want)
			}
		}
	}
	if d := backoff.Jitter(0); d != 0 {
		t.Fatalf("Jitter(0) = %s", d)
	}
}

func TestSleepEndsWithItsContext(t *testing.T) {
	if !backoff.Sleep(context.Background(), time.Millisecond) {
		t.Fatal("Sleep of 1ms reported its context done")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if backoff.Sleep(ctx, time.Hour) {
		t.Fatal("Sleep of an hour on a done context reported it slept")
	}
}

func TestWaitOfNothingOnlyAsksTheContext(t *testing.T) {
	if !backoff.Wait(context.Background(), 0) {
		t.Fatal("Wait(0) on a live context reported it done")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if backoff.Wait(ctx, 0) {
		t.Fatal("Wait(0) on a done context reported it waited")
	}
}
