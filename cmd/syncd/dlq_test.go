package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncd/syncd/deadletter"
	"github.com/syncd/syncd/stream"
)

// Bad input is rejected with a message naming it and exit code 2, before
// anything is reached: the NATS URL points at a closed port, so a command
// that tried to connect would fail with 1 instead.
func TestDLQBadArgs(t *testing.T) {
	if code, _, stderr := runCmd(t, "dlq"); code != 2 || !strings.Contains(stderr, "want a subcommand") {
		t.Errorf("dlq: exit %d %q", code, stderr)
	}
	nowhere := []string{"--nats-url", "nats://127.0.0.1:1", "--data-dir", t.TempDir()}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"dlq", "--since", "yesterday", "list"}, `--since: "yesterday"`},
		{[]string{"dlq", "frob"}, `unknown subcommand "frob"`},
		{[]string{"dlq", "list", "--since", "yesterday"}, `--since: "yesterday"`},
		{[]string{"dlq", "list", "--until", "2026-13-45"}, `--until: "2026-13-45"`},
		{[]string{"dlq", "list", "--since", "-5h"}, "must be positive"},
		{[]string{"dlq", "list", "--since", "1h", "--until", "2h"}, "is before since"},
		{[]string{"dlq", "list", "--source", "work*"}, "no spaces or wildcards"},
		{[]string{"dlq", "list", "12"}, `unexpected argument "12"`},
		{[]string{"dlq", "list", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"dlq", "show"}, "want exactly one sequence"},
		{[]string{"dlq", "show", "1", "2"}, "want exactly one sequence"},
		{[]string{"dlq", "show", "abc"}, `sequence "abc": want a positive number`},
		{[]string{"dlq", "show", "0"}, `sequence "0"`},
		{[]string{"dlq", "retry"}, "name the dead letters"},
		{[]string{"dlq", "retry", "1", "--all"}, "not both"},
		{[]string{"dlq", "retry", "1", "--source", "workos"}, `filters narrow --all; with sequences drop --source "workos"`},
		{[]string{"dlq", "retry", "--all", "--since", "soon"}, `--since: "soon"`},
		{[]string{"dlq", "retry", "1", "x"}, `sequence "x"`},
		{[]string{"dlq", "purge"}, "name the dead letters"},
		{[]string{"dlq", "purge", "--all", "--until", "nope"}, `--until: "nope"`},
	} {
		code, _, stderr := runCmd(t, append(tc.args, nowhere...)...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}

// putLetter stores a dead letter the way the consumer does.
func putLetter(t *testing.T, js jetstream.JetStream, source, typ, eventID, reason string) uint64 {
	t.Helper()
	m := nats.NewMsg(stream.DeadLetterSubject(source, typ))
	m.Data = []byte(`{"object":"event","id":"` + eventID + `","event":"` + typ + `","data":{"id":"x"}}`)
	m.Header.Set(stream.HeaderSource, source)
	m.Header.Set(stream.HeaderEventType, typ)
	m.Header.Set(stream.HeaderEventID, eventID)
	m.Header.Set(stream.HeaderDLSubject, stream.Subject(source, typ))
	m.Header.Set(stream.HeaderDLSequence, "3")
	m.Header.Set(stream.HeaderDLDeliveries, "5")
	m.Header.Set(stream.HeaderDLClass, "permanent")
	m.Header.Set(stream.HeaderDLError, reason)
	m.Header.Set(stream.HeaderDLFailedAt, time.Now().UTC().Format(time.RFC3339Nano))
	m.Header.Set(stream.HeaderDLConsumer, stream.Consumer)
	ack, err := js.PublishMsg(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

func TestDLQCommands(t *testing.T) {
	// A server of its own on a loopback port the command can dial, as it
	// would dial a running serve's embedded server.
	srv, err := stream.StartEmbedded(filepath.Join(t.TempDir(), "jetstream"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	ctx := context.Background()
	conn, err := stream.Open(ctx, stream.ConnConfig{URL: srv.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	if err := stream.Ensure(ctx, conn.JS, stream.Config{}, stream.ConsumerConfig{}); err != nil {
		t.Fatal(err)
	}
	nc := []string{"--nats-url", srv.ClientURL(), "--data-dir", t.TempDir()}
	cmd := func(args ...string) (int, string, string) {
		t.Helper()
		return runCmd(t, append(append([]string{"dlq"}, args...), nc...)...)
	}
	depth := func() uint64 {
		t.Helper()
		s, err := deadletter.Open(ctx, conn.JS)
		if err != nil {
			t.Fatal(err)
		}
		n, err := s.Depth(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	webhooksMsgs := func() uint64 {
		t.Helper()
		s, err := conn.JS.Stream(ctx, stream.Webhooks)
		if err != nil {
			t.Fatal(err)
		}
		return s.CachedInfo().State.Msgs
	}

	if code, _, stderr := cmd("list"); code != 0 || !strings.Contains(stderr, "no dead letters") {
		t.Errorf("list of nothing: exit %d %q", code, stderr)
	}
	a := putLetter(t, conn.JS, "workos", "user.created", "event_a", "violated invariant:\tno\nemail")
	b := putLetter(t, conn.JS, "workos", "organization.updated", "event_b", "undecodable payload")

	code, out, _ := cmd("list")
	if code != 0 || !strings.Contains(out, "SEQ") || !strings.Contains(out, "EVENT ID") || !strings.Contains(out, "event_a") ||
		!strings.Contains(out, `permanent  violated invariant:\tno email`) || strings.Count(out, "\n") != 3 {
		t.Errorf("list: exit %d\n%s", code, out)
	}
	code, out, _ = cmd("list", "--json", "--type", "organization.updated")
	var listed []deadletter.Letter
	if err := json.Unmarshal([]byte(out), &listed); code != 0 || err != nil || len(listed) != 1 || listed[0].Seq != b || listed[0].EventID != "event_b" || listed[0].Deliveries != 5 {
		t.Errorf("list --json: exit %d %v %s", code, err, out)
	}
	code, out, _ = cmd("show", "1")
	if code != 0 || !strings.Contains(out, "Syncd-Error: violated invariant") || !strings.Contains(out, "Syncd-Original-Subject: webhooks.workos.user.created") ||
		!strings.Contains(out, "\n  \"id\": \"event_a\",") {
		t.Errorf("show: exit %d\n%s", code, out)
	}

	// Bad input against a live stream: exit 2, nothing changed.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"show", "999"}, "no dead letter with sequence 999"},
		{[]string{"retry", "1", "999", "998"}, "no dead letter with sequence 999, 998"},
		{[]string{"purge", "999", "--yes"}, "no dead letter with sequence 999"},
		{[]string{"list", "--source", "stripe"}, `no dead letters match --source "stripe"`},
		{[]string{"retry", "--all", "--error", "nothing like this"}, `no dead letters match --error "nothing like this"`},
		{[]string{"purge", "--all"}, "pass --yes"},
	} {
		code, _, stderr := cmd(tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
	if d, w := depth(), webhooksMsgs(); d != 2 || w != 0 {
		t.Fatalf("bad input changed something: depth %d, WEBHOOKS %d", d, w)
	}

	// --dry-run changes nothing.
	code, out, _ = cmd("retry", "--all", "--dry-run")
	if code != 0 || !strings.Contains(out, "would retry 2") || !strings.Contains(out, "nothing was changed") {
		t.Errorf("retry --dry-run: exit %d\n%s", code, out)
	}
	code, out, _ = cmd("purge", "--all", "--dry-run")
	if code != 0 || !strings.Contains(out, "would purge 2") {
		t.Errorf("purge --dry-run: exit %d\n%s", code, out)
	}
	code, out, _ = cmd("retry", "--all", "--dry-run", "--json")
	var outcome outcomeJSON
	if err := json.Unmarshal([]byte(out), &outcome); code != 0 || err != nil || !outcome.DryRun || outcome.Total != 2 || outcome.Succeeded != 2 ||
		len(outcome.Letters) != 2 || outcome.Letters[1].EventID != "event_b" || outcome.Failed == nil {
		t.Errorf("retry --dry-run --json: exit %d %v\n%s", code, err, out)
	}
	if d, w := depth(), webhooksMsgs(); d != 2 || w != 0 {
		t.Fatalf("dry run changed something: depth %d, WEBHOOKS %d", d, w)
	}

	// Retry one by sequence, flags after the sequence: republished, removed.
	code, out, _ = cmd("retry", "1", "--log-level", "warn")
	if code != 0 || !strings.Contains(out, "retried 1 of 1") {
		t.Errorf("retry 1: exit %d\n%s", code, out)
	}
	if d, w := depth(), webhooksMsgs(); d != 1 || w != 1 {
		t.Errorf("after retry: depth %d, WEBHOOKS %d; want 1, 1", d, w)
	}
	_ = a

	code, out, _ = cmd("purge", "--all", "--yes", "--source", "workos", "--json")
	outcome = outcomeJSON{}
	if err := json.Unmarshal([]byte(out), &outcome); code != 0 || err != nil || outcome.DryRun || outcome.Succeeded != 1 || outcome.Letters[0].Seq != b || depth() != 0 {
		t.Errorf("purge --json: exit %d depth %d %v\n%s", code, depth(), err, out)
	}
	if code, out, _ := cmd("list", "--json"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("list --json of nothing: exit %d %q", code, out)
	}
	if code, _, _ := cmd("--help"); code != 0 {
		t.Errorf("dlq --help: exit %d", code)
	}
}

// Event data reaches the terminal escaped: an id and headers holding ESC
// and BEL (which would retitle the terminal or clear the screen) print as
// \x1b and \a in show and list; --json keeps them exact.
func TestDLQShowEscapesControlCharacters(t *testing.T) {
	srv, err := stream.StartEmbedded(filepath.Join(t.TempDir(), "jetstream"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	ctx := context.Background()
	conn, err := stream.Open(ctx, stream.ConnConfig{URL: srv.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	if err := stream.Ensure(ctx, conn.JS, stream.Config{}, stream.ConsumerConfig{}); err != nil {
		t.Fatal(err)
	}
	const id = "evt_\x1b]0;owned\x07\x1b[2J"
	m := nats.NewMsg(stream.DeadLetterSubject("workos", "user.created"))
	m.Data = []byte("{\"id\":\"evt\u009b2J\",\"note\":\"\x7f\"}")
	m.Header.Set(stream.HeaderSource, "workos")
	m.Header.Set(stream.HeaderEventType, "user.created\a")
	m.Header.Set(stream.HeaderEventID, id)
	m.Header.Set("X-Hostile", "bell\a")
	m.Header.Set(stream.HeaderDLError, "bad \x1b[31mred")
	m.Header.Set(stream.HeaderDLFailedAt, time.Now().UTC().Format(time.RFC3339Nano))
	ack, err := conn.JS.PublishMsg(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	nc := []string{"--nats-url", srv.ClientURL(), "--data-dir", t.TempDir()}
	raw := func(s string) bool { return strings.ContainsAny(s, "\x1b\a\x7f\u009b") }

	code, out, stderr := runCmd(t, append([]string{"dlq", "show", fmt.Sprint(ack.Sequence)}, nc...)...)
	if code != 0 {
		t.Fatalf("show: exit %d %s", code, stderr)
	}
	if raw(out) {
		t.Errorf("show prints control characters raw:\n%q", out)
	}
	for _, want := range []string{`Syncd-Event-Id: evt_\x1b]0;owned\a\x1b[2J`, `Syncd-Event-Type: user.created\a`, `Syncd-Error: bad \x1b[31mred`, `bell\a`, `\u009b`, `\x7f`} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runCmd(t, append([]string{"dlq", "list"}, nc...)...)
	if code != 0 || raw(out) || !strings.Contains(out, `evt_\x1b]0;owned\a`) {
		t.Errorf("list: exit %d\n%q", code, out)
	}
	code, out, _ = runCmd(t, append([]string{"dlq", "list", "--json"}, nc...)...)
	var listed []deadletter.Letter
	if err := json.Unmarshal([]byte(out), &listed); code != 0 || err != nil || len(listed) != 1 || listed[0].EventID != id {
		t.Errorf("list --json does not keep the id exact: exit %d %v %s", code, err, out)
	}
}
