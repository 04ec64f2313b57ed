package ingest

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/syncd/syncd/events"
)

// startSpan opens the request's server span, under the caller's trace
// when the request carries a traceparent. With tracing off the span does
// not record and the request is passed on untouched (no copy).
func (h *Handler) startSpan(r *http.Request, p provider) (*http.Request, trace.Span) {
	ctx := r.Context()
	if r.Header.Get("traceparent") != "" {
		ctx = propagation.TraceContext{}.Extract(ctx, propagation.HeaderCarrier(r.Header))
	}
	ctx, span := h.tracer.Start(ctx, "webhook "+p.source(), trace.WithSpanKind(trace.SpanKindServer))
	if !span.IsRecording() {
		return r, span
	}
	span.SetAttributes(
		attribute.String("http.request.method", r.Method),
		attribute.String("url.path", r.URL.Path),
		attribute.String("syncd.source", p.source()),
	)
	return r.WithContext(ctx), span
}

// endSpan records the answer: a 5xx is an error (the provider retries), a
// 4xx is the sender's.
func endSpan(span trace.Span, status int) {
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
	}
	span.End()
}

// eventAttrs names the event on the request's span.
func eventAttrs(ctx context.Context, env events.Envelope) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(attribute.String("syncd.event.id", env.ID), attribute.String("syncd.event.type", env.Type))
	}
}

func endPublish(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, "not stored")
	}
	span.End()
}
