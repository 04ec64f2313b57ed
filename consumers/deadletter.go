package consumers

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncd/syncd/stream"
)

// DeadLetter stores a copy of m in DEADLETTER with the reason (the
// Syncd-* dead-letter headers of stream, durable naming the consumer that
// gave up), then terminates the original; stored reports whether the copy
// is in DEADLETTER. The copy's message id makes a second dead letter of
// the same stream sequence a duplicate. Every durable on WEBHOOKS
// dead-letters through here, so `syncd dlq` reads them all alike.
func DeadLetter(ctx context.Context, js jetstream.JetStream, durable string, m jetstream.Msg, ev Event, class Class, cause error, attempts int) (stored bool, err error) {
	source, typ := ev.Source, ev.Envelope.Type
	if source == "" || typ == "" {
		source, typ = splitSubject(m.Subject())
	}
	dl := nats.NewMsg(deadLetterSubject(m.Subject(), source, typ))
	dl.Data = m.Data()
	stream.CopyEventHeaders(dl.Header, m.Headers())
	md, _ := m.Metadata()
	seq, delivered := ev.Seq, uint64(attempts)
	if md != nil {
		seq, delivered = md.Sequence.Stream, md.NumDelivered
	}
	reason := truncate(cause.Error(), 1024)
	// Another durable giving up on the same event is its own dead letter,
	// not a duplicate of the apply consumer's.
	id := "dl:" + strconv.FormatUint(seq, 10)
	if durable != stream.Consumer {
		id = "dl:" + durable + ":" + strconv.FormatUint(seq, 10)
	}
	dl.Header.Set(jetstream.MsgIDHeader, id)
	dl.Header.Set(stream.HeaderSource, source)
	dl.Header.Set(stream.HeaderEventType, typ)
	if ev.Envelope.ID != "" {
		dl.Header.Set(stream.HeaderEventID, ev.Envelope.ID)
	}
	dl.Header.Set(stream.HeaderDLSubject, m.Subject())
	dl.Header.Set(stream.HeaderDLSequence, strconv.FormatUint(seq, 10))
	dl.Header.Set(stream.HeaderDLDeliveries, strconv.FormatUint(delivered, 10))
	dl.Header.Set(stream.HeaderDLClass, string(class))
	dl.Header.Set(stream.HeaderDLError, reason)
	dl.Header.Set(stream.HeaderDLFailedAt, time.Now().UTC().Format(time.RFC3339Nano))
	dl.Header.Set(stream.HeaderDLConsumer, durable)
	if _, err := js.PublishMsg(ctx, dl); err != nil {
		return false, fmt.Errorf("publish dead letter: %w", err)
	}
	// The term reason is shown in advisories; keep it short.
	if err := m.TermWithReason(truncate(string(class)+": "+reason, 256)); err != nil {
		return true, fmt.Errorf("terminate original: %w", err)
	}
	return true, nil
}
