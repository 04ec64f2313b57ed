package deadletter

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/syncd/syncd/stream"
	"github.com/syncd/syncd/telemetry"
)

func startRetrySpan(ctx context.Context, l Letter) (context.Context, trace.Span) {
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(
		attribute.String("syncd.source", l.Source),
		attribute.String("syncd.event.id", l.EventID),
		attribute.Int64("syncd.dead_letter.seq", int64(l.Seq)),
	)}
	if sc := stream.TraceOf(l.Header); sc.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
	}
	return telemetry.Tracer(nil).Start(ctx, "dlq retry", opts...)
}

func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "retry failed")
	}
	span.End()
}
