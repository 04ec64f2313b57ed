package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/syncd/syncd/events"
	"github.com/syncd/syncd/replay"
	"github.com/syncd/syncd/stream"
)

func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	var since, until, source, typ string
	var fromSeq, toSeq uint64
	var batch int
	var noProgress bool
	var aud auditFlags
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	c.register(fs)
	aud.registerMode(fs)
	declare(fs).String(&since, "since", "", "", "start of the window: when syncd stored the event (RFC 3339, a date, or a duration ago: 36h, 7d)")
	fs.Uint64Var(&fromSeq, "from-seq", 0, "start of the window: a WEBHOOKS stream sequence")
	declare(fs).String(&until, "until", "", "", "end of the window (same forms as --since); default the stream's end when the replay starts")
	fs.Uint64Var(&toSeq, "to-seq", 0, "end of the window: a WEBHOOKS stream sequence, inclusive")
	declare(fs).String(&source, "source", "", "", "only this source: workos or stripe")
	declare(fs).String(&typ, "type", "", "", "only event types matching this NATS subject pattern (customer.subscription.*, dsync.>)")
	declare(fs).Int(&batch, "batch-size", "", 256, "events applied per transaction, at most")
	declare(fs).Bool(&noProgress, "no-progress", "", false, "no progress bar, even on a terminal")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: syncd replay --since T | --from-seq N [--until T | --to-seq N] [--source S] [--type PATTERN]\n\n"+
			"Re-delivers a window of the WEBHOOKS stream through the consumers' handlers. Events already\n"+
			"in the ledger are skipped; events missing from the database (after a restore) are applied.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for name, v := range map[string]string{"since": since, "until": until} {
		if set[name] && strings.TrimSpace(v) == "" {
			return usageError("--%s is empty: want an RFC 3339 time, a date or a duration ago", name)
		}
	}
	now := time.Now()
	if err := aud.setup(); err != nil {
		return err
	}
	cfg := replay.Config{FromSeq: fromSeq, ToSeq: toSeq, Source: source, Type: typ, BatchSize: batch, AuditOff: aud.off}
	switch {
	case set["since"] && set["from-seq"]:
		return usageError("--since and --from-seq both start the window: give one")
	case !set["since"] && !set["from-seq"]:
		return usageError("give the start of the window: --since T or --from-seq N")
	case set["until"] && set["to-seq"]:
		return usageError("--until and --to-seq both end the window: give one")
	case set["from-seq"] && fromSeq == 0:
		return usageError("--from-seq 0: stream sequences start at 1")
	case set["to-seq"] && toSeq == 0:
		return usageError("--to-seq 0: stream sequences start at 1")
	case set["to-seq"] && set["from-seq"] && toSeq < fromSeq:
		return usageError("--to-seq %d is before --from-seq %d", toSeq, fromSeq)
	case batch < 1 || batch > 10000:
		return usageError("--batch-size %d: want 1..10000", batch)
	}
	var err error
	if cfg.Since, err = parseWhen("since", since, now); err != nil {
		return err
	}
	if cfg.Until, err = parseWhen("until", until, now); err != nil {
		return err
	}
	if !cfg.Since.IsZero() && !cfg.Until.IsZero() && !cfg.Until.After(cfg.Since) {
		return usageError("--until %s is not after --since %s", cfg.Until.Format(time.RFC3339), cfg.Since.Format(time.RFC3339))
	}
	if source != "" && source != stream.SourceWorkOS && source != stream.SourceStripe {
		return usageError("--source %q: want %s or %s", source, stream.SourceWorkOS, stream.SourceStripe)
	}
	if _, err := replay.FilterSubject(source, typ); err != nil {
		return usageError("--type: %s", strings.TrimPrefix(err.Error(), "replay: "))
	}
	log, pool, conn, closeAll, err := c.connect(ctx, stderr)
	if err != nil {
		return err
	}
	defer closeAll()
	cfg.Logger = log

	bar := newProgressLine(stderr, noProgress)
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
	printReplaySummary(stdout, sum)
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
