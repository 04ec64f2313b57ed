// Package telemetry sets up OpenTelemetry tracing for syncd: OTLP export
// when the standard OTEL_EXPORTER_OTLP_* variables name an endpoint, the
// no-op tracer provider (no cost) otherwise, and a slog handler that puts
// the trace and span ids on records logged inside a span.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// The standard variables that turn export on, and the protocol ones
// checked (the exporter speaks OTLP over HTTP with protobuf).
const (
	EnvEndpoint        = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvTracesEndpoint  = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	EnvProtocol        = "OTEL_EXPORTER_OTLP_PROTOCOL"
	EnvTracesProtocol  = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	EnvSDKDisabled     = "OTEL_SDK_DISABLED"
	ProtocolHTTP       = "http/protobuf"
	ServiceNameDefault = "syncd"
)

// Instrumentation is the name syncd's tracers go by.
const Instrumentation = "github.com/syncd/syncd"

// ErrConfig marks an OTEL_* setting syncd cannot honour.
var ErrConfig = errors.New("telemetry config")

// Enabled reports whether the environment asks for trace export.
func Enabled(getenv func(string) string) bool {
	if strings.EqualFold(strings.TrimSpace(getenv(EnvSDKDisabled)), "true") {
		return false
	}
	return getenv(EnvEndpoint) != "" || getenv(EnvTracesEndpoint) != ""
}

// Check refuses what Setup would: a protocol other than http/protobuf.
func Check(getenv func(string) string) error {
	if !Enabled(getenv) {
		return nil
	}
	for _, k := range []string{EnvTracesProtocol, EnvProtocol} {
		if v := getenv(k); v != "" {
			if v != ProtocolHTTP {
				return fmt.Errorf("%w: %s=%q: syncd exports traces over %s only", ErrConfig, k, v, ProtocolHTTP)
			}
			break
		}
	}
	return nil
}

// Setup installs the global tracer provider and W3C propagator when the
// environment enables export, and returns the function that flushes and
// stops it. Otherwise it installs nothing: the global provider stays the
// no-op one and shutdown does nothing. The exporter reads the rest of the
// OTEL_EXPORTER_OTLP_* variables (headers, timeout, TLS) itself; the SDK
// reads OTEL_TRACES_SAMPLER and OTEL_SERVICE_NAME.
func Setup(ctx context.Context, version string) (shutdown func(context.Context) error, err error) {
	if err := Check(os.Getenv); err != nil {
		return nil, err
	}
	if !Enabled(os.Getenv) {
		return func(context.Context) error { return nil }, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", ServiceNameDefault), attribute.String("service.version", version)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES win
		resource.WithTelemetrySDK(),
	)
	if err != nil {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	return tp.Shutdown, nil
}

// Tracer is syncd's tracer from tp, or from the global provider when tp
// is nil (the no-op one unless Setup enabled export).
func Tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer(Instrumentation)
}
