package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncd/syncd/backfill"
	"github.com/syncd/syncd/service"
	"github.com/syncd/syncd/stream"
)

func runBackfill(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	var since, until, types string
	var pageSize int
	var noProgress bool
	var cn connectFlags
	fs := flag.NewFlagSet("backfill", flag.ContinueOnError)
	c.register(fs)
	cn.register(fs)
	declare(fs).String(&since, "since", "", "", "start of the window, by provider event time (RFC 3339, a date, or a duration ago: 36h, 7d); required")
	declare(fs).String(&until, "until", "", "", "end of the window (same forms); default now")
	declare(fs).String(&types, "types", "", "", "comma-separated event types; default the types syncd applies")
	declare(fs).Int(&pageSize, "page-size", "", 100, "events per API page, 1..100")
	declare(fs).Bool(&noProgress, "no-progress", "", false, "no progress line, even on a terminal")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: syncd backfill workos|stripe --since T [--until T] [--types a,b]\n"+
			"       syncd backfill stripe --connect [--account acct_…] --since T [--until T] [--types a,b]\n\n"+
			"Pages the provider's Events API and publishes every event of the window into WEBHOOKS,\n"+
			"where the consumers apply it; events webhooks already delivered are duplicates. The cursor\n"+
			"is kept in Postgres: the same command run again after an interruption resumes it.\n"+
			"--connect lists the connected accounts' events instead (each with its Stripe-Account header),\n"+
			"as the Connect endpoint would have received them.\n\n"+
			"environment: WORKOS_API_KEY, WORKOS_API_URL, STRIPE_API_KEY, STRIPE_API_URL\n\nflags:")
		fs.PrintDefaults()
	}
	// The provider comes first (`backfill workos --since …`); flags before
	// it are accepted too.
	provider := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		provider, args = args[0], args[1:]
	}
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	rest := fs.Args()
	if provider == "" && len(rest) > 0 {
		provider, rest = rest[0], rest[1:]
	}
	if len(rest) > 0 {
		return usageError("unexpected argument %q (flags go after the provider)", rest[0])
	}
	if provider == "" {
		return usageError("name the provider: syncd backfill workos|stripe --since T")
	}
	src, err := backfillSource(provider, pageSize)
	if err != nil {
		return err
	}
	now := time.Now()
	if since == "" {
		return usageError("--since is required: the start of the window to backfill")
	}
	w := backfill.Window{}
	if w.Since, err = parseWhen("since", since, now); err != nil {
		return err
	}
	if w.Until, err = parseWhen("until", until, now); err != nil {
		return err
	}
	if !w.Until.IsZero() && !w.Until.After(w.Since) {
		return usageError("--until %s is not after --since %s", w.Until.Format(time.RFC3339), w.Since.Format(time.RFC3339))
	}
	for _, t := range strings.Split(types, ",") {
		if t = strings.TrimSpace(t); t != "" {
			if strings.ContainsAny(t, " \t\r\n") {
				return usageError("--types: %q is not an event type", t)
			}
			w.Types = append(w.Types, t)
		}
	}
	if err := src.Check(w, now); err != nil {
		return usageError("--since %s: %s", since, strings.TrimPrefix(err.Error(), backfill.ErrWindow.Error()+": "))
	}
	if err := cn.check(provider); err != nil {
		return err
	}
	log, pool, conn, closeAll, err := c.connect(ctx, stderr)
	if err != nil {
		return err
	}
	defer closeAll()
	if cn.on() {
		return runBackfillConnect(ctx, cn, log, pool, conn.JS, src.(*backfill.Stripe), w, types, noProgress, stdout, stderr)
	}

	line := newProgressLine(stderr, noProgress)
	res, err := backfill.Run(ctx, backfill.Config{
		Logger: log,
		OnPage: func(p backfill.Progress) {
			line.set(func() string {
				part := ""
				if p.Parts > 1 {
					part = fmt.Sprintf("listing %d/%d  ", p.Part, p.Parts)
				}
				return fmt.Sprintf("%s%d pages  %d events  at %s", part, p.Pages, p.Listed, p.Oldest.Format(time.RFC3339))
			})
		},
	}, pool, conn.JS, src, w)
	line.done()
	switch {
	case errors.Is(err, backfill.ErrWindow):
		return usageError("%v", err)
	case errors.Is(err, backfill.ErrBusy):
		return err
	}
	state := ""
	if res.Resumed {
		state = " (resumed)"
	}
	fmt.Fprintf(stdout, "backfill %s %s..%s%s: %d pages, %d events listed, %d published, %d already in the stream",
		printable(res.Provider), res.Since.Format(time.RFC3339), res.Until.Format(time.RFC3339), state, res.Pages, res.Listed, res.Published, res.Duplicates)
	if res.Invalid > 0 {
		fmt.Fprintf(stdout, ", %d not events or refused (left out; see the log)", res.Invalid)
	}
	fmt.Fprintf(stdout, " in %s\n", res.Elapsed.Round(time.Millisecond))
	if err != nil {
		// Relative times name a new window each run: spell out the one
		// whose cursor was kept.
		resume := "syncd backfill " + provider + " --since " + w.Since.UTC().Format(time.RFC3339Nano)
		if !w.Until.IsZero() {
			resume += " --until " + w.Until.UTC().Format(time.RFC3339Nano)
		}
		if types != "" {
			resume += " --types " + types
		}
		return fmt.Errorf("%w\nthe cursor is stored; resume with: %s", err, resume)
	}
	return nil
}

// connectFlags select the Connect backfill.
type connectFlags struct {
	connect     bool
	account     string
	concurrency int
}

func (f *connectFlags) register(fs *flag.FlagSet) {
	declare(fs).Bool(&f.connect, "connect", "", false, "stripe: backfill the connected accounts' events (those Stripe lists and those in stripe_connect_accounts) instead of the platform's")
	declare(fs).String(&f.account, "account", "", "", "stripe: backfill this one connected account (acct_…); implies --connect")
	declare(fs).Int(&f.concurrency, "concurrency", "", backfill.ConnectConcurrencyDefault, fmt.Sprintf("--connect: accounts listed at once, 1..%d", backfill.ConnectConcurrencyMax))
}

func (f *connectFlags) on() bool { return f.connect || f.account != "" }

func (f *connectFlags) check(provider string) error {
	switch {
	case !f.on():
		return nil
	case provider != stream.SourceStripe:
		return usageError("--connect and --account are for stripe only (Stripe Connect accounts)")
	case f.concurrency < 1 || f.concurrency > backfill.ConnectConcurrencyMax:
		return usageError("--concurrency %d: want 1..%d", f.concurrency, backfill.ConnectConcurrencyMax)
	case f.account != "":
		if err := backfill.CheckAccount(f.account); err != nil {
			return usageError("--account %q: want a connected account id, acct_…", f.account)
		}
	}
	return nil
}

// runBackfillConnect is `backfill stripe --connect`: a line per account
// as it finishes, then the totals.
func runBackfillConnect(ctx context.Context, cn connectFlags, log *slog.Logger, pool *pgxpool.Pool, js jetstream.JetStream,
	src *backfill.Stripe, w backfill.Window, types string, noProgress bool, stdout, stderr io.Writer) error {
	line := newProgressLine(stderr, noProgress)
	accounts := 0
	res, err := backfill.RunConnect(ctx, backfill.ConnectConfig{
		Account:     cn.account,
		Concurrency: cn.concurrency,
		Logger:      log,
		OnPage: func(account string, p backfill.Progress) {
			line.set(func() string {
				return fmt.Sprintf("%d accounts done  %s at %s", accounts, account, p.Oldest.Format(time.RFC3339))
			})
		},
		OnAccount: func(ar backfill.AccountResult) {
			accounts++
			line.done()
			fmt.Fprintln(stdout, accountLine(ar))
		},
	}, pool, js, src, w)
	line.done()
	switch {
	case errors.Is(err, backfill.ErrWindow):
		return usageError("%v", err)
	case errors.Is(err, backfill.ErrBusy):
		return err
	}
	state := ""
	if res.Resumed {
		state = " (resumed)"
	}
	fmt.Fprintf(stdout, "backfill stripe --connect %s..%s%s: ", res.Since.Format(time.RFC3339), res.Until.Format(time.RFC3339), state)
	if cn.account == "" {
		fmt.Fprintf(stdout, "%d accounts (%d listed by Stripe, %d known only to syncd): %d done", res.FromStripe+res.OnlySyncd, res.FromStripe, res.OnlySyncd, res.Done)
		for _, n := range []struct {
			n    int
			what string
		}{{res.AlreadyDone, "done before the interruption"}, {res.Failed, "failed"}, {res.Inaccessible, "not accessible"}, {res.NotStarted, "not started"}} {
			if n.n > 0 {
				fmt.Fprintf(stdout, ", %d %s", n.n, n.what)
			}
		}
		fmt.Fprint(stdout, "; ")
	}
	fmt.Fprintf(stdout, "%d pages, %d events listed, %d published, %d already in the stream", res.Pages, res.Listed, res.Published, res.Duplicates)
	if res.Invalid > 0 {
		fmt.Fprintf(stdout, ", %d not events (left out)", res.Invalid)
	}
	fmt.Fprintf(stdout, " in %s\n", res.Elapsed.Round(time.Millisecond))
	if err != nil {
		if errors.Is(err, backfill.ErrAccount) {
			return usageError("%v", err)
		}
		resume := "syncd backfill stripe --connect --since " + w.Since.UTC().Format(time.RFC3339Nano)
		if cn.account != "" {
			resume = "syncd backfill stripe --account " + cn.account + " --since " + w.Since.UTC().Format(time.RFC3339Nano)
		}
		if !w.Until.IsZero() {
			resume += " --until " + w.Until.UTC().Format(time.RFC3339Nano)
		}
		if types != "" {
			resume += " --types " + types
		}
		return fmt.Errorf("%w\nthe cursors are stored per account; resume with: %s", err, resume)
	}
	return nil
}

// accountLine is one account's outcome.
func accountLine(ar backfill.AccountResult) string {
	head := fmt.Sprintf("  %s (%s)", ar.Account, ar.Origin)
	switch {
	case ar.AlreadyDone:
		return head + ": done before the interruption"
	case ar.Inaccessible:
		return head + ": not accessible to the platform (deauthorized or deleted), skipped"
	}
	state := ""
	if ar.Resumed {
		state = " (resumed)"
	}
	s := fmt.Sprintf("%s%s: %d pages, %d events listed, %d published, %d already in the stream", head, state, ar.Pages, ar.Listed, ar.Published, ar.Duplicates)
	if ar.Err != nil {
		s += "; FAILED: " + ar.Err.Error()
	}
	return s
}

// backfillSource builds a provider's Events API client from the
// environment: WORKOS_API_KEY / WORKOS_API_URL, STRIPE_API_KEY /
// STRIPE_API_URL.
func backfillSource(provider string, pageSize int) (backfill.Source, error) {
	if pageSize < 1 || pageSize > 100 {
		return nil, usageError("--page-size %d: want 1..100", pageSize)
	}
	switch provider {
	case stream.SourceWorkOS:
		key := env("WORKOS_API_KEY", "")
		if key == "" {
			return nil, usageError("WORKOS_API_KEY is not set: backfill workos needs a WorkOS API key")
		}
		src, err := backfill.NewWorkOS(backfill.WorkOSConfig{APIKey: key, BaseURL: env("WORKOS_API_URL", ""), PageSize: pageSize})
		if err != nil {
			return nil, usageError("WORKOS_API_URL %q is not an http(s) URL", env("WORKOS_API_URL", ""))
		}
		return src, nil
	case stream.SourceStripe:
		key := env("STRIPE_API_KEY", "")
		if key == "" {
			return nil, usageError("STRIPE_API_KEY is not set: backfill stripe needs a Stripe secret key")
		}
		src, err := backfill.NewStripe(backfill.StripeConfig{APIKey: key, BaseURL: env("STRIPE_API_URL", ""), PageSize: pageSize})
		if err != nil {
			return nil, usageError("STRIPE_API_URL %q is not an http(s) URL", env("STRIPE_API_URL", ""))
		}
		return src, nil
	}
	return nil, usageError("unknown provider %q: want workos or stripe", provider)
}

// reconcile configures the backfill of each configured provider over a
// trailing window that `syncd serve` runs on a schedule, so a webhook that
// never arrived is applied anyway.
type reconcile struct {
	every, window time.Duration
	// connect adds the Stripe connected accounts' events to each run.
	connect bool
	sources []backfill.Source
}

func (r *reconcile) register(fs *flag.FlagSet) {
	declare(fs).Duration(&r.every, "reconcile-every", "SYNCD_RECONCILE_EVERY", 0, "backfill from the providers' Events APIs on this schedule; 0 is off; needs WORKOS_API_KEY and/or STRIPE_API_KEY", notNegative)
	declare(fs).Duration(&r.window, "reconcile-window", "SYNCD_RECONCILE_WINDOW", 0, "trailing window each reconcile covers; default twice --reconcile-every, at least 1h", notNegative)
	declare(fs).Bool(&r.connect, "reconcile-connect", "SYNCD_RECONCILE_CONNECT", false, "each reconcile also backfills the Stripe connected accounts' events, as backfill stripe --connect; needs STRIPE_API_KEY")
}

// setup validates the flags and builds the sources; haveDB says whether
// serve opens Postgres, where the cursors live.
func (r *reconcile) setup(haveDB bool) error {
	switch {
	case r.every == 0 && r.connect:
		return usageError("--reconcile-connect needs --reconcile-every: it is part of the scheduled reconcile")
	case r.every == 0:
		return nil
	case r.every < time.Minute:
		return usageError("--reconcile-every %s: want at least 1m (or 0 for off)", r.every)
	case !haveDB:
		return usageError("--reconcile-every needs DATABASE_URL: the backfill cursors live in Postgres")
	}
	if r.window == 0 {
		r.window = max(2*r.every, time.Hour)
	}
	if r.window < r.every {
		return usageError("--reconcile-window %s is shorter than --reconcile-every %s: events would fall between runs", r.window, r.every)
	}
	for _, p := range []string{stream.SourceWorkOS, stream.SourceStripe} {
		if env(strings.ToUpper(p)+"_API_KEY", "") == "" {
			continue
		}
		src, err := backfillSource(p, 100)
		if err != nil {
			return err
		}
		if err := src.Check(backfill.Window{Since: time.Now().Add(-r.window)}, time.Now()); err != nil {
			return usageError("--reconcile-window %s: %s", r.window, strings.TrimPrefix(err.Error(), backfill.ErrWindow.Error()+": "))
		}
		r.sources = append(r.sources, src)
	}
	if len(r.sources) == 0 {
		return usageError("--reconcile-every needs WORKOS_API_KEY or STRIPE_API_KEY (or both)")
	}
	if r.connect && r.stripe() == nil {
		return usageError("--reconcile-connect needs STRIPE_API_KEY")
	}
	return nil
}

// config is the service's reconcile schedule.
func (r *reconcile) config() service.Reconcile {
	return service.Reconcile{Every: r.every, Window: r.window, Connect: r.connect, Sources: r.sources}
}

func (r *reconcile) stripe() *backfill.Stripe {
	for _, s := range r.sources {
		if s, ok := s.(*backfill.Stripe); ok {
			return s
		}
	}
	return nil
}
