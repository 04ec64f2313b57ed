package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncd/syncd/deadletter"
	"github.com/syncd/syncd/queries"
	"github.com/syncd/syncd/stream"
)

// maxEventID bounds a looked-up id; ingest refuses longer ones anyway.
const maxEventID = 1024

// ledgerRow is an event's row in webhook_events.
type ledgerRow struct {
	Source     string     `json:"source"`
	EventID    string     `json:"event_id"`
	Type       string     `json:"type"`
	ProviderAt *time.Time `json:"provider_at,omitempty"`
	ReceivedAt *time.Time `json:"received_at,omitempty"`
	AppliedAt  time.Time  `json:"applied_at"`
	Outcome    string     `json:"outcome"`
	StreamSeq  *int64     `json:"stream_seq,omitempty"`
}

// streamMsg is the event as WEBHOOKS holds it.
type streamMsg struct {
	Seq         uint64              `json:"seq"`
	Subject     string              `json:"subject"`
	Time        time.Time           `json:"time"`
	Headers     map[string][]string `json:"headers"`
	Payload     string              `json:"payload"`
	PayloadKind string              `json:"payload_kind"`
	HeaderKeys  []string            `json:"-"`
	rawPayload  string
}

// eventFound is one source's event of the id.
type eventFound struct {
	Ledger ledgerRow  `json:"ledger"`
	Stream *streamMsg `json:"stream,omitempty"`
	// StreamNote says why the stream message is not shown.
	StreamNote string       `json:"stream_note,omitempty"`
	Rows       []touchedRow `json:"rows"`
	// Audit is what the event changed, from audit_logs (audit.go).
	Audit []auditEntry `json:"audit"`
}

type eventData struct {
	ID          string              `json:"id"`
	Source      string              `json:"source,omitempty"`
	Error       string              `json:"error,omitempty"`
	Found       []eventFound        `json:"found"`
	DeadLetters []deadletter.Letter `json:"dead_letters"`
	// Pending is the consumer's lag, shown when nothing was found: the
	// event may not be applied yet.
	Pending uint64    `json:"-"`
	Now     time.Time `json:"-"`
}

func (c *Console) lookupEvent(ctx context.Context, source, id string) (eventData, int) {
	d := eventData{ID: id, Source: source, Found: []eventFound{}, DeadLetters: []deadletter.Letter{}, Now: c.cfg.Now()}
	switch {
	case id == "":
		return d, http.StatusOK
	case len(id) > maxEventID:
		d.Error = fmt.Sprintf("event id is %d bytes: provider ids are at most %d", len(id), maxEventID)
		return d, http.StatusBadRequest
	case source != "" && source != stream.SourceWorkOS && source != stream.SourceStripe:
		d.Error = fmt.Sprintf("source %q: want %s or %s", source, stream.SourceWorkOS, stream.SourceStripe)
		return d, http.StatusBadRequest
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	q := queries.New()
	sources := []string{stream.SourceWorkOS, stream.SourceStripe}
	if source != "" {
		sources = []string{source}
	}
	for _, src := range sources {
		row, err := q.EventLedgerGet(ctx, c.pool, queries.EventLedgerGetParams{Source: src, EventID: id})
		if err = queries.Check(err); errors.Is(err, queries.ErrNotFound) {
			continue
		} else if err != nil {
			d.Error = fmt.Sprintf("read ledger: %v", err)
			return d, http.StatusServiceUnavailable
		}
		f := eventFound{Ledger: ledgerRow{row.Source, row.EventID, row.EventType, row.ProviderAt, row.ReceivedAt, row.AppliedAt, row.Outcome, row.StreamSeq}, Rows: []touchedRow{}}
		if row.StreamSeq == nil {
			f.StreamNote = "the ledger has no stream sequence for this event"
		} else if m, note := c.streamMsg(ctx, uint64(*row.StreamSeq), src, id); m != nil {
			f.Stream = m
		} else {
			f.StreamNote = note
		}
		if f.Stream != nil {
			f.Rows = c.touchedRows(ctx, src, row.EventType, []byte(f.Stream.rawPayload))
		}
		if f.Audit, err = c.auditOf(ctx, src, id); err != nil {
			d.Error = fmt.Sprintf("read audit_logs: %v", err)
			return d, http.StatusServiceUnavailable
		}
		d.Found = append(d.Found, f)
	}
	letters, err := c.dl.List(ctx, deadletter.Filter{Source: source})
	if err != nil {
		d.Error = err.Error()
		return d, http.StatusServiceUnavailable
	}
	for _, l := range letters {
		if l.EventID == id {
			d.DeadLetters = append(d.DeadLetters, l)
		}
	}
	if len(d.Found) == 0 && len(d.DeadLetters) == 0 {
		if cons, err := c.conn.JS.Consumer(ctx, stream.Webhooks, stream.Consumer); err == nil {
			if info, err := cons.Info(ctx); err == nil {
				d.Pending = info.NumPending + uint64(info.NumAckPending)
			}
		}
	}
	return d, http.StatusOK
}

// streamMsg reads seq from WEBHOOKS and checks it is the event asked
// for; note says why not when it is not.
func (c *Console) streamMsg(ctx context.Context, seq uint64, source, id string) (*streamMsg, string) {
	s, err := c.conn.JS.Stream(ctx, stream.Webhooks)
	if err != nil {
		return nil, fmt.Sprintf("stream %s: %v", stream.Webhooks, err)
	}
	m, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Sprintf("sequence %d is no longer in %s (older than the replay window)", seq, stream.Webhooks)
	}
	if err != nil {
		return nil, fmt.Sprintf("read %s sequence %d: %v", stream.Webhooks, seq, err)
	}
	if m.Header.Get(stream.HeaderEventID) != id || m.Header.Get(stream.HeaderSource) != source {
		return nil, fmt.Sprintf("sequence %d now holds another event", seq)
	}
	out := &streamMsg{Seq: m.Sequence, Subject: m.Subject, Time: m.Time.UTC(), Headers: map[string][]string(m.Header), rawPayload: string(m.Data)}
	for k := range m.Header {
		out.HeaderKeys = append(out.HeaderKeys, k)
	}
	sort.Strings(out.HeaderKeys)
	out.Payload, out.PayloadKind = prettyPayload(m.Data)
	return out, ""
}

func (c *Console) eventsPage(w http.ResponseWriter, r *http.Request) {
	d, code := c.lookupEvent(r.Context(), r.URL.Query().Get("source"), strings.TrimSpace(r.URL.Query().Get("id")))
	c.render(w, r, code, "events.html", d)
}

func (c *Console) eventAPI(w http.ResponseWriter, r *http.Request) {
	d, code := c.lookupEvent(r.Context(), r.URL.Query().Get("source"), r.PathValue("id"))
	if d.Error != "" {
		writeJSONError(w, code, errorCode(code), d.Error)
		return
	}
	if len(d.Found) == 0 && len(d.DeadLetters) == 0 {
		writeJSONError(w, http.StatusNotFound, "not_found", fmt.Sprintf("event %q is not in the ledger nor in DEADLETTER", d.ID))
		return
	}
	writeJSON(w, http.StatusOK, d)
}
