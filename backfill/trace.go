package backfill

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// endRunSpan records what a backfill run did on its span.
func endRunSpan(span trace.Span, res Result, err error) {
	if span.IsRecording() {
		span.SetAttributes(
			attribute.Int("syncd.backfill.pages", res.Pages),
			attribute.Int("syncd.backfill.listed", res.Listed),
			attribute.Int("syncd.backfill.published", res.Published),
			attribute.Bool("syncd.backfill.resumed", res.Resumed),
		)
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "backfill stopped")
		}
	}
	span.End()
}
