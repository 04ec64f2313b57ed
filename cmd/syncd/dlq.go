package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/syncd/syncd/deadletter"
	"github.com/syncd/syncd/stream"
)

func dlqCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "dlq list|show|retry|purge",
		Short: "inspect and drain dead letters: list, show, retry, purge",
		Long: "Inspect and drain DEADLETTER, where the consumer sets aside the events it could not apply.\n\n" +
			"filters (list, and retry/purge with --all):\n" +
			"  --source workos|stripe   --type user.created   --error SUBSTRING\n" +
			"  --since/--until          RFC 3339 (2026-01-15T12:00:00Z), a date, or a duration ago (90m, 24h, 7d)",
	}
	return group(c, "want a subcommand: list, show, retry or purge",
		func(arg string) error {
			return usageError("unknown subcommand %q: want list, show, retry or purge", arg)
		},
		dlqListCommand(), dlqShowCommand(), dlqRetryCommand(), dlqPurgeCommand())
}

// dlqFlags are the flags the dlq subcommands share.
type dlqFlags struct {
	common
	source, typ, errSub string
	since, until        string
}

func (d *dlqFlags) register(c *cobra.Command, filters bool) {
	d.common.register(c)
	if !filters {
		return
	}
	dc := declare(c)
	dc.String(&d.source, "source", "", "", "only this source: workos or stripe", func(v string) error { return deadletter.Filter{Source: v}.Validate() })
	dc.complete("source", stream.SourceWorkOS, stream.SourceStripe)
	dc.String(&d.typ, "type", "", "", "only this event type, e.g. user.created", func(v string) error { return deadletter.Filter{Type: v}.Validate() })
	dc.String(&d.since, "since", "", "", "dead-lettered at or after: RFC 3339, a date, or a duration ago (24h, 7d)", when)
	dc.String(&d.until, "until", "", "", "dead-lettered at or before: RFC 3339, a date, or a duration ago", when)
	dc.String(&d.errSub, "error", "", "", "error message contains this, ignoring case")
}

// filter turns the filter flags into a deadletter.Filter.
func (d *dlqFlags) filter(now time.Time) (deadletter.Filter, error) {
	f := deadletter.Filter{Source: d.source, Type: d.typ, Error: d.errSub}
	var err error
	if f.Since, err = parseWhen("since", d.since, now); err != nil {
		return f, err
	}
	if f.Until, err = parseWhen("until", d.until, now); err != nil {
		return f, err
	}
	if err := f.Validate(); err != nil {
		return f, usageError("%v", err)
	}
	return f, nil
}

// describe names the filter flags set, for "no match" messages.
func (d *dlqFlags) describe() string {
	var parts []string
	for _, p := range []struct{ name, v string }{{"source", d.source}, {"type", d.typ}, {"since", d.since}, {"until", d.until}, {"error", d.errSub}} {
		if p.v != "" {
			parts = append(parts, fmt.Sprintf("--%s %q", p.name, p.v))
		}
	}
	return strings.Join(parts, " ")
}

// open connects to JetStream and finds DEADLETTER.
func (d *dlqFlags) open(ctx context.Context, stderr io.Writer) (*deadletter.Store, func(), error) {
	log := d.logger(stderr)
	conn, err := d.jetstream(ctx, log, false)
	if err != nil {
		return nil, nil, err
	}
	store, err := deadletter.Open(ctx, conn.JS)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return store, conn.Close, nil
}

// parseSeqs reads DEADLETTER sequences, dropping repeats.
func parseSeqs(args []string) ([]uint64, error) {
	var seqs []uint64
	for _, a := range args {
		n, err := strconv.ParseUint(a, 10, 64)
		if err != nil || n == 0 {
			return nil, usageError("sequence %q: want a positive number (see syncd dlq list)", a)
		}
		if !slices.Contains(seqs, n) {
			seqs = append(seqs, n)
		}
	}
	return seqs, nil
}

func dlqListCommand() *cobra.Command {
	var d dlqFlags
	var asJSON bool
	c := &cobra.Command{
		Use:   "list [filters] [--json]",
		Short: "table of dead letters (--json for JSON)",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError("unexpected argument %q (list takes filters; to see one dead letter use: syncd dlq show SEQ)", args[0])
			}
			return nil
		},
	}
	d.register(c, true)
	declare(c).Bool(&asJSON, "json", "", false, "print JSON (an array of objects) instead of a table")
	c.RunE = action(func(c *cobra.Command, _ []string) error {
		return d.list(c.Context(), asJSON, c.OutOrStdout(), c.ErrOrStderr())
	})
	return c
}

func (d *dlqFlags) list(ctx context.Context, asJSON bool, stdout, stderr io.Writer) error {
	f, err := d.filter(time.Now())
	if err != nil {
		return err
	}
	store, closeConn, err := d.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer closeConn()
	letters, err := store.List(ctx, f)
	if err != nil {
		return err
	}
	if asJSON {
		if letters == nil {
			letters = []deadletter.Letter{}
		}
		if err := writeJSON(stdout, letters); err != nil {
			return err
		}
	} else if len(letters) > 0 {
		writeTable(stdout, letters)
	}
	if len(letters) == 0 {
		if f.IsZero() {
			fmt.Fprintln(stderr, "no dead letters")
			return nil
		}
		return usageError("no dead letters match %s", d.describe())
	}
	return nil
}

func writeTable(w io.Writer, letters []deadletter.Letter) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tSOURCE\tTYPE\tEVENT ID\tCLASS\tERROR")
	for _, l := range letters {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", l.Seq, l.Time.Format(time.RFC3339), cell(l.Source, 20), cell(l.Type, 48), cell(l.EventID, 40), cell(l.Class, 12), cell(l.Error, 100))
	}
	_ = tw.Flush()
}

// cell makes a header value safe for one table cell: one line, no tabs,
// control characters escaped, bounded length.
func cell(s string, n int) string {
	if s == "" {
		return "-"
	}
	s = printable(s)
	if utf8.RuneCountInString(s) > n {
		s = string([]rune(s)[:n-1]) + "…"
	}
	return s
}

func dlqShowCommand() *cobra.Command {
	var d dlqFlags
	c := &cobra.Command{
		Use:   "show SEQ",
		Short: "one dead letter: headers and pretty-printed payload",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError("want exactly one sequence: syncd dlq show SEQ")
			}
			_, err := parseSeqs(args)
			return err
		},
	}
	d.register(c, false)
	c.RunE = action(func(c *cobra.Command, args []string) error {
		return d.show(c.Context(), args, c.OutOrStdout(), c.ErrOrStderr())
	})
	return c
}

func (d *dlqFlags) show(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	seqs, _ := parseSeqs(args) // checked with the arguments
	store, closeConn, err := d.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer closeConn()
	l, err := store.Get(ctx, seqs[0])
	if errors.Is(err, deadletter.ErrNotFound) {
		return usageError("no dead letter with sequence %d (see syncd dlq list)", seqs[0])
	}
	if err != nil {
		return err
	}
	// Everything but the sequence and time comes from the event: escaped.
	fmt.Fprintf(stdout, "Sequence: %d\nTime:     %s\nSubject:  %s\n\nHeaders:\n", l.Seq, l.Time.Format(time.RFC3339Nano), printable(l.Subject))
	keys := make([]string, 0, len(l.Header))
	for k := range l.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range l.Header[k] {
			fmt.Fprintf(stdout, "  %s: %s\n", printable(k), printable(v))
		}
	}
	var pretty bytes.Buffer
	switch {
	case json.Indent(&pretty, l.Data, "", "  ") == nil:
		// JSON strings may still hold DEL and C1 controls raw.
		fmt.Fprintf(stdout, "\nPayload:\n%s\n", printableLines(pretty.String()))
	case utf8.Valid(l.Data):
		fmt.Fprintf(stdout, "\nPayload (not JSON, %d bytes):\n%s\n", len(l.Data), printableLines(string(l.Data)))
	default:
		fmt.Fprintf(stdout, "\nPayload (binary, %d bytes):\n%q\n", len(l.Data), l.Data)
	}
	return nil
}

// selectFlags add the selection of retry and purge: sequences or --all.
type selectFlags struct {
	dlqFlags
	all, dryRun, asJSON bool
}

func (s *selectFlags) register(c *cobra.Command) {
	s.dlqFlags.register(c, true)
	d := declare(c)
	d.Bool(&s.all, "all", "", false, "every dead letter the filters select")
	d.Bool(&s.dryRun, "dry-run", "", false, "show what would be done, change nothing")
	d.Bool(&s.asJSON, "json", "", false, "print the dead letters selected and the outcome as JSON")
}

// check validates the selection without a connection, so bad input fails
// before anything is reached.
func (s *selectFlags) check(cmd string, pos []string) (deadletter.Filter, error) {
	f, err := s.filter(time.Now())
	if err != nil {
		return f, err
	}
	switch {
	case s.all && len(pos) > 0:
		return f, usageError("pass sequences or --all, not both")
	case !s.all && len(pos) == 0:
		return f, usageError("name the dead letters: syncd dlq %s SEQ… or --all (narrowed by --source, --type, --since, --until, --error)", cmd)
	case len(pos) > 0 && !f.IsZero():
		return f, usageError("filters narrow --all; with sequences drop %s", s.describe())
	}
	_, err = parseSeqs(pos)
	return f, err
}

// selection resolves the positional sequences or --all into letters; any
// unknown sequence or an empty match is a usage error before anything is
// changed.
func (s *selectFlags) selection(ctx context.Context, store *deadletter.Store, cmd string, pos []string) ([]deadletter.Letter, error) {
	f, err := s.check(cmd, pos)
	if err != nil {
		return nil, err
	}
	seqs, _ := parseSeqs(pos) // checked above
	letters, err := store.Select(ctx, deadletter.Selection{Seqs: seqs, All: s.all, Filter: f})
	var missing *deadletter.MissingError
	switch {
	case errors.Is(err, deadletter.ErrNoMatch) && f.IsZero():
		return nil, usageError("no dead letters to %s", cmd)
	case errors.Is(err, deadletter.ErrNoMatch):
		return nil, usageError("no dead letters match %s", s.describe())
	case errors.As(err, &missing):
		return nil, usageError("%v (see syncd dlq list); nothing was changed", missing)
	}
	return letters, err
}

// prepare checks a retry or purge command, then opens DEADLETTER and
// selects the letters it names; closeConn releases it.
func (s *selectFlags) prepare(ctx context.Context, pos []string, op string, stderr io.Writer) (*deadletter.Store, []deadletter.Letter, func(), error) {
	if _, err := s.check(op, pos); err != nil {
		return nil, nil, nil, err
	}
	store, closeConn, err := s.open(ctx, stderr)
	if err != nil {
		return nil, nil, nil, err
	}
	letters, err := s.selection(ctx, store, op, pos)
	if err != nil {
		closeConn()
		return nil, nil, nil, err
	}
	return store, letters, closeConn, nil
}

func dlqRetryCommand() *cobra.Command {
	var s selectFlags
	c := &cobra.Command{
		Use:   "retry SEQ…|--all [filters] [--dry-run]",
		Short: "republish to the original subject, then remove",
		Args:  cobra.ArbitraryArgs, // sequences, checked with the selection
	}
	s.register(c)
	c.RunE = action(func(c *cobra.Command, args []string) error {
		return s.retry(c.Context(), args, c.OutOrStdout(), c.ErrOrStderr())
	})
	return c
}

func (s *selectFlags) retry(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	store, letters, closeConn, err := s.prepare(ctx, args, "retry", stderr)
	if err != nil {
		return err
	}
	defer closeConn()
	if s.dryRun && !s.asJSON {
		fmt.Fprintf(stdout, "dry run: would retry %d dead letter(s) into WEBHOOKS:\n", len(letters))
		writeTable(stdout, letters)
	}
	bar := newProgressLine(stderr, s.dryRun)
	sum := store.RetryAll(ctx, letters, deadletter.Options{DryRun: s.dryRun, Progress: bar.count("retrying")})
	bar.done()
	if s.asJSON {
		return summarizeJSON(stdout, letters, sum, "retried", "still in DEADLETTER")
	}
	return summarize(stdout, sum, "retried", "republished to their original subjects; the consumer applies them", "still in DEADLETTER")
}

func dlqPurgeCommand() *cobra.Command {
	var s selectFlags
	var yes bool
	c := &cobra.Command{
		Use:   "purge SEQ…|--all [filters] --yes",
		Short: "remove for good",
		Args:  cobra.ArbitraryArgs, // sequences, checked with the selection
	}
	s.register(c)
	declare(c).Bool(&yes, "yes", "", false, "confirm: the selected dead letters are removed for good")
	c.RunE = action(func(c *cobra.Command, args []string) error {
		return s.purge(c.Context(), args, yes, c.OutOrStdout(), c.ErrOrStderr())
	})
	return c
}

func (s *selectFlags) purge(ctx context.Context, args []string, yes bool, stdout, stderr io.Writer) error {
	store, letters, closeConn, err := s.prepare(ctx, args, "purge", stderr)
	if err != nil {
		return err
	}
	defer closeConn()
	if s.dryRun {
		sum := store.PurgeAll(ctx, letters, deadletter.Options{DryRun: true})
		if s.asJSON {
			return summarizeJSON(stdout, letters, sum, "purged", "")
		}
		fmt.Fprintf(stdout, "dry run: would purge %d dead letter(s):\n", len(letters))
		writeTable(stdout, letters)
		return summarize(stdout, sum, "purged", "", "")
	}
	if !yes {
		writeTable(stderr, letters)
		return usageError("purge removes these %d dead letter(s) for good: pass --yes to confirm (or --dry-run); nothing was changed", len(letters))
	}
	bar := newProgressLine(stderr, false)
	sum := store.PurgeAll(ctx, letters, deadletter.Options{Progress: bar.count("purging")})
	bar.done()
	if s.asJSON {
		return summarizeJSON(stdout, letters, sum, "purged", "still in DEADLETTER")
	}
	return summarize(stdout, sum, "purged", "", "still in DEADLETTER")
}

// outcomeJSON is the --json form of a retry or purge.
type outcomeJSON struct {
	DryRun    bool                `json:"dry_run"`
	Letters   []deadletter.Letter `json:"letters"`
	Total     int                 `json:"total"`
	Succeeded int                 `json:"succeeded"`
	Failed    []string            `json:"failed"`
	Stopped   bool                `json:"stopped"`
}

// summarizeJSON prints the outcome as JSON; failures are the command's
// error, as with summarize.
func summarizeJSON(w io.Writer, letters []deadletter.Letter, sum deadletter.Summary, verb, keptNote string) error {
	j := outcomeJSON{DryRun: sum.DryRun, Letters: letters, Total: sum.Total, Succeeded: sum.Succeeded, Failed: []string{}, Stopped: sum.Stopped}
	for _, err := range sum.Failed {
		j.Failed = append(j.Failed, err.Error())
	}
	if err := writeJSON(w, j); err != nil {
		return err
	}
	return summarize(io.Discard, sum, verb, "", keptNote)
}

// summarize prints the outcome of a retry or purge and turns failures
// into the command's error.
func summarize(w io.Writer, sum deadletter.Summary, verb, okNote, keptNote string) error {
	if sum.DryRun {
		fmt.Fprintf(w, "dry run: %d of %d would be %s; nothing was changed\n", sum.Succeeded, sum.Total, verb)
		for _, err := range sum.Failed {
			fmt.Fprintf(w, "  would fail: %s\n", printable(err.Error()))
		}
		if len(sum.Failed) > 0 {
			return fmt.Errorf("%d of %d would fail", len(sum.Failed), sum.Total)
		}
		return nil
	}
	fmt.Fprintf(w, "%s %d of %d dead letter(s)", verb, sum.Succeeded, sum.Total)
	if okNote != "" && sum.Succeeded > 0 {
		fmt.Fprintf(w, " (%s)", okNote)
	}
	fmt.Fprintln(w)
	for _, err := range sum.Failed {
		fmt.Fprintf(w, "  failed: %s\n", printable(err.Error()))
	}
	notDone := sum.Total - sum.Succeeded - len(sum.Failed)
	switch {
	case len(sum.Failed) > 0:
		return fmt.Errorf("%d of %d not %s (%s)", len(sum.Failed)+notDone, sum.Total, verb, keptNote)
	case sum.Stopped:
		return fmt.Errorf("stopped: %d of %d not %s (%s)", notDone, sum.Total, verb, keptNote)
	}
	return nil
}
