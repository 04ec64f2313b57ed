package consumers

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncd/syncd/deadletter"
)

// DeadLetter sets m aside in DEADLETTER for durable, as deadletter.Write
// does, with what the consumer knows of the event and its failure.
func DeadLetter(ctx context.Context, js jetstream.JetStream, durable string, m jetstream.Msg, ev Event, class Class, cause error, attempts int) (stored bool, err error) {
	return deadletter.Write(ctx, js, m, deadletter.Failure{
		Durable: durable, Source: ev.Source, Type: ev.Envelope.Type, EventID: ev.Envelope.ID,
		Seq: ev.Seq, Class: string(class), Cause: cause, Attempts: attempts,
	})
}
