package consumers

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/tidwall/gjson"

	"github.com/syncd/syncd/events"
	"github.com/syncd/syncd/queries"
)

// Outcome is what applying an event did, as recorded in the ledger.
type Outcome string

const (
	Applied Outcome = "applied"
	Ignored Outcome = "ignored" // a type syncd does not handle
	Stale   Outcome = "stale"   // older than what is stored
	// Skipped is not stored: the event was in the ledger already.
	Skipped Outcome = "skipped"
)

// Event is one message from WEBHOOKS, decoded as far as routing needs.
type Event struct {
	Source     string
	Envelope   events.Envelope
	Body       []byte
	Seq        uint64
	ReceivedAt time.Time
	// Endpoint is "connect" for Stripe Connect events.
	Endpoint string
	// Delivery is JetStream's delivery attempt of the message (0 outside
	// the stream); Replay marks events syncd replay re-delivers. Both go
	// into the audit trail's metadata.
	Delivery uint64
	Replay   bool
}

// Tx is what a handler gets: the queries bound to the batch transaction.
type Tx struct {
	Q *queries.Queries
	// DB is the batch transaction, or a pipeline queueing into it.
	DB queries.DBTX
	// Links gathers the batch's link work, run once before commit.
	Links *linkSet
	// Log is for what a handler leaves out of an event it applies.
	Log *slog.Logger
}

// Handler applies one event inside the batch transaction and reports its
// outcome. Errors are classified by Classify; wrap decode failures in
// ErrUndecodable.
type Handler func(ctx context.Context, tx Tx, ev Event) (Outcome, error)

// decodeField decodes the field at path (gjson syntax) of an event's body
// into v. The body was validated when its envelope was read, so the field
// is found without a second full pass of encoding/json over the body, and
// a struct gets only the members it names (members.go).
func decodeField(ev Event, path string, v any) error {
	raw := gjson.GetBytes(ev.Body, path)
	if !raw.Exists() {
		return fmt.Errorf("%w: %s has no %s", ErrUndecodable, ev.Envelope.Type, path)
	}
	if err := decodeMembers(raw, v); err != nil {
		return fmt.Errorf("%w: %s %s: %v", ErrUndecodable, ev.Envelope.Type, path, err)
	}
	return nil
}
