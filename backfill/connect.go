package backfill

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	stripe "github.com/stripe/stripe-go/v76"

	"github.com/syncd/syncd/queries"
	"github.com/syncd/syncd/stream"
)

const (
	// ConnectConcurrencyDefault is how many connected accounts are listed
	// at once: each pages sequentially, so about that many requests are in
	// flight, far below Stripe's read limit (100/s live, 25/s test) and
	// leaving the app its share of it.
	ConnectConcurrencyDefault = 4
	// ConnectConcurrencyMax bounds --concurrency.
	ConnectConcurrencyMax = 16
)

// ErrAccount means a connected account id is not one (`acct_…`).
var ErrAccount = errors.New("not a Stripe connected account id")

var accountID = regexp.MustCompile(`^acct_[A-Za-z0-9]{1,250}$`)

// CheckAccount rejects what is not a connected account id.
func CheckAccount(id string) error {
	if !accountID.MatchString(id) {
		return fmt.Errorf("%w: %q", ErrAccount, id)
	}
	return nil
}

// ConnectConfig configures a backfill of the connected accounts' events.
type ConnectConfig struct {
	// Key names the run's cursors: "<key> connect" for the run, "<key>
	// account=<id>" per account. Empty derives it from the window. A fixed
	// key (the reconciler's) keeps one cursor per account across windows.
	Key string
	// Account, when set, backfills that one account only.
	Account string
	// Concurrency is how many accounts are listed at once
	// (ConnectConcurrencyDefault when 0).
	Concurrency    int
	PublishTimeout time.Duration
	Logger         *slog.Logger
	// OnPage, if set, is called after each page an account stored; calls
	// come from concurrent accounts one at a time.
	OnPage func(account string, p Progress)
	// OnAccount, if set, is called when an account is done (or failed,
	// or had nothing left to do), one call at a time.
	OnAccount func(AccountResult)
	Now       func() time.Time
}

func (c ConnectConfig) withDefaults() ConnectConfig {
	if c.Concurrency == 0 {
		c.Concurrency = ConnectConcurrencyDefault
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func (c ConnectConfig) validate() error {
	if c.Concurrency < 1 || c.Concurrency > ConnectConcurrencyMax {
		return fmt.Errorf("backfill: connect concurrency %d outside 1..%d", c.Concurrency, ConnectConcurrencyMax)
	}
	if c.Account != "" {
		return CheckAccount(c.Account)
	}
	return nil
}

// Origin says where a connected account was learned.
type Origin string

const (
	// OriginStripe: Stripe's account list (GET /v1/accounts).
	OriginStripe Origin = "stripe"
	// OriginSyncd: only stripe_connect_accounts knows it.
	OriginSyncd Origin = "syncd"
	// OriginFlag: named by the operator (--account).
	OriginFlag Origin = "flag"
)

// AccountResult is how one connected account's backfill went.
type AccountResult struct {
	Account string
	Origin  Origin
	Result
	// AlreadyDone: an interrupted run being resumed had finished it.
	AlreadyDone bool
	// Inaccessible: Stripe refused the platform access to the account
	// (deauthorized or gone); nothing can be listed for it.
	Inaccessible bool
	Err          error
}

// ConnectResult summarizes a Connect backfill.
type ConnectResult struct {
	Key          string
	Since, Until time.Time
	// Resumed is set when the run continued an interrupted one.
	Resumed bool
	// FromStripe accounts came from Stripe's list; OnlySyncd were known
	// only from stripe_connect_accounts.
	FromStripe, OnlySyncd int
	// Accounts, in the order they finished.
	Accounts []AccountResult
	// Done finished now; AlreadyDone before an interruption; NotStarted
	// were left when the run stopped.
	Done, AlreadyDone, Failed, Inaccessible, NotStarted int

	Pages, Listed, Published, Duplicates, Invalid int
	Elapsed                                       time.Duration
}

func (r *ConnectResult) add(ar AccountResult) {
	r.Accounts = append(r.Accounts, ar)
	switch {
	case ar.AlreadyDone:
		r.AlreadyDone++
	case ar.Inaccessible:
		r.Inaccessible++
	case ar.Err != nil:
		r.Failed++
	default:
		r.Done++
	}
	r.Pages += ar.Pages
	r.Listed += ar.Listed
	r.Published += ar.Published
	r.Duplicates += ar.Duplicates
	r.Invalid += ar.Invalid
}

// AccountKey names one account's cursor within a run keyed key.
func AccountKey(key, account string) string { return key + " account=" + account }

// ConnectRunKey names the cursor row of a whole Connect run keyed key.
func ConnectRunKey(key string) string { return key + " connect" }

// RunConnect backfills the events of the platform's connected accounts:
// those Stripe lists and those stripe_connect_accounts knows, each paged
// with the Stripe-Account header and published as the Connect webhook
// publishes it, so what webhooks delivered is a duplicate. Each account
// keeps its own cursor; the run's own row in backfill_cursors says which
// accounts an interrupted run had finished, so running it again resumes
// the unfinished accounts only.
func RunConnect(ctx context.Context, cfg ConnectConfig, pool *pgxpool.Pool, js jetstream.JetStream, src *Stripe, w Window) (ConnectResult, error) {
	cfg = cfg.withDefaults()
	start := cfg.Now()
	var res ConnectResult
	if err := cfg.validate(); err != nil {
		return res, err
	}
	if w.Since.IsZero() {
		return res, fmt.Errorf("%w: no start time", ErrWindow)
	}
	if !w.Until.IsZero() && !w.Until.After(w.Since) {
		return res, fmt.Errorf("%w: until %s is not after since %s", ErrWindow, w.Until.Format(time.RFC3339), w.Since.Format(time.RFC3339))
	}
	if err := src.Check(w, start); err != nil {
		return res, err
	}
	key := cfg.Key
	if key == "" {
		key = w.Key()
	}
	res.Key = key
	log := cfg.Logger.With("provider", stream.SourceStripe, "key", key, "connect", true)

	locks, err := newLocker(ctx, pool)
	if err != nil {
		return res, err
	}
	defer locks.close()

	if cfg.Account != "" {
		// One account: its own cursor alone, no run row, so it neither
		// disturbs nor is skipped by a run over all accounts.
		ar := runAccount(ctx, cfg, locks, pool, js, src, w, key, cfg.Account, OriginFlag, log)
		res.Since, res.Until = ar.Since, ar.Until
		res.Resumed = ar.Resumed
		res.add(ar)
		if cfg.OnAccount != nil {
			cfg.OnAccount(ar)
		}
		res.Elapsed = time.Since(start)
		if ar.Inaccessible || ar.Err != nil {
			return res, ar.Err
		}
		return res, nil
	}

	runKey := ConnectRunKey(key)
	unlock, err := locks.lock(ctx, stream.SourceStripe+":"+runKey)
	if err != nil {
		return res, err
	}
	defer unlock()

	// The run's row fixes the window (an open end resolved at the first
	// attempt) and, by its start time, which accounts it already finished.
	q := queries.New()
	row, err := q.BackfillCursorGet(ctx, pool, queries.BackfillCursorGetParams{Provider: stream.SourceStripe, WindowKey: runKey})
	switch err = queries.Check(err); {
	case err == nil && row.CompletedAt == nil:
		stored := Window{Since: row.RangeStart, Until: row.RangeEnd, Types: row.Types}
		if cerr := src.Check(stored, start); cerr != nil {
			log.Warn("interrupted Connect backfill window no longer served, starting afresh", "err", cerr)
			break
		}
		res.Resumed = true
		w = stored
	case err != nil && !errors.Is(err, queries.ErrNotFound):
		return res, fmt.Errorf("read Connect backfill cursor: %w", err)
	}
	if !res.Resumed {
		if w.Until.IsZero() {
			w.Until = start
		}
		w.Types = normalizeTypes(w.Types)
		if row, err = q.BackfillCursorStart(ctx, pool, queries.BackfillCursorStartParams{
			Provider: stream.SourceStripe, WindowKey: runKey, RangeStart: w.Since, RangeEnd: w.Until, Types: nonNil(w.Types),
		}); err != nil {
			return res, fmt.Errorf("start Connect backfill cursor: %w", err)
		}
	}
	res.Since, res.Until = w.Since, w.Until
	runStarted, resumed := row.StartedAt, res.Resumed

	accounts, err := connectedAccounts(ctx, q, pool, src, log)
	if err != nil {
		res.Elapsed = time.Since(start)
		return res, err
	}
	for _, a := range accounts {
		if a.origin == OriginStripe {
			res.FromStripe++
		} else {
			res.OnlySyncd++
		}
	}
	log.Info("Connect backfill", "accounts", len(accounts), "from_stripe", res.FromStripe, "only_syncd", res.OnlySyncd,
		"since", w.Since, "until", w.Until, "resumed", res.Resumed, "concurrency", cfg.Concurrency)

	var (
		mu        sync.Mutex
		wg        sync.WaitGroup
		jobs      = make(chan knownAccount)
		unstarted int
	)
	report := func(ar AccountResult) {
		mu.Lock()
		defer mu.Unlock()
		res.add(ar)
		if cfg.OnAccount != nil {
			cfg.OnAccount(ar)
		}
	}
	pageCfg := cfg
	if cfg.OnPage != nil {
		pageCfg.OnPage = func(account string, p Progress) {
			mu.Lock()
			defer mu.Unlock()
			cfg.OnPage(account, p)
		}
	}
	for range min(cfg.Concurrency, len(accounts)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for a := range jobs {
				if ctx.Err() != nil {
					// Stopping: what was handed out but not begun is left
					// for the resumed run, not failed.
					mu.Lock()
					unstarted++
					mu.Unlock()
					continue
				}
				if resumed {
					done, err := finishedSince(ctx, q, pool, AccountKey(key, a.id), runStarted)
					if err != nil {
						report(AccountResult{Account: a.id, Origin: a.origin, Err: err})
						continue
					}
					if done {
						report(AccountResult{Account: a.id, Origin: a.origin, AlreadyDone: true})
						continue
					}
				}
				report(runAccount(ctx, pageCfg, locks, pool, js, src, w, key, a.id, a.origin, log))
			}
		}()
	}
	sent := 0
feed:
	for _, a := range accounts {
		select {
		case jobs <- a:
			sent++
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	res.NotStarted = len(accounts) - sent + unstarted
	res.Elapsed = time.Since(start)

	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("Connect backfill stopped with %d accounts not started: %w", res.NotStarted, err)
	}
	if res.Failed > 0 {
		var first error
		for _, ar := range res.Accounts {
			if ar.Err != nil && !ar.Inaccessible {
				first = fmt.Errorf("%s: %w", ar.Account, ar.Err)
				break
			}
		}
		return res, fmt.Errorf("%d of %d connected accounts failed (the others are done; run again to resume): %w", res.Failed, len(accounts), first)
	}
	if err := q.BackfillCursorComplete(ctx, pool, queries.BackfillCursorCompleteParams{Provider: stream.SourceStripe, WindowKey: runKey}); err != nil {
		return res, fmt.Errorf("complete Connect backfill cursor: %w", err)
	}
	log.Info("Connect backfill complete", "accounts", len(accounts), "done", res.Done, "already_done", res.AlreadyDone,
		"inaccessible", res.Inaccessible, "listed", res.Listed, "published", res.Published, "duplicates", res.Duplicates)
	return res, nil
}

// runAccount backfills one connected account under its own cursor.
func runAccount(ctx context.Context, cfg ConnectConfig, locks *locker, pool *pgxpool.Pool, js jetstream.JetStream,
	src *Stripe, w Window, key, id string, origin Origin, log *slog.Logger) AccountResult {
	c := Config{Key: AccountKey(key, id), PublishTimeout: cfg.PublishTimeout, Logger: log.With("account", id), Now: cfg.Now, locks: locks}
	if cfg.OnPage != nil {
		c.OnPage = func(p Progress) { cfg.OnPage(id, p) }
	}
	res, err := Run(ctx, c, pool, js, src.ForAccount(id), w)
	ar := AccountResult{Account: id, Origin: origin, Result: res, Err: err}
	var se *stripe.Error
	if errors.As(err, &se) && (se.HTTPStatusCode == 403 || se.Code == stripe.ErrorCodeAccountInvalid) {
		ar.Inaccessible = true
		log.Warn("connected account not accessible to the platform, skipped", "account", id, "origin", origin, "err", err)
	} else if err != nil && ctx.Err() == nil {
		log.Warn("connected account backfill failed; run again to resume it", "account", id, "err", err)
	}
	return ar
}

type knownAccount struct {
	id     string
	origin Origin
}

// connectedAccounts merges Stripe's account list with the accounts
// syncd's mirror knows, sorted so runs go through them in the same order.
func connectedAccounts(ctx context.Context, q *queries.Queries, pool *pgxpool.Pool, src *Stripe, log *slog.Logger) ([]knownAccount, error) {
	listed, err := src.Accounts(ctx)
	if err != nil {
		return nil, err
	}
	known, err := q.StripeConnectAccountListConnected(ctx, pool)
	if err != nil {
		return nil, fmt.Errorf("read stripe_connect_accounts: %w", err)
	}
	seen := map[string]Origin{}
	for _, id := range listed {
		seen[id] = OriginStripe
	}
	for _, id := range known {
		if _, ok := seen[id]; !ok {
			seen[id] = OriginSyncd
		}
	}
	out := make([]knownAccount, 0, len(seen))
	for id, o := range seen {
		if err := CheckAccount(id); err != nil {
			// It would end up in a header and a cursor key.
			log.Warn("skipping connected account with a malformed id", "account", id, "origin", o)
			continue
		}
		out = append(out, knownAccount{id: id, origin: o})
	}
	slices.SortFunc(out, func(a, b knownAccount) int { return strings.Compare(a.id, b.id) })
	return out, nil
}

// finishedSince reports whether the account's cursor completed at or
// after t: the interrupted run being resumed had done it.
func finishedSince(ctx context.Context, q *queries.Queries, pool *pgxpool.Pool, key string, t time.Time) (bool, error) {
	row, err := q.BackfillCursorGet(ctx, pool, queries.BackfillCursorGetParams{Provider: stream.SourceStripe, WindowKey: key})
	switch err = queries.Check(err); {
	case errors.Is(err, queries.ErrNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("read backfill cursor: %w", err)
	}
	return row.CompletedAt != nil && !row.CompletedAt.Before(t), nil
}
