package service_test

import (
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/syncd/syncd/stream"
	"github.com/syncd/syncd/syncdtest"
)

// One webhook, traced from its HTTP request through JetStream to the
// transaction that applied it: the apply span of the event is in the
// request's trace, under the publish span whose context the message
// carried, and the batch span links to it.
func TestTraceFromRequestToApply(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	cfg := syncdtest.HarnessConfig(t)
	cfg.TracerProvider = tp
	h := syncdtest.NewHarnessWith(t, cfg)
	h.StartConsumer()
	h.PostWorkOS(syncdtest.WorkOSEvent("event_tr1", "user.created", map[string]any{"object": "user", "id": "user_tr1", "email": "tr1@x.test"}))
	h.WaitSettled()

	find := func(name string) (tracetest.SpanStub, bool) {
		for _, s := range exp.GetSpans() {
			if s.Name == name {
				return s, true
			}
		}
		return tracetest.SpanStub{}, false
	}
	syncdtest.Eventually(t, 10*time.Second, "apply span exported", func() bool {
		_, ok := find("apply batch")
		return ok
	})
	req, ok := find("webhook workos")
	if !ok {
		t.Fatal("no request span")
	}
	verify, _ := find("verify")
	publish, _ := find("publish")
	apply, ok := find("apply user.created")
	if !ok {
		t.Fatal("no span for the event's apply")
	}
	batch, _ := find("apply batch")
	trace := req.SpanContext.TraceID()
	for _, s := range []tracetest.SpanStub{verify, publish, apply} {
		if s.SpanContext.TraceID() != trace {
			t.Errorf("span %q in trace %s, want the request's %s", s.Name, s.SpanContext.TraceID(), trace)
		}
	}
	if publish.Parent.SpanID() != req.SpanContext.SpanID() || apply.Parent.SpanID() != publish.SpanContext.SpanID() {
		t.Errorf("apply's parent %s, publish %s (parent %s), request %s: want request → publish → apply",
			apply.Parent.SpanID(), publish.SpanContext.SpanID(), publish.Parent.SpanID(), req.SpanContext.SpanID())
	}
	linked := false
	for _, l := range batch.Links {
		linked = linked || l.SpanContext.SpanID() == publish.SpanContext.SpanID()
	}
	if !linked {
		t.Errorf("batch span links %v, want the publish span %s", batch.Links, publish.SpanContext.SpanID())
	}
	if len(apply.Links) != 1 || apply.Links[0].SpanContext.SpanID() != batch.SpanContext.SpanID() {
		t.Errorf("event span links %v, want its batch", apply.Links)
	}
	for _, a := range apply.Attributes {
		if a.Key == "syncd.outcome" && a.Value.AsString() != "applied" {
			t.Errorf("outcome %s, want applied", a.Value.AsString())
		}
	}
}

// With tracing off (the no-op provider), a stored event carries no trace
// context: nothing is added to the hot path's messages.
func TestNoTraceContextWhenTracingIsOff(t *testing.T) {
	t.Parallel()
	h := syncdtest.NewHarness(t)
	h.PostWorkOS(syncdtest.WorkOSEvent("event_off1", "user.created", map[string]any{"object": "user", "id": "user_off1", "email": "off1@x.test"}))
	st, err := h.NATS.JS.Stream(t.Context(), stream.Webhooks)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetMsg(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if v := m.Header.Get("traceparent"); v != "" {
		t.Fatalf("stored event carries traceparent %q with tracing off", v)
	}
	if m.Header.Get(stream.HeaderEventID) != "event_off1" {
		t.Fatalf("stored message is not the event: %v", m.Header)
	}
}
