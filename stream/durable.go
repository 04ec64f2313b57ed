package stream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ProvisionConsumer is the durable consumer that provisions WorkOS
// accounts from the events (see package provision). It reads WEBHOOKS
// beside the apply consumer and never holds it up.
const ProvisionConsumer = "syncd-provision"

// DurableConfig shapes a further durable pull consumer on WEBHOOKS, beside
// the apply consumer, reading only FilterSubjects.
type DurableConfig struct {
	Name           string
	Description    string
	FilterSubjects []string
	AckWait        time.Duration
	MaxAckPending  int
	// DeliverAll starts a new durable at the beginning of the stream;
	// otherwise it starts with the events stored after it was created.
	// An existing durable keeps where it started.
	DeliverAll bool
	// StartSeq, when set, starts a new durable at this stream sequence
	// instead (a durable made again after it was lost, from where it was).
	StartSeq uint64
}

// EnsureDurable creates or updates the durable. Like the apply consumer it
// acks explicitly and never gives up on a message by itself: the reader
// decides when one is dead. Safe to call from every replica at start.
func EnsureDurable(ctx context.Context, js jetstream.JetStream, cfg DurableConfig) error {
	if cfg.Name == "" || len(cfg.FilterSubjects) == 0 {
		return errors.New("stream: a durable needs a name and filter subjects")
	}
	if cfg.AckWait == 0 {
		cfg.AckWait = 2 * time.Minute
	}
	if cfg.MaxAckPending == 0 {
		cfg.MaxAckPending = 256
	}
	policy, startSeq := jetstream.DeliverNewPolicy, uint64(0)
	switch {
	case cfg.StartSeq > 0:
		policy, startSeq = jetstream.DeliverByStartSequencePolicy, cfg.StartSeq
	case cfg.DeliverAll:
		policy = jetstream.DeliverAllPolicy
	}
	// Where an existing durable starts cannot change: keep it.
	if c, err := js.Consumer(ctx, Webhooks, cfg.Name); err == nil {
		policy, startSeq = c.CachedInfo().Config.DeliverPolicy, c.CachedInfo().Config.OptStartSeq
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("look up consumer %s: %w", cfg.Name, err)
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, Webhooks, jetstream.ConsumerConfig{
		Durable:        cfg.Name,
		Description:    cfg.Description,
		DeliverPolicy:  policy,
		OptStartSeq:    startSeq,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        cfg.AckWait,
		MaxDeliver:     -1,
		MaxAckPending:  cfg.MaxAckPending,
		FilterSubjects: cfg.FilterSubjects,
	}); err != nil {
		return fmt.Errorf("ensure consumer %s: %w", cfg.Name, err)
	}
	return nil
}
