package main

import (
	"strings"
	"testing"
	"time"

	"github.com/syncd/syncd/syncdtest"
)

func TestReplayBadInput(t *testing.T) {
	clearProviderEnv(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"replay"}, "give the start of the window"},
		{[]string{"replay", "--since", "1h", "--from-seq", "3"}, "give one"},
		{[]string{"replay", "--from-seq", "3", "--until", "1h", "--to-seq", "9"}, "--until and --to-seq"},
		{[]string{"replay", "--from-seq", "0"}, "--from-seq 0"},
		{[]string{"replay", "--from-seq", "9", "--to-seq", "3"}, "--to-seq 3 is before --from-seq 9"},
		{[]string{"replay", "--from-seq", "x"}, `--from-seq: "x": want a whole number`},
		{[]string{"replay", "--since", "last tuesday"}, `--since: "last tuesday"`},
		{[]string{"replay", "--since", "42"}, "--from-seq"},
		{[]string{"replay", "--since", "2h", "--until", "3h"}, "is not after --since"},
		{[]string{"replay", "--from-seq", "1", "--source", "github"}, `--source: unknown source "github": want workos or stripe`},
		{[]string{"replay", "--from-seq", "1", "--type", "customer..created"}, "--type"},
		{[]string{"replay", "--from-seq", "1", "--type", "dsync.>.user"}, "'>' must be the last token"},
		{[]string{"replay", "--from-seq", "1", "--batch-size", "0"}, "--batch-size: 0: want a positive value"},
		{[]string{"replay", "--from-seq", "1", "stray"}, `unexpected argument "stray"`},
		{[]string{"replay", "--from-seq", "1"}, "DATABASE_URL is not set"},
	} {
		code, _, stderr := syncd(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", c.args, code, stderr, c.want)
		}
	}
}

func TestReplayEmptyWindowIsBadInput(t *testing.T) {
	clearProviderEnv(t)
	db := syncdtest.DatabaseURL(t)
	code, _, stderr := syncd(t, "replay", "--from-seq", "1", "--database-url", db, "--nats-url", natsURL(t))
	if code != 2 || !strings.Contains(stderr, "no events in the window") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"":                          {},
		"90m":                       now.Add(-90 * time.Minute),
		"7d":                        now.Add(-7 * 24 * time.Hour),
		"1d12h":                     now.Add(-36 * time.Hour),
		"2026-02-01":                time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC),
		"2026-02-01T10:00:00+02:00": time.Date(2026, 2, 1, 8, 0, 0, 0, time.UTC),
		"2026-02-01 10:00:00.5":     time.Date(2026, 2, 1, 10, 0, 0, 5e8, time.UTC),
	} {
		got, err := parseWhen("since", in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseWhen(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"soon", "0s", "-1h", "7days", "1d-", "2027-01-01", "12"} {
		if got, err := parseWhen("since", in, now); err == nil {
			t.Errorf("parseWhen(%q) = %s, want an error", in, got)
		}
	}
}
