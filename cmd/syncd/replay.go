package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/syncd/syncd/events"
	"github.com/syncd/syncd/replay"
	"github.com/syncd/syncd/stream"
)

func replayCommand() *cobra.Command {
	var f replayFlags
	c := &cobra.Command{
		Use:   "replay --since T | --from-seq N [--until T | --to-seq N] [--source S] [--type PATTERN]",
		Short: "re-deliver a window of the stream through the consumers",
		Long: "Re-delivers a window of the WEBHOOKS stream through the consumers' handlers. Events already\n" +
			"in the ledger are skipped; events missing from the database (after a restore) are applied.",
		Args: noArgs,
	}
	f.common.register(c)
	f.aud.registerMode(c)
	d := declare(c)
	d.String(&f.since, "since", "", "", "start of the window: when syncd stored the event (RFC 3339, a date, or a duration ago: 36h, 7d)", when)
	d.Uint64(&f.fromSeq, "from-seq", "", 0, "start of the window: a WEBHOOKS stream sequence")
	d.String(&f.until, "until", "", "", "end of the window (same forms as --since); default the stream's end when the replay starts", when)
	d.Uint64(&f.toSeq, "to-seq", "", 0, "end of the window: a WEBHOOKS stream sequence, inclusive")
	d.String(&f.source, "source", "", "", "only this source: workos or stripe", fieldCheck(replay.Config{FromSeq: 1}, func(c *replay.Config, v string) { c.Source = v }))
	d.complete("source", stream.SourceWorkOS, stream.SourceStripe)
	d.String(&f.typ, "type", "", "", "only event types matching this NATS subject pattern (customer.subscription.*, dsync.>)", fieldCheck(replay.Config{FromSeq: 1}, func(c *replay.Config, v string) { c.Type = v }))
	d.Int(&f.batch, "batch-size", "", replay.BatchSizeDefault, fmt.Sprintf("events applied per transaction, at most (1 to %d)", replay.BatchSizeMax), positive, fieldCheck(replay.Config{FromSeq: 1}, func(c *replay.Config, v int) { c.BatchSize = v }))
	declareAnalyzeInterval(d, &f.analyzeInterval)
	d.Bool(&f.noProgress, "no-progress", "", false, "no progress bar, even on a terminal")
	d.Bool(&f.asJSON, "json", "", false, "print the summary as JSON")
	c.RunE = action(func(c *cobra.Command, _ []string) error {
		return f.run(c.Context(), c.Flags().Changed, c.OutOrStdout(), c.ErrOrStderr())
	})
	return c
}

// replayFlags are the window and filters of a replay.
type replayFlags struct {
	common
	aud                       auditFlags
	since, until, source, typ string
	fromSeq, toSeq            uint64
	batch                     int
	analyzeInterval           time.Duration
	noProgress, asJSON        bool
}

// run is `syncd replay`; set says which flags were given.
func (f *replayFlags) run(ctx context.Context, set func(string) bool, stdout, stderr io.Writer) error {
	for name, v := range map[string]string{"since": f.since, "until": f.until} {
		if set(name) && strings.TrimSpace(v) == "" {
			return usageError("--%s is empty: want an RFC 3339 time, a date or a duration ago", name)
		}
	}
	now := time.Now()
	cfg := replay.Config{FromSeq: f.fromSeq, ToSeq: f.toSeq, Source: f.source, Type: f.typ, BatchSize: f.batch, AuditOff: f.aud.disabled(),
		AnalyzeInterval: f.analyzeInterval, AnalyzeOff: f.analyzeInterval == 0}
	switch {
	case set("since") && set("from-seq"):
		return usageError("--since and --from-seq both start the window: give one")
	case !set("since") && !set("from-seq"):
		return usageError("give the start of the window: --since T or --from-seq N")
	case set("until") && set("to-seq"):
		return usageError("--until and --to-seq both end the window: give one")
	case set("from-seq") && f.fromSeq == 0:
		return usageError("--from-seq 0: stream sequences start at 1")
	case set("to-seq") && f.toSeq == 0:
		return usageError("--to-seq 0: stream sequences start at 1")
	case set("to-seq") && set("from-seq") && f.toSeq < f.fromSeq:
		return usageError("--to-seq %d is before --from-seq %d", f.toSeq, f.fromSeq)
	}
	var err error
	if cfg.Since, err = parseWhen("since", f.since, now); err != nil {
		return err
	}
	if cfg.Until, err = parseWhen("until", f.until, now); err != nil {
		return err
	}
	if !cfg.Since.IsZero() && !cfg.Until.IsZero() && !cfg.Until.After(cfg.Since) {
		return usageError("--until %s is not after --since %s", cfg.Until.Format(time.RFC3339), cfg.Since.Format(time.RFC3339))
	}
	if err := cfg.Check(); err != nil {
		return usageError("%v", err)
	}
	log, pool, conn, closeAll, err := f.connect(ctx, stderr)
	if err != nil {
		return err
	}
	defer closeAll()
	cfg.Logger = log

	bar := newProgressLine(stderr, f.noProgress)
	cfg.Progress = func(p replay.Progress) {
		bar.set(func() string {
			return fmt.Sprintf("%s %d/%d events  seq %d  %.0f/s", barOf(p.Done, p.Total, 30), p.Done, p.Total, p.Seq, float64(p.Done)/max(p.Elapsed.Seconds(), 1e-3))
		})
	}
	sum, err := replay.Run(ctx, cfg, pool, conn.JS)
	bar.done()
	if errors.Is(err, replay.ErrEmpty) {
		return usageError("no events in the window (filter %s, up to sequence %d): check --since/--from-seq and the filters", printable(sum.Filter), sum.EndSeq)
	}
	if f.asJSON {
		if err := writeReplayJSON(stdout, sum); err != nil {
			return err
		}
	} else {
		printReplaySummary(stdout, sum)
	}
	if err != nil {
		return fmt.Errorf("replay stopped after %d events (the ledger makes running it again safe): %w", sum.Events, err)
	}
	if sum.Failed > 0 {
		return fmt.Errorf("%d events failed to apply (listed above); the apply consumer sets such events aside in DEADLETTER (see syncd dlq)", sum.Failed)
	}
	return nil
}

func printReplaySummary(w io.Writer, s replay.Summary) {
	fmt.Fprintf(w, "replayed %d events (seq %d..%d, filter %s) in %s: %.0f events/s\n",
		s.Events, s.FirstSeq, s.LastSeq, printable(s.Filter), s.Elapsed.Round(time.Millisecond), s.Rate())
	for _, row := range []struct {
		name string
		n    int
	}{{"applied", s.Applied}, {"skipped", s.Skipped}, {"ignored", s.Ignored}, {"stale", s.Stale}, {"failed", s.Failed}} {
		fmt.Fprintf(w, "  %-8s %d\n", row.name, row.n)
	}
	for _, f := range s.Failures {
		fmt.Fprintf(w, "  failed: seq %d %s %s %s: %s\n", f.Seq, printable(f.Source), printable(f.Type), printable(f.EventID), printable(fmt.Sprint(f.Err)))
	}
	if s.Failed > len(s.Failures) {
		fmt.Fprintf(w, "  … and %d more failures (see the log)\n", s.Failed-len(s.Failures))
	}
}

// replayJSON is the --json form of a replay's summary.
type replayJSON struct {
	Filter         string          `json:"filter"`
	FirstSeq       uint64          `json:"first_seq"`
	LastSeq        uint64          `json:"last_seq"`
	Events         int             `json:"events"`
	Applied        int             `json:"applied"`
	Skipped        int             `json:"skipped"`
	Ignored        int             `json:"ignored"`
	Stale          int             `json:"stale"`
	Failed         int             `json:"failed"`
	Failures       []replayFailure `json:"failures"`
	ElapsedSeconds float64         `json:"elapsed_seconds"`
}

type replayFailure struct {
	Seq     uint64 `json:"seq"`
	Source  string `json:"source"`
	Type    string `json:"type"`
	EventID string `json:"event_id"`
	Error   string `json:"error"`
}

func writeReplayJSON(w io.Writer, s replay.Summary) error {
	j := replayJSON{Filter: s.Filter, FirstSeq: s.FirstSeq, LastSeq: s.LastSeq, Events: s.Events, Applied: s.Applied, Skipped: s.Skipped,
		Ignored: s.Ignored, Stale: s.Stale, Failed: s.Failed, Failures: []replayFailure{}, ElapsedSeconds: s.Elapsed.Seconds()}
	for _, f := range s.Failures {
		j.Failures = append(j.Failures, replayFailure{Seq: f.Seq, Source: f.Source, Type: f.Type, EventID: f.EventID, Error: fmt.Sprint(f.Err)})
	}
	return writeJSON(w, j)
}

// parseWhen reads a time flag (events.ParseWhen); empty is the zero time.
func parseWhen(name, value string, now time.Time) (time.Time, error) {
	t, err := events.ParseWhen(value, now)
	if err != nil {
		return time.Time{}, usageError("--%s %q: %v", name, strings.TrimSpace(value), err)
	}
	if name == "since" && t.After(now.Add(time.Minute)) {
		return time.Time{}, usageError("--%s %q: in the future", name, strings.TrimSpace(value))
	}
	return t, nil
}
