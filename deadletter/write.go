package deadletter

import (
	"context"
	"fmt"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncd/syncd/stream"
)

// Failure is why a durable gives up on a message: what Write records in
// the dead letter's headers, which Letter reads back.
type Failure struct {
	// Durable is the consumer that gave up (Syncd-Consumer).
	Durable string
	// Source, Type and EventID of the event, as far as they were decoded;
	// Source and Type fall back to the original's subject.
	Source, Type, EventID string
	// Seq is the original's stream sequence, used when the message has no
	// metadata.
	Seq uint64
	// Class is the error class (transient, permanent, undecodable) and
	// Cause the error.
	Class string
	Cause error
	// Attempts stands for the delivery count when the message has none.
	Attempts int
}

// Write stores a copy of m in DEADLETTER with the reason (the Syncd-*
// dead-letter headers of stream), then terminates the original; stored
// reports whether the copy is in DEADLETTER. The copy's message id makes a
// second dead letter of the same stream sequence by the same durable a
// duplicate. Every durable on WEBHOOKS dead-letters through here, so
// `syncd dlq` reads them all alike.
func Write(ctx context.Context, js jetstream.JetStream, m jetstream.Msg, f Failure) (stored bool, err error) {
	source, typ := f.Source, f.Type
	if source == "" || typ == "" {
		source, typ = stream.SplitSubject(m.Subject())
	}
	md, _ := m.Metadata()
	seq, delivered := f.Seq, uint64(f.Attempts)
	if md != nil {
		seq, delivered = md.Sequence.Stream, md.NumDelivered
	}
	reason := truncate(f.Cause.Error(), 1024)
	// stream builds the copy: its subject and headers stay valid and
	// bounded whatever the original event carried.
	dl := stream.DeadLetterMsg(m.Data(), m.Headers(), stream.DeadLetterInfo{
		Source: source, Type: typ, EventID: f.EventID,
		Subject: m.Subject(), Sequence: seq, Deliveries: delivered,
		Class: f.Class, Reason: reason, Consumer: f.Durable,
	})
	if _, err := js.PublishMsg(ctx, dl); err != nil {
		return false, fmt.Errorf("publish dead letter: %w", err)
	}
	// The term reason is shown in advisories; keep it short.
	if err := m.TermWithReason(truncate(f.Class+": "+reason, 256)); err != nil {
		return true, fmt.Errorf("terminate original: %w", err)
	}
	return true, nil
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
