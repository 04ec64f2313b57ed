package telemetry_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/syncd/syncd/telemetry"
)

// With an endpoint in the standard variable, spans reach it over OTLP/HTTP.
func TestSetupExportsWhenEndpointSet(t *testing.T) {
	var posts atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/traces" {
			posts.Add(1)
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	t.Setenv(telemetry.EnvEndpoint, srv.URL)
	defer otel.SetTracerProvider(noop.NewTracerProvider())
	shutdown, err := telemetry.Setup(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	_, span := telemetry.Tracer(nil).Start(context.Background(), "probe")
	span.End()
	if err := shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if posts.Load() == 0 {
		t.Fatal("no OTLP export reached the endpoint")
	}
}

// Without one, nothing is installed: the tracer provider stays the no-op
// one and spans do not record.
func TestSetupInstallsNothingWhenOff(t *testing.T) {
	t.Setenv(telemetry.EnvEndpoint, "")
	t.Setenv(telemetry.EnvTracesEndpoint, "")
	shutdown, err := telemetry.Setup(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background())
	if _, ok := otel.GetTracerProvider().(*sdktrace.TracerProvider); ok {
		t.Fatal("an SDK tracer provider was installed with export off")
	}
	_, span := telemetry.Tracer(nil).Start(context.Background(), "probe")
	if span.IsRecording() {
		t.Fatal("span records with export off")
	}
}

func TestCheckRefusesGRPC(t *testing.T) {
	env := map[string]string{telemetry.EnvTracesEndpoint: "http://collector:4318", telemetry.EnvProtocol: "grpc"}
	err := telemetry.Check(func(k string) string { return env[k] })
	if !errors.Is(err, telemetry.ErrConfig) || !strings.Contains(err.Error(), telemetry.EnvProtocol) {
		t.Fatalf("Check: %v, want ErrConfig naming %s", err, telemetry.EnvProtocol)
	}
	env[telemetry.EnvProtocol] = telemetry.ProtocolHTTP
	if err := telemetry.Check(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	env[telemetry.EnvSDKDisabled] = "true"
	if telemetry.Enabled(func(k string) string { return env[k] }) {
		t.Fatal("OTEL_SDK_DISABLED=true still enabled")
	}
}

// A record logged inside a span names the trace; one outside does not.
func TestLogHandlerAddsTraceID(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(telemetry.LogHandler(slog.NewJSONHandler(&buf, nil))).With("component", "x")
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("t").Start(context.Background(), "s")
	log.InfoContext(ctx, "inside")
	span.End()
	log.Info("outside")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("log: %q", buf.String())
	}
	if want := `"trace_id":"` + span.SpanContext().TraceID().String() + `"`; !strings.Contains(lines[0], want) || !strings.Contains(lines[0], `"component":"x"`) {
		t.Errorf("inside a span: %s, want %s", lines[0], want)
	}
	if strings.Contains(lines[1], "trace_id") {
		t.Errorf("outside a span: %s", lines[1])
	}
}
