package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/syncd/syncd/queries"
	"github.com/syncd/syncd/retention"
)

// auditFlags: whether the applier writes the audit trail, and how long
// serve's retention keeps it.
type auditFlags struct {
	mode      string
	retention string
	off       bool
	keep      time.Duration
}

func (a *auditFlags) registerMode(fs *flag.FlagSet) {
	declare(fs).String(&a.mode, "audit", "SYNCD_AUDIT", "on", "on or off: write audit_logs, one row per change applied")
}

func (a *auditFlags) register(fs *flag.FlagSet) {
	a.registerMode(fs)
	declare(fs).String(&a.retention, "audit-retention", "SYNCD_AUDIT_RETENTION", "365d", "keep audit_logs rows this long: days (365d) or a duration (8760h)")
}

var daysDuration = regexp.MustCompile(`^(\d+)d(.*)$`)

// setup checks the flags; retention is "" when only the mode is registered.
func (a *auditFlags) setup() error {
	switch strings.ToLower(strings.TrimSpace(a.mode)) {
	case "on", "true", "1":
	case "off", "false", "0":
		a.off = true
	default:
		return usageError("--audit %q: want on or off", a.mode)
	}
	if a.retention == "" {
		return nil
	}
	v := strings.TrimSpace(a.retention)
	var d time.Duration
	if m := daysDuration.FindStringSubmatch(v); m != nil {
		days, err := strconv.Atoi(m[1])
		if err != nil || days > 36500 {
			return usageError("--audit-retention %q: want days (365d) or a duration (8760h)", a.retention)
		}
		d = time.Duration(days) * 24 * time.Hour
		if m[2] != "" {
			extra, err := time.ParseDuration(m[2])
			if err != nil {
				return usageError("--audit-retention %q: want days (365d) or a duration (8760h)", a.retention)
			}
			d += extra
		}
	} else {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return usageError("--audit-retention %q: want days (365d) or a duration (8760h)", a.retention)
		}
	}
	if d < time.Hour {
		return usageError("--audit-retention %q: want at least 1h", a.retention)
	}
	a.keep = d
	return nil
}

// auditListMax bounds one listing.
const auditListMax = 10000

func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	var resource, org, event, since, until string
	var limit int
	var asJSON bool
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	c.register(fs)
	declare(fs).String(&resource, "resource", "", "", "only this resource: TYPE (users, organizations, user_org_memberships, meetings, payment_transfers) or TYPE:ID (users:user_01H…)")
	declare(fs).String(&org, "org", "", "", "only changes of this organization (WorkOS organization id)")
	declare(fs).String(&event, "event", "", "", "only changes made by this event id")
	declare(fs).String(&since, "since", "", "", "changes at or after: RFC 3339 time, a date, or a duration ago (36h, 7d)")
	declare(fs).String(&until, "until", "", "", "changes before (same forms as --since)")
	declare(fs).Int(&limit, "limit", "", 100, fmt.Sprintf("newest rows shown, at most (1 to %d)", auditListMax))
	declare(fs).Bool(&asJSON, "json", "", false, "one JSON object per line instead of a table")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: syncd audit [--resource TYPE[:ID]] [--org ORG] [--event ID] [--since T] [--until T] [--json]\n\n"+
			"Lists the changes syncd applied (audit_logs), newest first.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("unexpected argument %q", fs.Arg(0))
	}
	if limit < 1 || limit > auditListMax {
		return usageError("--limit %d: want 1 to %d", limit, auditListMax)
	}
	p := queries.AuditLogListParams{MaxRows: int32(limit)}
	if resource != "" {
		typ, id, hasID := strings.Cut(resource, ":")
		if typ == "" || (hasID && id == "") {
			return usageError("--resource %q: want TYPE or TYPE:ID", resource)
		}
		p.ResourceType = &typ
		if hasID {
			p.ResourceID = &id
		}
	}
	if org != "" {
		p.WorkosOrgID = &org
	}
	if event != "" {
		p.EventID = &event
	}
	now := time.Now()
	for _, w := range []struct {
		name, value string
		to          **time.Time
	}{{"since", since, &p.Since}, {"until", until, &p.Until}} {
		t, err := parseWhen(w.name, w.value, now)
		if err != nil {
			return err
		}
		if !t.IsZero() {
			*w.to = &t
		}
	}
	if p.Since != nil && p.Until != nil && !p.Since.Before(*p.Until) {
		return usageError("--since %s is not before --until %s", since, until)
	}
	pool, err := c.pool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	rows, err := queries.New().AuditLogList(ctx, pool, p)
	if err != nil {
		return fmt.Errorf("list audit rows: %w", err)
	}
	if asJSON {
		return writeAuditJSON(stdout, rows)
	}
	writeAuditTable(stdout, rows)
	return nil
}

// auditJSON is the --json form of a row.
type auditJSON struct {
	ID           int64           `json:"id"`
	OccurredAt   time.Time       `json:"occurred_at"`
	Actor        string          `json:"actor"`
	Source       *string         `json:"source"`
	EventID      *string         `json:"event_id"`
	EventType    *string         `json:"event_type"`
	Action       string          `json:"action"`
	ResourceType string          `json:"resource_type"`
	ResourceID   string          `json:"resource_id"`
	WorkOSOrgID  *string         `json:"workos_org_id"`
	OrgID        *string         `json:"org_id"`
	OldValues    json.RawMessage `json:"old_values"`
	NewValues    json.RawMessage `json:"new_values"`
	Metadata     json.RawMessage `json:"metadata"`
}

func writeAuditJSON(w io.Writer, rows []queries.AuditLog) error {
	enc := json.NewEncoder(w)
	for _, r := range rows {
		j := auditJSON{ID: r.ID, OccurredAt: r.OccurredAt.UTC(), Actor: r.Actor, Source: r.Source, EventID: r.EventID, EventType: r.EventType,
			Action: r.Action, ResourceType: r.ResourceType, ResourceID: r.ResourceID, WorkOSOrgID: r.WorkosOrgID,
			OldValues: r.OldValues, NewValues: r.NewValues, Metadata: r.Metadata}
		if r.OrgID != nil {
			s := r.OrgID.String()
			j.OrgID = &s
		}
		if err := enc.Encode(j); err != nil {
			return err
		}
	}
	return nil
}

func writeAuditTable(w io.Writer, rows []queries.AuditLog) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OCCURRED\tACTION\tRESOURCE\tEVENT\tCHANGED")
	for _, r := range rows {
		ev := "-"
		if r.EventID != nil {
			ev = *r.EventID + " (" + deref(r.EventType) + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.OccurredAt.UTC().Format(time.RFC3339), r.Action,
			cell(r.ResourceType+":"+r.ResourceID, 60), cell(ev, 70), cell(changedColumns(r), 80))
	}
	_ = tw.Flush()
	if len(rows) == 0 {
		fmt.Fprintln(w, "no audit rows match")
	}
}

// changedColumns names the columns a row changed, sorted.
func changedColumns(r queries.AuditLog) string {
	var cols map[string]json.RawMessage
	raw := r.NewValues
	if raw == nil {
		raw = r.OldValues
	}
	_ = json.Unmarshal(raw, &cols)
	names := make([]string, 0, len(cols))
	for k := range cols {
		names = append(names, k)
	}
	slices.Sort(names)
	return strings.Join(names, ",")
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// auditRetentionConfig carries the flags into serve's retention.
func (a *auditFlags) retentionConfig(cfg *retention.Config) {
	cfg.AuditRetention = a.keep
}
