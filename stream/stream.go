// Package stream defines syncd's JetStream topology — stream and consumer
// names, subjects, message ids and headers — in one place, so that ingest,
// the consumers, replay, backfill and the dead-letter tools agree on it.
package stream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Stream and consumer names.
const (
	Webhooks   = "WEBHOOKS"
	DeadLetter = "DEADLETTER"
	// Consumer is the durable consumer that applies events to Postgres.
	Consumer = "syncd-apply"
)

// Sources of events.
const (
	SourceWorkOS = "workos"
	SourceStripe = "stripe"
)

// Headers carried by every message in WEBHOOKS.
const (
	HeaderSource     = "Syncd-Source"
	HeaderEventType  = "Syncd-Event-Type"
	HeaderEventID    = "Syncd-Event-Id"
	HeaderProviderAt = "Syncd-Provider-Time" // RFC 3339, the provider's event time
	HeaderReceivedAt = "Syncd-Received-At"   // RFC 3339, when syncd stored it
	HeaderEndpoint   = "Syncd-Endpoint"      // e.g. "connect" for Stripe Connect events
)

// Headers carried by every message in DEADLETTER.
const (
	HeaderDLSubject    = "Syncd-Original-Subject"
	HeaderDLSequence   = "Syncd-Original-Sequence"
	HeaderDLDeliveries = "Syncd-Deliveries"
	HeaderDLClass      = "Syncd-Error-Class"
	HeaderDLError      = "Syncd-Error"
	HeaderDLFailedAt   = "Syncd-Failed-At"
	HeaderDLConsumer   = "Syncd-Consumer"
)

// MaxAgeDefault is the replay window of WEBHOOKS unless configured.
const MaxAgeDefault = 30 * 24 * time.Hour

// Config sizes the streams.
type Config struct {
	// MaxAge is the replay window of WEBHOOKS.
	MaxAge time.Duration
	// DeadLetterMaxAge bounds how long dead letters are kept.
	DeadLetterMaxAge time.Duration
	// DuplicateWindow is how long JetStream remembers message ids.
	DuplicateWindow time.Duration
	// Replicas for clustered deployments; 1 for the embedded server.
	Replicas int
	// AtomicPublish lets WEBHOOKS take atomic batches (nats-server 2.12+),
	// which group commit needs (see GroupPublisher).
	AtomicPublish bool
}

func (c Config) withDefaults() Config {
	if c.MaxAge == 0 {
		c.MaxAge = MaxAgeDefault
	}
	if c.DeadLetterMaxAge == 0 {
		c.DeadLetterMaxAge = 90 * 24 * time.Hour
	}
	if c.DuplicateWindow == 0 {
		// Providers retry for about three days; a longer window would cost
		// memory for little gain since the ledger catches the rest.
		c.DuplicateWindow = 24 * time.Hour
	}
	if c.DuplicateWindow > c.MaxAge {
		c.DuplicateWindow = c.MaxAge
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	return c
}

// MsgID is the JetStream message id of a provider event, so that JetStream
// drops duplicates inside its window.
func MsgID(source, eventID string) string { return source + ":" + eventID }

// Ensure creates or updates WEBHOOKS and DEADLETTER and the durable apply
// consumer. It is safe to call from every replica at start.
func Ensure(ctx context.Context, js jetstream.JetStream, cfg Config, cons ConsumerConfig) error {
	cfg = cfg.withDefaults()
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        Webhooks,
		Description: "verified provider webhooks, raw bodies",
		Subjects:    []string{"webhooks.>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      cfg.MaxAge,
		Duplicates:  cfg.DuplicateWindow,
		Replicas:    cfg.Replicas,
		Discard:     jetstream.DiscardOld,
		// Group commit (GroupPublisher) stores webhooks in atomic batches.
		AllowAtomicPublish: cfg.AtomicPublish,
	}); err != nil {
		return fmt.Errorf("ensure stream %s: %w", Webhooks, err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        DeadLetter,
		Description: "events that failed permanently, with their reason",
		Subjects:    []string{"deadletter.>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      cfg.DeadLetterMaxAge,
		// A dead letter's id is its original's stream sequence: a second
		// copy (the original could not be terminated and came back) is
		// dropped within this window.
		Duplicates: cfg.DuplicateWindow,
		Replicas:   cfg.Replicas,
	}); err != nil {
		return fmt.Errorf("ensure stream %s: %w", DeadLetter, err)
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, Webhooks, cons.jetstream()); err != nil {
		return fmt.Errorf("ensure consumer %s: %w", cons.withDefaults().Name, err)
	}
	return nil
}

// DefaultAckWait is how long JetStream waits for the apply consumer to
// settle a message before it delivers it again. Short, so that the events
// a killed process held are applied again within seconds; the consumer
// sends progress heartbeats for a batch that takes longer, and hands what
// it holds back at once on a clean stop.
const DefaultAckWait = 30 * time.Second

// ConsumerConfig shapes the durable apply consumer. Ensure updates an
// existing durable to it (AckWait and MaxAckPending can change in place).
type ConsumerConfig struct {
	Name          string
	AckWait       time.Duration
	MaxAckPending int
}

func (c ConsumerConfig) withDefaults() ConsumerConfig {
	if c.Name == "" {
		c.Name = Consumer
	}
	if c.AckWait == 0 {
		c.AckWait = DefaultAckWait
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = 2048
	}
	return c
}

func (c ConsumerConfig) jetstream() jetstream.ConsumerConfig {
	c = c.withDefaults()
	return jetstream.ConsumerConfig{
		Durable:       c.Name,
		Description:   "applies webhook events to Postgres",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.AckWait,
		// Unlimited: the apply loop decides when a message is dead, counting
		// only permanent failures (transient ones must never burn attempts).
		MaxDeliver:    -1,
		MaxAckPending: c.MaxAckPending,
		FilterSubject: "webhooks.>",
	}
}

// IsUnavailable reports whether err means JetStream could not be reached or
// did not answer in time, as opposed to a rejected request.
func IsUnavailable(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrConnectionClosed) ||
		errors.Is(err, nats.ErrConnectionDraining) ||
		errors.Is(err, nats.ErrDisconnected)
}
