// Package backfill pulls events from the providers' Events APIs for a time
// window and publishes them into WEBHOOKS exactly as ingest publishes a
// webhook (same subject, message id, headers and raw body), so an event
// whose webhook never arrived is applied by the same consumers, and one
// that did arrive is a duplicate: dropped by JetStream's message id inside
// its window, skipped by the ledger after it.
//
// Progress is stored in Postgres after every page whose events JetStream
// acknowledged, so an interrupted run resumes from its last stored page.
// The cursor only ever comes from the Events API's own pages.
package backfill

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/events"
	"github.com/syncd/syncd/queries"
	"github.com/syncd/syncd/stream"
	"github.com/syncd/syncd/telemetry"
)

// PageSizeMax is the most events an Events API page holds (both
// providers' limit), and the page size by default.
const PageSizeMax = 100

var (
	// ErrBusy means another backfill of the same provider and window holds
	// its lock (another replica reconciling, or an operator's run).
	ErrBusy = errors.New("another backfill of this window is running")
	// ErrWindow means the Events API cannot serve the window asked for.
	ErrWindow = errors.New("window not served by the Events API")
)

// Event is one event as the Events API returned it.
type Event struct {
	Envelope events.Envelope
	// Body is the event object's raw JSON: the same envelope a webhook
	// carries.
	Body []byte
}

// Page is one page of a listing.
type Page struct {
	Events []Event
	// Next is the cursor of the following page; empty on the last page.
	Next string
	// Invalid counts items that were not provider events, left out.
	Invalid int
}

// Source is one provider's Events API.
type Source interface {
	// Name is the stream source of its events: "workos" or "stripe".
	Name() string
	// Check rejects a window the API cannot serve, wrapping ErrWindow.
	Check(w Window, now time.Time) error
	// Listings splits a type filter into the listings the API accepts.
	Listings(types []string) [][]string
	// Page lists one page of w's events of the given types after cursor
	// ("" for the first page).
	Page(ctx context.Context, w Window, types []string, cursor string) (Page, error)
}

// Window is the range of provider event times to backfill.
type Window struct {
	Since time.Time
	// Until zero means the time the window is first started.
	Until time.Time
	// Types filters event types; empty means the types syncd's consumers
	// handle (every type when none are).
	Types []string
}

// Key names a window's cursor: the same command run again resumes it.
func (w Window) Key() string {
	until := "now"
	if !w.Until.IsZero() {
		until = w.Until.UTC().Format(time.RFC3339Nano)
	}
	types := "default"
	if len(w.Types) > 0 {
		types = strings.Join(normalizeTypes(w.Types), ",")
	}
	return w.Since.UTC().Format(time.RFC3339Nano) + ".." + until + " types=" + types
}

// Config configures a backfill run.
type Config struct {
	// Key names the cursor row. Empty derives it from the window.
	Key string
	// PublishTimeout bounds the wait for a page's PubAcks.
	PublishTimeout time.Duration
	Logger         *slog.Logger
	// OnPage, if set, is called after each page is stored.
	OnPage func(Progress)
	// Now is the clock; tests set it.
	Now func() time.Time

	// locks, when set, holds the window's lock on a connection shared
	// with other runs (a Connect backfill's accounts), so concurrent
	// accounts do not each keep a pool connection.
	locks *locker
}

func (c Config) withDefaults() Config {
	if c.PublishTimeout == 0 {
		c.PublishTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Progress is where a run stands after a page.
type Progress struct {
	Part, Parts int
	Pages       int
	Listed      int
	// Oldest and Newest are the provider times of the page's events.
	Oldest, Newest time.Time
}

// Result summarizes a run.
type Result struct {
	Provider string
	Key      string
	Since    time.Time
	Until    time.Time
	Types    []string
	// Resumed is set when the run continued an interrupted one.
	Resumed bool
	Pages   int
	// Listed is how many events the API returned.
	Listed int
	// Published were new to the stream; Duplicates were already in it
	// (JetStream dropped them by message id).
	Published  int
	Duplicates int
	// Invalid events were not provider events, or had an id or type
	// syncd cannot store (stream.CheckIdentity), and were left out.
	Invalid int
	Elapsed time.Duration
}

// Run backfills w from src into js, resuming the window's cursor if an
// earlier run of it was interrupted.
func Run(ctx context.Context, cfg Config, pool *pgxpool.Pool, js jetstream.JetStream, src Source, w Window) (res Result, err error) {
	ctx, span := telemetry.Tracer(nil).Start(ctx, "backfill "+src.Name(), trace.WithAttributes(attribute.String("syncd.backfill.key", cfg.Key)))
	defer func() { endRunSpan(span, res, err) }()
	return run(ctx, cfg, pool, js, src, w)
}

func run(ctx context.Context, cfg Config, pool *pgxpool.Pool, js jetstream.JetStream, src Source, w Window) (Result, error) {
	cfg = cfg.withDefaults()
	start := cfg.Now()
	res := Result{Provider: src.Name()}
	if w.Since.IsZero() {
		return res, fmt.Errorf("%w: no start time", ErrWindow)
	}
	key := cfg.Key
	if key == "" {
		key = w.Key()
	}
	res.Key = key
	if len(w.Types) == 0 {
		w.Types = consumers.HandledTypes(src.Name())
	}
	w.Types = normalizeTypes(w.Types)
	if w.Until.IsZero() {
		w.Until = start
	}
	if !w.Until.After(w.Since) {
		return res, fmt.Errorf("%w: until %s is not after since %s", ErrWindow, w.Until.Format(time.RFC3339), w.Since.Format(time.RFC3339))
	}
	err := src.Check(w, start)
	if err != nil {
		return res, err
	}

	q := queries.New()
	locks := cfg.locks
	if locks == nil {
		if locks, err = newLocker(ctx, pool); err != nil {
			return res, err
		}
		defer locks.close()
	}
	unlock, err := locks.lock(ctx, src.Name()+":"+key)
	if err != nil {
		return res, err
	}
	defer unlock()

	row, err := q.BackfillCursorGet(ctx, pool, queries.BackfillCursorGetParams{Provider: src.Name(), WindowKey: key})
	switch err = queries.Check(err); {
	case err == nil && row.CompletedAt == nil:
		stored := Window{Since: row.RangeStart, Until: row.RangeEnd, Types: row.Types}
		if cerr := src.Check(stored, start); cerr != nil {
			// Only a reused key (the reconciler's) can get here: the window
			// it was left in has aged out; start the one asked for.
			cfg.Logger.Warn("interrupted backfill window no longer served, starting afresh", "provider", src.Name(), "key", key, "err", cerr)
			break
		}
		res.Resumed = true
		w = stored
	case err != nil && !errors.Is(err, queries.ErrNotFound):
		return res, fmt.Errorf("read backfill cursor: %w", err)
	}
	if !res.Resumed {
		row, err = q.BackfillCursorStart(ctx, pool, queries.BackfillCursorStartParams{
			Provider: src.Name(), WindowKey: key, RangeStart: w.Since, RangeEnd: w.Until, Types: nonNil(w.Types),
		})
		if err != nil {
			return res, fmt.Errorf("start backfill cursor: %w", err)
		}
	}
	res.Since, res.Until, res.Types = w.Since, w.Until, w.Types

	listings := src.Listings(w.Types)
	log := cfg.Logger.With("provider", src.Name(), "key", key)
	if res.Resumed {
		cursor := ""
		if row.Cursor != nil {
			cursor = *row.Cursor
		}
		log.Info("resuming interrupted backfill", "part", row.Part, "cursor", cursor, "pages_done", row.Pages, "published_before", row.Published)
	}
	for part := int(row.Part); part < len(listings); part++ {
		cursor := ""
		if part == int(row.Part) && row.Cursor != nil {
			cursor = *row.Cursor
		}
		for {
			page, err := src.Page(ctx, w, listings[part], cursor)
			if err != nil {
				res.Elapsed = time.Since(start)
				return res, fmt.Errorf("list %s events (part %d of %d, cursor %q): %w", src.Name(), part+1, len(listings), cursor, err)
			}
			published, dups, refused, err := publish(ctx, js, src.Name(), page.Events, cfg)
			res.Published += published
			res.Duplicates += dups
			res.Invalid += refused
			if err != nil {
				res.Elapsed = time.Since(start)
				return res, err
			}
			res.Pages++
			res.Listed += len(page.Events) + page.Invalid
			res.Invalid += page.Invalid
			next := page.Next
			if len(page.Events)+page.Invalid == 0 || next == cursor {
				// An empty page or a cursor that does not move ends the
				// listing whatever the metadata says: never loop forever.
				next = ""
			}
			nextPart := part
			if next == "" {
				nextPart = part + 1
			}
			if err := q.BackfillCursorAdvance(ctx, pool, queries.BackfillCursorAdvanceParams{
				Provider: src.Name(), WindowKey: key, Part: int32(nextPart), Cursor: strPtr(next), Published: int64(published),
			}); err != nil {
				res.Elapsed = time.Since(start)
				return res, fmt.Errorf("store backfill cursor: %w", err)
			}
			if cfg.OnPage != nil {
				p := Progress{Part: part + 1, Parts: len(listings), Pages: res.Pages, Listed: res.Listed}
				for _, ev := range page.Events {
					if p.Oldest.IsZero() || ev.Envelope.Created.Before(p.Oldest) {
						p.Oldest = ev.Envelope.Created
					}
					if ev.Envelope.Created.After(p.Newest) {
						p.Newest = ev.Envelope.Created
					}
				}
				cfg.OnPage(p)
			}
			log.Debug("backfill page stored", "part", part+1, "events", len(page.Events), "published", published, "duplicates", dups, "next", next)
			if next == "" {
				break
			}
			cursor = next
		}
	}
	if err := q.BackfillCursorComplete(ctx, pool, queries.BackfillCursorCompleteParams{Provider: src.Name(), WindowKey: key}); err != nil {
		return res, fmt.Errorf("complete backfill cursor: %w", err)
	}
	res.Elapsed = time.Since(start)
	log.Info("backfill complete", "pages", res.Pages, "listed", res.Listed, "published", res.Published, "duplicates", res.Duplicates, "resumed", res.Resumed)
	return res, nil
}

// publish stores a page's events and waits for every PubAck: only then may
// the cursor move past them. An event ingest would refuse (its id or type
// could not be stored safely) is left out and counted as refused.
func publish(ctx context.Context, js jetstream.JetStream, source string, evs []Event, cfg Config) (published, dups, refused int, err error) {
	if len(evs) == 0 {
		return 0, 0, 0, nil
	}
	now := cfg.Now()
	futs := make([]jetstream.PubAckFuture, 0, len(evs))
	sent := make([]Event, 0, len(evs))
	for _, ev := range evs {
		endpoint := ""
		if source == stream.SourceStripe && ev.Envelope.Account != "" {
			// What the Connect endpoint would have marked it with.
			endpoint = "connect"
		}
		msg, err := stream.EventMsg(source, ev.Envelope, ev.Body, now, endpoint)
		if err != nil {
			refused++
			cfg.Logger.Warn("backfill event refused", "source", source, "event_id", stream.HeaderValue(ev.Envelope.ID, 128), "type", stream.HeaderValue(ev.Envelope.Type, 128), "err", err)
			continue
		}
		stream.InjectTrace(ctx, msg.Header) // the apply joins the backfill's trace
		f, err := js.PublishMsgAsync(msg, jetstream.WithExpectStream(stream.Webhooks))
		if err != nil {
			return published, dups, refused, fmt.Errorf("publish %s %s: %w", source, ev.Envelope.ID, err)
		}
		futs = append(futs, f)
		sent = append(sent, ev)
	}
	timer := time.NewTimer(cfg.PublishTimeout)
	defer timer.Stop()
	for i, f := range futs {
		select {
		case ack := <-f.Ok():
			if ack.Duplicate {
				dups++
			} else {
				published++
			}
		case err := <-f.Err():
			return published, dups, refused, fmt.Errorf("publish %s %s: %w", source, sent[i].Envelope.ID, err)
		case <-timer.C:
			return published, dups, refused, fmt.Errorf("publish %s %s: no PubAck within %s", source, sent[i].Envelope.ID, cfg.PublishTimeout)
		case <-ctx.Done():
			return published, dups, refused, fmt.Errorf("publish %s %s: %w", source, sent[i].Envelope.ID, ctx.Err())
		}
	}
	return published, dups, refused, nil
}

// normalizeTypes trims, sorts and deduplicates a type filter, so the same
// filter always names the same cursor and splits the same way.
func normalizeTypes(types []string) []string {
	out := make([]string, 0, len(types))
	for _, t := range types {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// locker takes backfill locks (Postgres session advisory locks) on one
// connection it holds; a pgx connection serves one caller at a time, hence
// the mutex.
type locker struct {
	mu   sync.Mutex
	conn *pgxpool.Conn
}

func newLocker(ctx context.Context, pool *pgxpool.Pool) (*locker, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("backfill lock connection: %w", err)
	}
	return &locker{conn: conn}, nil
}

// lock takes key's lock, or fails with ErrBusy when another session holds
// it; unlock gives it back.
func (l *locker) lock(ctx context.Context, key string) (unlock func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	q := queries.New()
	locked, err := q.BackfillLockTry(ctx, l.conn, key)
	if err != nil {
		return nil, fmt.Errorf("backfill lock: %w", err)
	}
	if !locked {
		return nil, fmt.Errorf("backfill %s: %w", key, ErrBusy)
	}
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		_, _ = q.BackfillUnlock(context.WithoutCancel(ctx), l.conn, key)
	}, nil
}

func (l *locker) close() { l.conn.Release() }
