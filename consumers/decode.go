package consumers

// Decoding a WEBHOOKS message into the event the applier takes.

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncd/syncd/events"
	"github.com/syncd/syncd/stream"
)

// DecodeMsg reads the routing facts of a WEBHOOKS message. The source comes
// from the header ingest sets, else from the subject.
func DecodeMsg(m jetstream.Msg) (Event, error) {
	h := m.Headers()
	ev := Event{Body: m.Data(), Source: h.Get(stream.HeaderSource), Endpoint: h.Get(stream.HeaderEndpoint)}
	if ev.Source == "" {
		ev.Source, _ = stream.SplitSubject(m.Subject())
	}
	if md, err := m.Metadata(); err == nil {
		ev.Seq = md.Sequence.Stream
		ev.ReceivedAt = md.Timestamp
		ev.Delivery = md.NumDelivered
	}
	if t, err := time.Parse(time.RFC3339Nano, h.Get(stream.HeaderReceivedAt)); err == nil {
		ev.ReceivedAt = t
	}
	var err error
	switch ev.Source {
	case stream.SourceWorkOS:
		ev.Envelope, err = events.DecodeWorkOS(ev.Body)
	case stream.SourceStripe:
		ev.Envelope, err = events.DecodeStripe(ev.Body)
	default:
		err = fmt.Errorf("unknown source %q", ev.Source)
	}
	if err != nil {
		_, ev.Envelope.Type = stream.SplitSubject(m.Subject())
		ev.Envelope.ID = h.Get(stream.HeaderEventID)
		return ev, fmt.Errorf("%w: %v", ErrUndecodable, err)
	}
	// A time outside the plausible window would be stored as the rows'
	// version and outrank every real one.
	if err := events.CheckTime(ev.Envelope.Created); err != nil {
		return ev, fmt.Errorf("%w: event time: %v", ErrUndecodable, err)
	}
	return ev, nil
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
