package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncd/syncd/queries"
	"github.com/syncd/syncd/redact"
	"github.com/syncd/syncd/stream"
)

type statusReport struct {
	Stream struct {
		Messages uint64    `json:"messages"`
		Bytes    uint64    `json:"bytes"`
		FirstSeq uint64    `json:"first_seq"`
		LastSeq  uint64    `json:"last_seq"`
		Oldest   time.Time `json:"oldest"`
		Newest   time.Time `json:"newest"`
	} `json:"stream"`
	Consumer struct {
		Name             string `json:"name"`
		Pending          uint64 `json:"pending"`
		AckPending       int    `json:"ack_pending"`
		Redelivered      int    `json:"redelivered"`
		LastDeliveredSeq uint64 `json:"last_delivered_seq"`
	} `json:"consumer"`
	DeadLetters uint64 `json:"dead_letters"`
	Sources     []struct {
		Source      string     `json:"source"`
		LastEventID string     `json:"last_event_id"`
		LastType    string     `json:"last_type"`
		ProviderAt  *time.Time `json:"provider_at,omitempty"`
		AppliedAt   time.Time  `json:"applied_at"`
	} `json:"sources"`
	Ledger *ledgerReport `json:"ledger,omitempty"`
	// Outcomes counts the events applied per source and outcome since
	// OutcomesSince (--outcomes-window ago), not over the whole ledger,
	// whose reach is the retention.
	OutcomesSince time.Time                   `json:"outcomes_since"`
	Outcomes      map[string]map[string]int64 `json:"outcomes"`
	// Ready is what serve's /readyz checks, seen from here; NotReady
	// holds the reasons, which the public endpoint does not show.
	Ready    bool     `json:"ready"`
	NotReady []string `json:"not_ready,omitempty"`
}

// ledgerReport is the size of webhook_events, read without scanning it
// unless that is cheap.
type ledgerReport struct {
	// Rows is exact when RowsExact, else the planner's estimate (-1:
	// unknown, the table was never vacuumed or analyzed).
	Rows      int64                `json:"rows"`
	RowsExact bool                 `json:"rows_exact"`
	Bytes     int64                `json:"bytes"`
	Oldest    *time.Time           `json:"oldest,omitempty"`
	OldestBy  map[string]time.Time `json:"oldest_by_source,omitempty"`
}

// exactCountBelow is the estimated size under which status counts the
// ledger's rows exactly; exactCountTimeout bounds that count whatever the
// estimate said (it may be stale right after a burst).
const (
	exactCountBelow   = 1_000_000
	exactCountTimeout = 2 * time.Second
)

func readLedger(ctx context.Context, q *queries.Queries, db queries.DBTX, sources []string) (*ledgerReport, error) {
	size, err := q.EventLedgerSize(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("read ledger size: %w", err)
	}
	l := &ledgerReport{Rows: size.EstimatedRows, Bytes: size.TotalBytes}
	if size.EstimatedRows < exactCountBelow {
		cctx, cancel := context.WithTimeout(ctx, exactCountTimeout)
		if n, err := q.EventLedgerCount(cctx, db); err == nil {
			l.Rows, l.RowsExact = n, true
		}
		cancel()
	}
	oldest, err := q.EventLedgerOldest(ctx, db, sources)
	if err != nil {
		return nil, fmt.Errorf("read ledger's oldest rows: %w", err)
	}
	for _, o := range oldest {
		if l.OldestBy == nil {
			l.OldestBy = map[string]time.Time{}
		}
		l.OldestBy[o.Source] = o.AppliedAt
		if l.Oldest == nil || o.AppliedAt.Before(*l.Oldest) {
			l.Oldest = &o.AppliedAt
		}
	}
	return l, nil
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	var asJSON bool
	var outcomesWindow time.Duration
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	c.register(fs)
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	fs.DurationVar(&outcomesWindow, "outcomes-window", 24*time.Hour, "count the outcomes of the events applied this long ago until now")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("unexpected argument %q", fs.Arg(0))
	}
	if outcomesWindow <= 0 {
		return usageError("--outcomes-window %s: want a positive duration", outcomesWindow)
	}
	conn, err := c.jetstream(ctx, slog.New(slog.DiscardHandler), false)
	if err != nil {
		return err
	}
	defer conn.Close()

	var r statusReport
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := conn.JS.Stream(qctx, stream.Webhooks)
	if err != nil {
		return fmt.Errorf("stream %s: %w (has syncd serve run with this NATS_URL / SYNCD_DATA_DIR?)", stream.Webhooks, err)
	}
	st := s.CachedInfo().State
	r.Stream.Messages, r.Stream.Bytes, r.Stream.FirstSeq, r.Stream.LastSeq = st.Msgs, st.Bytes, st.FirstSeq, st.LastSeq
	r.Stream.Oldest, r.Stream.Newest = st.FirstTime, st.LastTime
	r.Consumer.Name = stream.Consumer
	// Zeros from a failed lookup would read as "all caught up": fail instead.
	cons, err := s.Consumer(qctx, stream.Consumer)
	if err != nil {
		return fmt.Errorf("consumer %s: %w", stream.Consumer, err)
	}
	info, err := cons.Info(qctx)
	if err != nil {
		return fmt.Errorf("consumer %s: %w", stream.Consumer, err)
	}
	r.Consumer.Pending, r.Consumer.AckPending, r.Consumer.Redelivered = info.NumPending, info.NumAckPending, info.NumRedelivered
	r.Consumer.LastDeliveredSeq = info.Delivered.Stream
	dl, err := conn.JS.Stream(qctx, stream.DeadLetter)
	if err != nil {
		return fmt.Errorf("stream %s: %w", stream.DeadLetter, err)
	}
	r.DeadLetters = dl.CachedInfo().State.Msgs
	if err := conn.Ready(qctx); err != nil {
		r.NotReady = append(r.NotReady, "nats: "+err.Error())
	}
	var pool *pgxpool.Pool
	if c.databaseURL != "" {
		if pool, err = c.pool(ctx); err != nil {
			if errors.Is(err, errUsage) {
				return err
			}
			r.NotReady = append(r.NotReady, "postgres: "+redact.Error(err, c.databaseURL))
		} else {
			defer pool.Close()
		}
	}
	r.Ready = len(r.NotReady) == 0
	if pool != nil {
		q := queries.New()
		last, err := q.EventLedgerLastApplied(qctx, pool)
		if err != nil {
			return fmt.Errorf("read ledger: %w", err)
		}
		for _, l := range last {
			r.Sources = append(r.Sources, struct {
				Source      string     `json:"source"`
				LastEventID string     `json:"last_event_id"`
				LastType    string     `json:"last_type"`
				ProviderAt  *time.Time `json:"provider_at,omitempty"`
				AppliedAt   time.Time  `json:"applied_at"`
			}{l.Source, l.EventID, l.EventType, l.ProviderAt, l.AppliedAt})
		}
		sources := []string{stream.SourceWorkOS, stream.SourceStripe}
		if r.Ledger, err = readLedger(qctx, q, pool, sources); err != nil {
			return err
		}
		r.OutcomesSince = time.Now().Add(-outcomesWindow)
		counts, err := q.EventLedgerCountByOutcome(qctx, pool, queries.EventLedgerCountByOutcomeParams{Sources: sources, Since: r.OutcomesSince})
		if err != nil {
			return fmt.Errorf("read ledger: %w", err)
		}
		r.Outcomes = map[string]map[string]int64{}
		for _, c := range counts {
			if r.Outcomes[c.Source] == nil {
				r.Outcomes[c.Source] = map[string]int64{}
			}
			r.Outcomes[c.Source][c.Outcome] = c.N
		}
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
		return notReady(r)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "stream %s\t%d messages, %s, seq %d..%d\n", stream.Webhooks, r.Stream.Messages, humanBytes(r.Stream.Bytes), r.Stream.FirstSeq, r.Stream.LastSeq)
	if !r.Stream.Newest.IsZero() {
		fmt.Fprintf(tw, "  window\t%s .. %s\n", r.Stream.Oldest.UTC().Format(time.RFC3339), r.Stream.Newest.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(tw, "consumer %s\tlag %d undelivered, %d unacknowledged, %d redelivered, last delivered seq %d\n", r.Consumer.Name, r.Consumer.Pending, r.Consumer.AckPending, r.Consumer.Redelivered, r.Consumer.LastDeliveredSeq)
	fmt.Fprintf(tw, "dead letters\t%d\n", r.DeadLetters)
	if c.databaseURL == "" {
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
	return notReady(r)
}

// notReady makes a not-ready status the command's failure, after the
// report is printed.
func notReady(r statusReport) error {
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
