package replay

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/syncd/syncd/stream"
	"github.com/syncd/syncd/telemetry"
)

// startBatchSpan is a replayed batch's span, linked to the traces that
// stored its events.
func startBatchSpan(ctx context.Context, batch []jetstream.Msg) (context.Context, trace.Span) {
	ctx, span := telemetry.Tracer(nil).Start(ctx, "replay batch", trace.WithAttributes(attribute.Int("syncd.batch.size", len(batch))))
	if span.IsRecording() {
		for _, m := range batch {
			if sc := stream.TraceOf(m.Headers()); sc.IsValid() {
				span.AddLink(trace.Link{SpanContext: sc})
			}
		}
	}
	return ctx, span
}

func endRunSpan(span trace.Span, sum Summary, err error) {
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("syncd.replay.filter", sum.Filter),
			attribute.Int("syncd.replay.events", sum.Events),
			attribute.Int("syncd.replay.applied", sum.Applied),
		)
		if err != nil && err != ErrEmpty {
			span.RecordError(err)
			span.SetStatus(codes.Error, "replay stopped")
		}
	}
	span.End()
}
