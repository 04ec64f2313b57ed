package consumers

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/syncd/syncd/stream"
)

// batchTrace is a batch's span, linked to the spans that stored its events
// (their webhook requests, backfills, retries), and one span per event in
// the trace that stored it, linked back to the batch: from a request one
// finds the transaction that applied it, and from a slow batch its
// requests. With tracing off the batch span does not record and nothing
// else is made.
type batchTrace struct {
	batch  trace.Span
	events map[jetstream.Msg]trace.Span
}

func (c *Consumer) traceBatch(ctx context.Context, msgs []jetstream.Msg) (context.Context, *batchTrace) {
	bctx, span := c.tracer.Start(ctx, "apply batch", trace.WithSpanKind(trace.SpanKindConsumer))
	t := &batchTrace{batch: span}
	if !span.IsRecording() {
		return ctx, t
	}
	span.SetAttributes(attribute.Int("syncd.batch.size", len(msgs)))
	t.events = make(map[jetstream.Msg]trace.Span, len(msgs))
	self := trace.Link{SpanContext: span.SpanContext()}
	for _, m := range msgs {
		h := m.Headers()
		parent := bctx
		if sc := stream.TraceOf(h); sc.IsValid() {
			span.AddLink(trace.Link{SpanContext: sc})
			parent = trace.ContextWithRemoteSpanContext(ctx, sc)
		}
		_, ev := c.tracer.Start(parent, "apply "+h.Get(stream.HeaderEventType), trace.WithSpanKind(trace.SpanKindConsumer), trace.WithLinks(self),
			trace.WithAttributes(
				attribute.String("syncd.source", h.Get(stream.HeaderSource)),
				attribute.String("syncd.event.id", h.Get(stream.HeaderEventID)),
				attribute.String("syncd.event.type", h.Get(stream.HeaderEventType)),
			))
		t.events[m] = ev
	}
	return bctx, t
}

// result records an applied event's outcome or permanent failure.
func (t *batchTrace) result(m jetstream.Msg, r Result) {
	ev, ok := t.events[m]
	if !ok {
		return
	}
	if r.Err != nil {
		ev.RecordError(r.Err)
		ev.SetStatus(codes.Error, string(Classify(r.Err)))
		return
	}
	ev.SetAttributes(attribute.String("syncd.outcome", string(r.Outcome)))
}

// retry marks an event whose part of the batch failed transiently.
func (t *batchTrace) retry(m jetstream.Msg, err error) {
	if ev, ok := t.events[m]; ok {
		ev.RecordError(err)
		ev.SetStatus(codes.Error, "batch failed, will retry")
	}
}

// end closes the batch's spans; a transient failure marks the batch.
func (t *batchTrace) end(transient error) {
	if transient != nil && t.events != nil {
		t.batch.RecordError(transient)
		t.batch.SetStatus(codes.Error, "batch failed, will retry")
	}
	for _, ev := range t.events {
		ev.End()
	}
	t.batch.End()
}
