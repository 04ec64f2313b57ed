package stream

import (
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncd/syncd/events"
)

// EventMsg builds the WEBHOOKS message of a provider event: the raw body
// byte for byte, its subject, message id and headers. Ingest and backfill
// both build messages here, so an event that reaches the stream through
// the Events API is indistinguishable from (and deduplicated against) the
// same event delivered as a webhook. endpoint is "connect" for Stripe
// Connect events, else empty.
func EventMsg(source string, env events.Envelope, body []byte, receivedAt time.Time, endpoint string) *nats.Msg {
	msg := nats.NewMsg(Subject(source, env.Type))
	msg.Data = body
	msg.Header.Set(jetstream.MsgIDHeader, MsgID(source, env.ID))
	msg.Header.Set(HeaderSource, source)
	msg.Header.Set(HeaderEventType, env.Type)
	msg.Header.Set(HeaderEventID, env.ID)
	if !env.Created.IsZero() {
		msg.Header.Set(HeaderProviderAt, env.Created.UTC().Format(time.RFC3339Nano))
	}
	msg.Header.Set(HeaderReceivedAt, receivedAt.UTC().Format(time.RFC3339Nano))
	if endpoint != "" {
		msg.Header.Set(HeaderEndpoint, endpoint)
	}
	return msg
}

// CopyEventHeaders copies the event's headers from src to dst, leaving out
// the Nats-* headers — instructions to the server that stored src (message
// id, expected stream), which on a copy stored elsewhere would be wrong or
// make the server refuse it — and any header named in skip.
func CopyEventHeaders(dst, src nats.Header, skip ...string) {
	for k, v := range src {
		if strings.HasPrefix(k, "Nats-") || slices.Contains(skip, k) {
			continue
		}
		dst[k] = v
	}
}
