// Package status reads where the pipeline stands: the WEBHOOKS window,
// the apply consumer's lag, dead-letter depth, and from the ledger the last
// event applied per source and the events received and applied per minute.
// `syncd status` prints it; the admin console draws it.
package status

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncd/syncd/queries"
	"github.com/syncd/syncd/stream"
)

// Report is the state of the stream, the consumer and the ledger.
type Report struct {
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
	// DeadLettersBySource splits DeadLetters by the source token of their
	// subjects.
	DeadLettersBySource map[string]uint64 `json:"dead_letters_by_source"`
	// Sources, Ledger and Outcomes are read from the ledger; empty without
	// a pool.
	Sources []Source `json:"sources"`
	Ledger  *Ledger  `json:"ledger,omitempty"`
	// Outcomes counts the events applied per source and outcome since
	// OutcomesSince, not over the whole ledger, whose reach is the
	// retention.
	OutcomesSince time.Time                   `json:"outcomes_since"`
	Outcomes      map[string]map[string]int64 `json:"outcomes"`
	// Ready is what serve's /readyz checks, seen by the caller; NotReady
	// holds the reasons, which the public endpoint does not show.
	Ready    bool     `json:"ready"`
	NotReady []string `json:"not_ready,omitempty"`
}

// Ledger is the size of webhook_events, read without scanning it unless
// that is cheap.
type Ledger struct {
	// Rows is exact when RowsExact, else the planner's estimate (-1:
	// unknown, the table was never vacuumed or analyzed).
	Rows      int64                `json:"rows"`
	RowsExact bool                 `json:"rows_exact"`
	Bytes     int64                `json:"bytes"`
	Oldest    *time.Time           `json:"oldest,omitempty"`
	OldestBy  map[string]time.Time `json:"oldest_by_source,omitempty"`
}

// DefaultOutcomesWindow is how far back outcomes are counted by default.
const DefaultOutcomesWindow = 24 * time.Hour

// exactCountBelow is the estimated size under which the ledger's rows are
// counted exactly; exactCountTimeout bounds that count whatever the
// estimate said (it may be stale right after a burst).
const (
	exactCountBelow   = 1_000_000
	exactCountTimeout = 2 * time.Second
)

// Source is the last event applied from one source.
type Source struct {
	Source      string     `json:"source"`
	LastEventID string     `json:"last_event_id"`
	LastType    string     `json:"last_type"`
	ProviderAt  *time.Time `json:"provider_at,omitempty"`
	AppliedAt   time.Time  `json:"applied_at"`
}

// Gather reads the report, counting outcomes over the last outcomesWindow.
// pool may be nil: the ledger parts stay empty. A consumer or stream that
// cannot be read is an error, not zeros, which would read as "all caught
// up".
func Gather(ctx context.Context, js jetstream.JetStream, pool *pgxpool.Pool, outcomesWindow time.Duration) (Report, error) {
	var r Report
	s, err := js.Stream(ctx, stream.Webhooks)
	if err != nil {
		return r, fmt.Errorf("stream %s: %w (has syncd serve run with this NATS_URL / SYNCD_DATA_DIR?)", stream.Webhooks, err)
	}
	st := s.CachedInfo().State
	r.Stream.Messages, r.Stream.Bytes, r.Stream.FirstSeq, r.Stream.LastSeq = st.Msgs, st.Bytes, st.FirstSeq, st.LastSeq
	r.Stream.Oldest, r.Stream.Newest = st.FirstTime, st.LastTime
	r.Consumer.Name = stream.Consumer
	cons, err := s.Consumer(ctx, stream.Consumer)
	if err != nil {
		return r, fmt.Errorf("consumer %s: %w", stream.Consumer, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return r, fmt.Errorf("consumer %s: %w", stream.Consumer, err)
	}
	r.Consumer.Pending, r.Consumer.AckPending, r.Consumer.Redelivered = info.NumPending, info.NumAckPending, info.NumRedelivered
	r.Consumer.LastDeliveredSeq = info.Delivered.Stream
	dl, err := js.Stream(ctx, stream.DeadLetter)
	if err != nil {
		return r, fmt.Errorf("stream %s: %w", stream.DeadLetter, err)
	}
	// One info call with the per-subject counts gives the depth by source.
	dlInfo, err := dl.Info(ctx, jetstream.WithSubjectFilter("deadletter.>"))
	if err != nil {
		return r, fmt.Errorf("stream %s: %w", stream.DeadLetter, err)
	}
	r.DeadLetters = dlInfo.State.Msgs
	r.DeadLettersBySource = map[string]uint64{}
	for subj, n := range dlInfo.State.Subjects {
		if parts := strings.SplitN(subj, ".", 3); len(parts) == 3 {
			r.DeadLettersBySource[parts[1]] += n
		}
	}
	if pool == nil {
		return r, nil
	}
	q := queries.New()
	last, err := q.EventLedgerLastApplied(ctx, pool)
	if err != nil {
		return r, fmt.Errorf("read ledger: %w", err)
	}
	for _, l := range last {
		r.Sources = append(r.Sources, Source{l.Source, l.EventID, l.EventType, l.ProviderAt, l.AppliedAt})
	}
	sources := []string{stream.SourceWorkOS, stream.SourceStripe}
	if r.Ledger, err = readLedger(ctx, q, pool, sources); err != nil {
		return r, err
	}
	r.OutcomesSince = time.Now().Add(-outcomesWindow)
	counts, err := q.EventLedgerCountByOutcome(ctx, pool, queries.EventLedgerCountByOutcomeParams{Sources: sources, Since: r.OutcomesSince})
	if err != nil {
		return r, fmt.Errorf("read ledger: %w", err)
	}
	r.Outcomes = map[string]map[string]int64{}
	for _, c := range counts {
		if r.Outcomes[c.Source] == nil {
			r.Outcomes[c.Source] = map[string]int64{}
		}
		r.Outcomes[c.Source][c.Outcome] = c.N
	}
	return r, nil
}

func readLedger(ctx context.Context, q *queries.Queries, db queries.DBTX, sources []string) (*Ledger, error) {
	size, err := q.EventLedgerSize(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("read ledger size: %w", err)
	}
	l := &Ledger{Rows: size.EstimatedRows, Bytes: size.TotalBytes}
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

// Minute counts one source's events of one minute.
type Minute struct {
	At       time.Time `json:"at"`
	Received int64     `json:"received"`
	Applied  int64     `json:"applied"`
}

// PerMinute counts source's events received and applied in each of the
// minutes whole minutes before now, oldest first, zeros included. Received
// is read from the ledger's received_at (the stream's store time), so an
// event still waiting in the stream is counted once it is applied.
func PerMinute(ctx context.Context, pool *pgxpool.Pool, source string, now time.Time, minutes int) ([]Minute, error) {
	end := now.UTC().Truncate(time.Minute)
	since := end.Add(-time.Duration(minutes-1) * time.Minute)
	rows, err := queries.New().EventLedgerPerMinute(ctx, pool, queries.EventLedgerPerMinuteParams{Source: source, Since: since})
	if err != nil {
		return nil, fmt.Errorf("read ledger per minute: %w", err)
	}
	out := make([]Minute, minutes)
	for i := range out {
		out[i].At = since.Add(time.Duration(i) * time.Minute)
	}
	for _, r := range rows {
		i := int(r.Minute.UTC().Sub(since) / time.Minute)
		if i >= 0 && i < minutes {
			out[i].Received += r.Received
			out[i].Applied += r.Applied
		}
	}
	return out, nil
}
