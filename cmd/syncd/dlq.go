package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/syncd/syncd/deadletter"
)

const dlqUsage = `usage: syncd dlq <subcommand> [flags]

subcommands:
  list                     table of dead letters (--json for JSON)
  show SEQ                 one dead letter: headers and pretty-printed payload
  retry SEQ…|--all         republish to the original subject, then remove (--dry-run)
  purge SEQ…|--all --yes   remove for good

filters (list, and retry/purge with --all):
  --source workos|stripe   --type user.created   --error SUBSTRING
  --since/--until          RFC 3339 (2026-01-15T12:00:00Z), a date, or a duration ago (90m, 24h, 7d)

Run 'syncd dlq <subcommand> -h' for all flags.`

func runDLQ(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, dlqUsage)
		return usageError("want a subcommand: list, show, retry or purge")
	}
	switch args[0] {
	case "list":
		return runDLQList(ctx, args[1:], stdout, stderr)
	case "show":
		return runDLQShow(ctx, args[1:], stdout, stderr)
	case "retry":
		return runDLQRetry(ctx, args[1:], stdout, stderr)
	case "purge":
		return runDLQPurge(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stderr, dlqUsage)
		return flag.ErrHelp
	}
	if strings.HasPrefix(args[0], "-") {
		return usageError("want a subcommand first: syncd dlq list|show|retry|purge [flags], not %q", args[0])
	}
	return usageError("unknown subcommand %q: want list, show, retry or purge", args[0])
}

// dlqFlags are the flags the dlq subcommands share.
type dlqFlags struct {
	common
	source, typ, errSub string
	since, until        string
}

func (d *dlqFlags) register(fs *flag.FlagSet, filters bool) {
	d.common.register(fs)
	if filters {
		declare(fs).String(&d.source, "source", "", "", "only this source: workos or stripe")
		declare(fs).String(&d.typ, "type", "", "", "only this event type, e.g. user.created")
		declare(fs).String(&d.since, "since", "", "", "dead-lettered at or after: RFC 3339, a date, or a duration ago (24h, 7d)")
		declare(fs).String(&d.until, "until", "", "", "dead-lettered at or before: RFC 3339, a date, or a duration ago")
		declare(fs).String(&d.errSub, "error", "", "", "error message contains this, ignoring case")
	}
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
	log, err := d.logger(stderr)
	if err != nil {
		return nil, nil, err
	}
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

// parseArgs parses flags that may come before or after the positional
// arguments (`retry 12 13 --dry-run`), which flag.Parse alone stops at.
func parseArgs(fs *flag.FlagSet, args []string, stderr io.Writer) ([]string, error) {
	var pos []string
	// The environment first, once: applied again between positionals it
	// would undo the flags given before them.
	if err := applyEnv(fs, stderr); err != nil {
		return nil, err
	}
	for {
		if err := parseArgsOnly(fs, args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos, args = append(pos, args[0]), args[1:]
	}
}

func runDLQList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var d dlqFlags
	var asJSON bool
	fs := flag.NewFlagSet("dlq list", flag.ContinueOnError)
	d.register(fs, true)
	declare(fs).Bool(&asJSON, "json", "", false, "print JSON (an array of objects) instead of a table")
	pos, err := parseArgs(fs, args, stderr)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("unexpected argument %q (list takes filters; to see one dead letter use: syncd dlq show SEQ)", pos[0])
	}
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
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(letters); err != nil {
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

func runDLQShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var d dlqFlags
	fs := flag.NewFlagSet("dlq show", flag.ContinueOnError)
	d.register(fs, false)
	pos, err := parseArgs(fs, args, stderr)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("want exactly one sequence: syncd dlq show SEQ")
	}
	seqs, err := parseSeqs(pos)
	if err != nil {
		return err
	}
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
	all, dryRun bool
}

func (s *selectFlags) register(fs *flag.FlagSet) {
	s.dlqFlags.register(fs, true)
	declare(fs).Bool(&s.all, "all", "", false, "every dead letter the filters select")
	declare(fs).Bool(&s.dryRun, "dry-run", "", false, "show what would be done, change nothing")
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

// prepare parses and checks a retry or purge command, then opens
// DEADLETTER and selects the letters it names; closeConn releases it.
func (s *selectFlags) prepare(ctx context.Context, fs *flag.FlagSet, args []string, op string, stderr io.Writer) (*deadletter.Store, []deadletter.Letter, func(), error) {
	pos, err := parseArgs(fs, args, stderr)
	if err != nil {
		return nil, nil, nil, err
	}
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

func runDLQRetry(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var s selectFlags
	fs := flag.NewFlagSet("dlq retry", flag.ContinueOnError)
	s.register(fs)
	store, letters, closeConn, err := s.prepare(ctx, fs, args, "retry", stderr)
	if err != nil {
		return err
	}
	defer closeConn()
	if s.dryRun {
		fmt.Fprintf(stdout, "dry run: would retry %d dead letter(s) into WEBHOOKS:\n", len(letters))
		writeTable(stdout, letters)
	}
	bar := newProgressLine(stderr, s.dryRun)
	sum := store.RetryAll(ctx, letters, deadletter.Options{DryRun: s.dryRun, Progress: bar.count("retrying")})
	bar.done()
	return summarize(stdout, sum, "retried", "republished to their original subjects; the consumer applies them", "still in DEADLETTER")
}

func runDLQPurge(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var s selectFlags
	var yes bool
	fs := flag.NewFlagSet("dlq purge", flag.ContinueOnError)
	s.register(fs)
	declare(fs).Bool(&yes, "yes", "", false, "confirm: the selected dead letters are removed for good")
	store, letters, closeConn, err := s.prepare(ctx, fs, args, "purge", stderr)
	if err != nil {
		return err
	}
	defer closeConn()
	if s.dryRun {
		fmt.Fprintf(stdout, "dry run: would purge %d dead letter(s):\n", len(letters))
		writeTable(stdout, letters)
		return summarize(stdout, store.PurgeAll(ctx, letters, deadletter.Options{DryRun: true}), "purged", "", "")
	}
	if !yes {
		writeTable(stderr, letters)
		return usageError("purge removes these %d dead letter(s) for good: pass --yes to confirm (or --dry-run); nothing was changed", len(letters))
	}
	bar := newProgressLine(stderr, false)
	sum := store.PurgeAll(ctx, letters, deadletter.Options{Progress: bar.count("purging")})
	bar.done()
	return summarize(stdout, sum, "purged", "", "still in DEADLETTER")
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
