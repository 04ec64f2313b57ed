package stream

import (
	"context"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Trace context travels with each event in the W3C headers (traceparent,
// tracestate), so the span that applies an event joins the trace of the
// request, backfill or retry that stored it.
var traceContext = propagation.TraceContext{}

// headerCarrier lets the propagator read and write NATS headers.
type headerCarrier nats.Header

func (c headerCarrier) Get(key string) string { return nats.Header(c).Get(key) }
func (c headerCarrier) Set(key, value string) { nats.Header(c).Set(key, value) }
func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// InjectTrace writes the span context of ctx into h; nothing when ctx has
// no span (tracing off), so the message stays as it was.
func InjectTrace(ctx context.Context, h nats.Header) {
	if h == nil || !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	traceContext.Inject(ctx, headerCarrier(h))
}

// TraceOf is the span context h carries, invalid when none.
func TraceOf(h nats.Header) trace.SpanContext {
	if h == nil || h.Get("traceparent") == "" {
		return trace.SpanContext{}
	}
	return trace.SpanContextFromContext(traceContext.Extract(context.Background(), headerCarrier(h)))
}
