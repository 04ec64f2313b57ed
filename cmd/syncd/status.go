package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/syncd/syncd/redact"
	"github.com/syncd/syncd/status"
	"github.com/syncd/syncd/stream"
)

func statusCommand() *cobra.Command {
	var f statusFlags
	c := &cobra.Command{
		Use:   "status",
		Short: "show stream and consumer lag, dead letters, last event applied",
		Args:  noArgs,
	}
	f.common.register(c)
	d := declare(c)
	d.Bool(&f.asJSON, "json", "", false, "print JSON")
	d.Duration(&f.outcomesWindow, "outcomes-window", "", status.DefaultOutcomesWindow, "count the outcomes of the events applied this long ago until now", positive)
	c.RunE = action(func(c *cobra.Command, _ []string) error { return f.run(c.Context(), c.OutOrStdout()) })
	return c
}

type statusFlags struct {
	common
	asJSON         bool
	outcomesWindow time.Duration
}

func (f *statusFlags) run(ctx context.Context, stdout io.Writer) error {
	conn, err := f.jetstream(ctx, slog.New(slog.DiscardHandler), false)
	if err != nil {
		return err
	}
	defer conn.Close()

	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var notReady []string
	if err := conn.Ready(qctx); err != nil {
		notReady = append(notReady, "nats: "+err.Error())
	}
	var pool *pgxpool.Pool
	if f.databaseURL != "" {
		if pool, err = f.pool(ctx); err != nil {
			if errors.Is(err, errUsage) {
				return err
			}
			notReady = append(notReady, "postgres: "+redact.Error(err, f.databaseURL))
			pool = nil
		} else {
			defer pool.Close()
		}
	}
	r, err := status.Gather(qctx, conn.JS, pool, f.outcomesWindow)
	if err != nil {
		return err
	}
	r.NotReady, r.Ready = notReady, len(notReady) == 0
	if f.asJSON {
		if err := writeJSON(stdout, r); err != nil {
			return err
		}
		return notReadyErr(r)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "stream %s\t%d messages, %s, seq %d..%d\n", stream.Webhooks, r.Stream.Messages, humanBytes(r.Stream.Bytes), r.Stream.FirstSeq, r.Stream.LastSeq)
	if !r.Stream.Newest.IsZero() {
		fmt.Fprintf(tw, "  window\t%s .. %s\n", r.Stream.Oldest.UTC().Format(time.RFC3339), r.Stream.Newest.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(tw, "consumer %s\tlag %d undelivered, %d unacknowledged, %d redelivered, last delivered seq %d\n", r.Consumer.Name, r.Consumer.Pending, r.Consumer.AckPending, r.Consumer.Redelivered, r.Consumer.LastDeliveredSeq)
	fmt.Fprintf(tw, "dead letters\t%d\n", r.DeadLetters)
	if f.databaseURL == "" {
		fmt.Fprintf(tw, "ledger\t(set DATABASE_URL to show the last event applied per source)\n")
	}
	for _, s := range r.Sources {
		fmt.Fprintf(tw, "last %s event\t%s %s applied %s (%s ago)\n", printable(s.Source), printable(s.LastType), printable(s.LastEventID), s.AppliedAt.UTC().Format(time.RFC3339), time.Since(s.AppliedAt).Round(time.Second))
	}
	if l := r.Ledger; l != nil {
		rows := fmt.Sprintf("%d rows", l.Rows)
		switch {
		case l.Rows < 0:
			rows = "rows unknown (not yet analyzed)"
		case !l.RowsExact:
			rows = fmt.Sprintf("about %d rows", l.Rows)
		}
		oldest := "empty"
		if l.Oldest != nil {
			oldest = fmt.Sprintf("oldest applied %s (%s ago)", l.Oldest.UTC().Format(time.RFC3339), time.Since(*l.Oldest).Round(time.Second))
		}
		fmt.Fprintf(tw, "ledger webhook_events\t%s, %s, %s\n", rows, humanBytes(uint64(max(l.Bytes, 0))), oldest)
	}
	for _, src := range slices.Sorted(maps.Keys(r.Outcomes)) {
		m := r.Outcomes[src]
		fmt.Fprintf(tw, "%s outcomes\tapplied %d, ignored %d, stale %d (applied since %s)\n", printable(src), m["applied"], m["ignored"], m["stale"], r.OutcomesSince.UTC().Format(time.RFC3339))
	}
	if r.Ready {
		fmt.Fprintf(tw, "ready\tyes\n")
	}
	for _, why := range r.NotReady {
		fmt.Fprintf(tw, "not ready\t%s\n", printable(why))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return notReadyErr(r)
}

// notReadyErr makes a not-ready status the command's failure, after the
// report is printed.
func notReadyErr(r status.Report) error {
	if r.Ready {
		return nil
	}
	return fmt.Errorf("not ready: %s", strings.Join(r.NotReady, "; "))
}

func humanBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
