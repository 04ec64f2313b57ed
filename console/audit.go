package console

import (
	"context"
	"encoding/json"
	"time"

	"github.com/syncd/syncd/queries"
)

// auditEntry is one audit_logs row of an event: a change it made.
type auditEntry struct {
	OccurredAt   time.Time       `json:"occurred_at"`
	Action       string          `json:"action"`
	ResourceType string          `json:"resource_type"`
	ResourceID   string          `json:"resource_id"`
	WorkOSOrgID  *string         `json:"workos_org_id,omitempty"`
	OldValues    json.RawMessage `json:"old_values"`
	NewValues    json.RawMessage `json:"new_values"`
	Metadata     json.RawMessage `json:"metadata"`
}

// auditMax bounds the changes shown for one event; one event changes a
// handful of rows.
const auditMax = 200

// auditOf lists the changes the event made, oldest first.
func (c *Console) auditOf(ctx context.Context, source, id string) ([]auditEntry, error) {
	rows, err := queries.New().AuditLogList(ctx, c.pool, queries.AuditLogListParams{EventID: &id, MaxRows: auditMax})
	if err != nil {
		return nil, err
	}
	out := []auditEntry{}
	for i := len(rows) - 1; i >= 0; i-- {
		r := rows[i]
		if r.Source == nil || *r.Source != source {
			continue
		}
		out = append(out, auditEntry{r.OccurredAt.UTC(), r.Action, r.ResourceType, r.ResourceID, r.WorkosOrgID, r.OldValues, r.NewValues, r.Metadata})
	}
	return out, nil
}
