package main

import (
	"strings"
	"testing"
)

// A ledger retention below the replay window is refused at start, with the
// reason; so is a malformed one, naming the variable it came from. It
// takes days or a duration.
func TestServeRefusesLedgerRetentionBelowReplayWindow(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	for _, c := range []struct {
		env  string
		args []string
		want []string
	}{
		{"", []string{"serve", "--ledger-retention", "100h"}, []string{"--ledger-retention", "100h0m0s is shorter than the replay window 720h0m0s", "re-apply"}},
		{"", []string{"serve", "--replay-window", "1000h", "--ledger-retention", "840h"}, []string{"shorter than the replay window 1000h0m0s"}},
		{"", []string{"serve", "--ledger-retention", "-1h"}, []string{"--ledger-retention: -1h0m0s: want zero or a positive value (env SYNCD_LEDGER_RETENTION)"}},
		{"35 days", []string{"serve"}, []string{`SYNCD_LEDGER_RETENTION="35 days"`}},
		// Days, as --audit-retention takes them.
		{"", []string{"serve", "--ledger-retention", "4d"}, []string{"96h0m0s is shorter than the replay window"}},
		{"31d", []string{"serve"}, []string{"DATABASE_URL is not set"}},
	} {
		t.Setenv("SYNCD_LEDGER_RETENTION", c.env)
		code, _, stderr := runCmd(t, c.args...)
		for _, w := range c.want {
			if code != 2 || !strings.Contains(stderr, w) {
				t.Errorf("%v (env %q): exit %d, stderr %q; want 2 and %q", c.args, c.env, code, stderr, w)
			}
		}
	}
}
