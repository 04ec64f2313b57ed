package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/syncd/syncd/queries"
	"github.com/syncd/syncd/retention"
)

// auditFlags: whether the applier writes the audit trail, and how long
// serve's retention keeps it.
type auditFlags struct {
	mode string
	keep time.Duration
}

func (a *auditFlags) registerMode(c *cobra.Command) {
	d := declare(c)
	d.String(&a.mode, "audit", "SYNCD_AUDIT", "on", "on or off: write audit_logs, one row per change applied", func(v string) error {
		_, err := auditOff(v)
		return err
	})
	d.complete("audit", "on", "off")
}

func (a *auditFlags) register(c *cobra.Command) {
	a.registerMode(c)
	declare(c).Days(&a.keep, "audit-retention", "SYNCD_AUDIT_RETENTION", retention.DefaultAuditRetention, "keep audit_logs rows this long: days (365d) or a duration (8760h)", atLeast(time.Hour))
}

// auditOff reads --audit.
func auditOff(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "on", "true", "1":
		return false, nil
	case "off", "false", "0":
		return true, nil
	}
	return false, fmt.Errorf("%q: want on or off", v)
}

// disabled says whether --audit is off.
func (a *auditFlags) disabled() bool {
	off, _ := auditOff(a.mode) // checked when parsed
	return off
}

// auditListMax bounds one listing.
const auditListMax = 10000

func auditCommand() *cobra.Command {
	var f auditListFlags
	c := &cobra.Command{
		Use:   "audit [--resource TYPE[:ID]] [--org ORG] [--event ID] [--since T] [--until T] [--json]",
		Short: "list the changes syncd applied (audit_logs) by resource, organization, event or time",
		Long:  "Lists the changes syncd applied (audit_logs), newest first.",
		Args:  noArgs,
	}
	f.common.register(c)
	d := declare(c)
	d.String(&f.resource, "resource", "", "", "only this resource: TYPE (users, organizations, user_org_memberships, meetings, payment_transfers) or TYPE:ID (users:user_01H…)", func(v string) error {
		if typ, id, hasID := strings.Cut(v, ":"); v != "" && (typ == "" || (hasID && id == "")) {
			return fmt.Errorf("%q: want TYPE or TYPE:ID", v)
		}
		return nil
	})
	d.String(&f.org, "org", "", "", "only changes of this organization (WorkOS organization id)")
	d.String(&f.event, "event", "", "", "only changes made by this event id")
	d.String(&f.since, "since", "", "", "changes at or after: RFC 3339 time, a date, or a duration ago (36h, 7d)", when)
	d.String(&f.until, "until", "", "", "changes before (same forms as --since)", when)
	d.Int(&f.limit, "limit", "", 100, fmt.Sprintf("newest rows shown, at most (1 to %d)", auditListMax), between(1, auditListMax))
	d.Bool(&f.asJSON, "json", "", false, "one JSON object per line instead of a table")
	c.RunE = action(func(c *cobra.Command, _ []string) error { return f.run(c.Context(), c.OutOrStdout()) })
	return c
}

// auditListFlags select the rows `syncd audit` lists.
type auditListFlags struct {
	common
	resource, org, event, since, until string
	limit                              int
	asJSON                             bool
}

func (f *auditListFlags) run(ctx context.Context, stdout io.Writer) error {
	p := queries.AuditLogListParams{MaxRows: int32(f.limit)}
	if f.resource != "" {
		typ, id, hasID := strings.Cut(f.resource, ":")
		p.ResourceType = &typ
		if hasID {
			p.ResourceID = &id
		}
	}
	if f.org != "" {
		p.WorkosOrgID = &f.org
	}
	if f.event != "" {
		p.EventID = &f.event
	}
	now := time.Now()
	for _, w := range []struct {
		name, value string
		to          **time.Time
	}{{"since", f.since, &p.Since}, {"until", f.until, &p.Until}} {
		t, err := parseWhen(w.name, w.value, now)
		if err != nil {
			return err
		}
		if !t.IsZero() {
			*w.to = &t
		}
	}
	if p.Since != nil && p.Until != nil && !p.Since.Before(*p.Until) {
		return usageError("--since %s is not before --until %s", f.since, f.until)
	}
	pool, err := f.pool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	rows, err := queries.New().AuditLogList(ctx, pool, p)
	if err != nil {
		return fmt.Errorf("list audit rows: %w", err)
	}
	if f.asJSON {
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

// retentionConfig carries the flags into serve's retention.
func (a *auditFlags) retentionConfig(cfg *retention.Config) {
	cfg.AuditRetention = a.keep
}
