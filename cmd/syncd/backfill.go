package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/syncd/syncd/backfill"
	"github.com/syncd/syncd/service"
	"github.com/syncd/syncd/stream"
)

func backfillCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "backfill workos|stripe --since T [--until T] [--types a,b]",
		Short: "publish a window of a provider's Events API (workos, stripe) into the stream",
		Long: "Pages the provider's Events API and publishes every event of the window into WEBHOOKS,\n" +
			"where the consumers apply it; events webhooks already delivered are duplicates. The cursor\n" +
			"is kept in Postgres: the same command run again after an interruption resumes it.\n\n" +
			"environment: WORKOS_API_KEY, WORKOS_API_URL, STRIPE_API_KEY, STRIPE_API_URL",
	}
	return group(c, "name the provider: syncd backfill workos|stripe --since T",
		func(arg string) error { return usageError("unknown provider %q: want workos or stripe", arg) },
		backfillProviderCommand(stream.SourceWorkOS, "--since T [--until T] [--types a,b]", "backfill the WorkOS Events API (WORKOS_API_KEY)"),
		backfillProviderCommand(stream.SourceStripe, "[--connect [--account acct_…]] --since T [--until T] [--types a,b]",
			"backfill the Stripe Events API (STRIPE_API_KEY); --connect lists the connected accounts' events instead\n"+
				"(each with its Stripe-Account header), as the Connect endpoint would have received them"),
	)
}

// backfillFlags are a backfill's window and how it is listed.
type backfillFlags struct {
	common
	since, until, types string
	pageSize            int
	noProgress, asJSON  bool
	// cn is stripe's only.
	cn connectFlags
}

func backfillProviderCommand(provider, use, short string) *cobra.Command {
	var f backfillFlags
	c := &cobra.Command{Use: provider + " " + use, Short: short, Args: noArgs}
	f.common.register(c)
	d := declare(c)
	d.String(&f.since, "since", "", "", "start of the window, by provider event time (RFC 3339, a date, or a duration ago: 36h, 7d); required", when)
	d.String(&f.until, "until", "", "", "end of the window (same forms); default now", when)
	d.String(&f.types, "types", "", "", "comma-separated event types; default the types syncd applies", eventTypes)
	d.Int(&f.pageSize, "page-size", "", backfill.PageSizeMax, fmt.Sprintf("events per API page, 1 to %d", backfill.PageSizeMax), between(1, backfill.PageSizeMax))
	d.Bool(&f.noProgress, "no-progress", "", false, "no progress line, even on a terminal")
	d.Bool(&f.asJSON, "json", "", false, "print the outcome as JSON (with --connect, each account's too)")
	if provider == stream.SourceStripe {
		f.cn.register(c)
	}
	c.RunE = action(func(c *cobra.Command, _ []string) error {
		return f.run(c.Context(), provider, c.OutOrStdout(), c.ErrOrStderr())
	})
	return c
}

// eventTypes is a comma-separated list of event types.
func eventTypes(v string) error {
	for _, t := range strings.Split(v, ",") {
		if t = strings.TrimSpace(t); strings.ContainsAny(t, " \t\r\n") {
			return fmt.Errorf("%q is not an event type", t)
		}
	}
	return nil
}

func (f *backfillFlags) run(ctx context.Context, provider string, stdout, stderr io.Writer) error {
	src, err := backfillSource(provider, f.pageSize)
	if err != nil {
		return err
	}
	now := time.Now()
	if f.since == "" {
		return usageError("--since is required: the start of the window to backfill")
	}
	w := backfill.Window{}
	if w.Since, err = parseWhen("since", f.since, now); err != nil {
		return err
	}
	if w.Until, err = parseWhen("until", f.until, now); err != nil {
		return err
	}
	if !w.Until.IsZero() && !w.Until.After(w.Since) {
		return usageError("--until %s is not after --since %s", w.Until.Format(time.RFC3339), w.Since.Format(time.RFC3339))
	}
	for _, t := range strings.Split(f.types, ",") {
		if t = strings.TrimSpace(t); t != "" {
			w.Types = append(w.Types, t)
		}
	}
	if err := src.Check(w, now); err != nil {
		return usageError("--since %s: %s", f.since, strings.TrimPrefix(err.Error(), backfill.ErrWindow.Error()+": "))
	}
	log, pool, conn, closeAll, err := f.connect(ctx, stderr)
	if err != nil {
		return err
	}
	defer closeAll()
	if f.cn.on() {
		return f.runConnect(ctx, log, pool, conn.JS, src.(*backfill.Stripe), w, stdout, stderr)
	}

	line := newProgressLine(stderr, f.noProgress)
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
	if f.asJSON {
		if jerr := writeJSON(stdout, resultJSONOf(res)); jerr != nil {
			return jerr
		}
	} else {
		printResult(stdout, res)
	}
	if err != nil {
		// Relative times name a new window each run: spell out the one
		// whose cursor was kept.
		resume := "syncd backfill " + provider + " --since " + w.Since.UTC().Format(time.RFC3339Nano)
		if !w.Until.IsZero() {
			resume += " --until " + w.Until.UTC().Format(time.RFC3339Nano)
		}
		if f.types != "" {
			resume += " --types " + f.types
		}
		return fmt.Errorf("%w\nthe cursor is stored; resume with: %s", err, resume)
	}
	return nil
}

func printResult(stdout io.Writer, res backfill.Result) {
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
}

// connectFlags select the Connect backfill.
type connectFlags struct {
	connect     bool
	account     string
	concurrency int
}

func (f *connectFlags) register(c *cobra.Command) {
	d := declare(c)
	d.Bool(&f.connect, "connect", "", false, "backfill the connected accounts' events (those Stripe lists and those in stripe_connect_accounts) instead of the platform's")
	d.String(&f.account, "account", "", "", "backfill this one connected account (acct_…); implies --connect", func(v string) error {
		if v == "" {
			return nil
		}
		return backfill.CheckAccount(v)
	})
	d.Int(&f.concurrency, "concurrency", "", backfill.ConnectConcurrencyDefault, fmt.Sprintf("--connect: accounts listed at once, 1 to %d", backfill.ConnectConcurrencyMax), between(1, backfill.ConnectConcurrencyMax))
}

func (f *connectFlags) on() bool { return f.connect || f.account != "" }

// runConnect is `backfill stripe --connect`: a line per account as it
// finishes, then the totals (with --json, all of it at the end).
func (f *backfillFlags) runConnect(ctx context.Context, log *slog.Logger, pool *pgxpool.Pool, js jetstream.JetStream,
	src *backfill.Stripe, w backfill.Window, stdout, stderr io.Writer) error {
	cn, types := f.cn, f.types
	line := newProgressLine(stderr, f.noProgress)
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
			if !f.asJSON {
				fmt.Fprintln(stdout, accountLine(ar))
			}
		},
	}, pool, js, src, w)
	line.done()
	switch {
	case errors.Is(err, backfill.ErrWindow):
		return usageError("%v", err)
	case errors.Is(err, backfill.ErrBusy):
		return err
	}
	if f.asJSON {
		if jerr := writeJSON(stdout, connectJSONOf(res)); jerr != nil {
			return jerr
		}
	} else {
		printConnectResult(stdout, res, cn.account != "")
	}
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

func printConnectResult(stdout io.Writer, res backfill.ConnectResult, oneAccount bool) {
	state := ""
	if res.Resumed {
		state = " (resumed)"
	}
	fmt.Fprintf(stdout, "backfill stripe --connect %s..%s%s: ", res.Since.Format(time.RFC3339), res.Until.Format(time.RFC3339), state)
	if !oneAccount {
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
}

// resultJSON is the --json form of a backfill.
type resultJSON struct {
	Provider       string    `json:"provider,omitempty"`
	Since          time.Time `json:"since"`
	Until          time.Time `json:"until"`
	Resumed        bool      `json:"resumed"`
	Pages          int       `json:"pages"`
	Listed         int       `json:"listed"`
	Published      int       `json:"published"`
	Duplicates     int       `json:"duplicates"`
	Invalid        int       `json:"invalid"`
	ElapsedSeconds float64   `json:"elapsed_seconds"`
}

func resultJSONOf(r backfill.Result) resultJSON {
	return resultJSON{Provider: r.Provider, Since: r.Since, Until: r.Until, Resumed: r.Resumed, Pages: r.Pages, Listed: r.Listed,
		Published: r.Published, Duplicates: r.Duplicates, Invalid: r.Invalid, ElapsedSeconds: r.Elapsed.Seconds()}
}

// connectJSON is the --json form of a Connect backfill.
type connectJSON struct {
	resultJSON
	FromStripe   int           `json:"from_stripe"`
	OnlySyncd    int           `json:"only_syncd"`
	Done         int           `json:"done"`
	AlreadyDone  int           `json:"already_done"`
	Failed       int           `json:"failed"`
	Inaccessible int           `json:"inaccessible"`
	NotStarted   int           `json:"not_started"`
	Accounts     []accountJSON `json:"accounts"`
}

type accountJSON struct {
	Account string `json:"account"`
	Origin  string `json:"origin"`
	resultJSON
	AlreadyDone  bool   `json:"already_done"`
	Inaccessible bool   `json:"inaccessible"`
	Error        string `json:"error,omitempty"`
}

func connectJSONOf(r backfill.ConnectResult) connectJSON {
	j := connectJSON{
		resultJSON: resultJSON{Since: r.Since, Until: r.Until, Resumed: r.Resumed, Pages: r.Pages, Listed: r.Listed, Published: r.Published,
			Duplicates: r.Duplicates, Invalid: r.Invalid, ElapsedSeconds: r.Elapsed.Seconds()},
		FromStripe: r.FromStripe, OnlySyncd: r.OnlySyncd, Done: r.Done, AlreadyDone: r.AlreadyDone, Failed: r.Failed,
		Inaccessible: r.Inaccessible, NotStarted: r.NotStarted, Accounts: []accountJSON{},
	}
	for _, a := range r.Accounts {
		aj := accountJSON{Account: a.Account, Origin: string(a.Origin), resultJSON: resultJSONOf(a.Result), AlreadyDone: a.AlreadyDone, Inaccessible: a.Inaccessible}
		if a.Err != nil {
			aj.Error = a.Err.Error()
		}
		j.Accounts = append(j.Accounts, aj)
	}
	return j
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

func (r *reconcile) register(c *cobra.Command) {
	d := declare(c)
	d.Duration(&r.every, "reconcile-every", "SYNCD_RECONCILE_EVERY", 0, "backfill from the providers' Events APIs on this schedule; 0 is off; needs WORKOS_API_KEY and/or STRIPE_API_KEY", offOrAtLeast(service.ReconcileEveryMin))
	d.Duration(&r.window, "reconcile-window", "SYNCD_RECONCILE_WINDOW", 0, "trailing window each reconcile covers; default twice --reconcile-every, at least 1h", notNegative)
	d.Bool(&r.connect, "reconcile-connect", "SYNCD_RECONCILE_CONNECT", false, "each reconcile also backfills the Stripe connected accounts' events, as backfill stripe --connect; needs STRIPE_API_KEY")
}

// setup validates the flags and builds the sources; haveDB says whether
// serve opens Postgres, where the cursors live.
func (r *reconcile) setup(haveDB bool) error {
	switch {
	case r.every == 0 && r.connect:
		return badFlag("reconcile-connect", " needs --reconcile-every: it is part of the scheduled reconcile")
	case r.every == 0:
		return nil
	case !haveDB:
		return badFlag("reconcile-every", " needs DATABASE_URL: the backfill cursors live in Postgres")
	}
	if r.window == 0 {
		r.window = max(2*r.every, service.ReconcileWindowMin)
	}
	if r.window < r.every {
		return badFlag("reconcile-window", " %s is shorter than --reconcile-every %s: events would fall between runs", r.window, r.every)
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
			return badFlag("reconcile-window", " %s: %s", r.window, strings.TrimPrefix(err.Error(), backfill.ErrWindow.Error()+": "))
		}
		r.sources = append(r.sources, src)
	}
	if len(r.sources) == 0 {
		return badFlag("reconcile-every", " needs WORKOS_API_KEY or STRIPE_API_KEY (or both)")
	}
	if r.connect && r.stripe() == nil {
		return badFlag("reconcile-connect", " needs STRIPE_API_KEY")
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
