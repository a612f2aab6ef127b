package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// ErrConfig is returned by FromEnv when an OTEL_* variable asks for
// something this build cannot do (an unknown exporter or protocol); the
// message names the variable and the values it accepts.
var ErrConfig = errors.New("telemetry configuration")

// Options configures FromEnv. The zero value reads the process
// environment and writes the console exporter's spans to stderr.
type Options struct {
	// Getenv reads the variables that choose the exporters and the
	// resource; nil means os.Getenv (a hook for tests). The exporters
	// themselves read their OTEL_EXPORTER_OTLP_* settings, and the SDK its
	// sampler and batch settings, from the process environment.
	Getenv func(string) string
	// Console receives the console exporter's spans; nil means os.Stderr,
	// never stdout, which is the stdio transport's MCP channel.
	Console io.Writer
	// ServiceVersion is the resource's service.version; "" leaves it out.
	ServiceVersion string
}

// Tracing is the tracer provider FromEnv configured, and how to flush it.
type Tracing struct {
	// Provider makes the tracers: the SDK's with the configured exporters,
	// or the no-op provider when none is configured.
	Provider trace.TracerProvider
	// Exporters names what spans go to ("otlp http/protobuf", "otlp grpc",
	// "console"), empty when tracing is off.
	Exporters []string
	shutdown  func(context.Context) error
}

// Enabled reports whether spans go anywhere.
func (t *Tracing) Enabled() bool { return t != nil && len(t.Exporters) > 0 }

// Shutdown flushes the spans not yet exported and stops the exporters;
// the no-op provider has nothing to do.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil || t.shutdown == nil {
		return nil
	}
	return t.shutdown(ctx)
}

// DefaultServiceName is the resource's service.name unless
// OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES) says
// otherwise.
const DefaultServiceName = "nano-vm-mcp"

// FromEnv builds the tracer provider the standard OpenTelemetry variables
// describe, and nothing else configures it:
//
//   - OTEL_SDK_DISABLED=true: tracing off, whatever else is set.
//   - OTEL_TRACES_EXPORTER: a comma-separated list of "otlp", "console"
//     (spans as JSON on stderr) and "none". Unset, it is "otlp" when
//     OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is
//     set, and "none" otherwise: tracing is off by default.
//   - OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL:
//     "http/protobuf" (the default) or "grpc".
//   - The OTLP exporters read their own OTEL_EXPORTER_OTLP_* variables
//     (endpoint, headers, timeout, compression, certificates, insecure),
//     the SDK reads OTEL_TRACES_SAMPLER(_ARG), OTEL_BSP_* and the span
//     limits, and the resource OTEL_SERVICE_NAME and
//     OTEL_RESOURCE_ATTRIBUTES.
//
// With no exporter the provider is noop.NewTracerProvider(): the runtime
// then instruments nothing.
func FromEnv(ctx context.Context, o Options) (*Tracing, error) {
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	off := &Tracing{Provider: noop.NewTracerProvider()}
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return off, nil
	}
	names := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER"))
	if names == "" {
		if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
			return off, nil
		}
		names = "otlp"
	}
	var exporters []sdktrace.SpanExporter
	var described []string
	closeAll := func() {
		for _, e := range exporters {
			_ = e.Shutdown(context.Background())
		}
	}
	seen := map[string]bool{}
	for _, name := range strings.Split(names, ",") {
		name = strings.ToLower(strings.TrimSpace(name))
		if name == "" || name == "none" || seen[name] {
			continue
		}
		seen[name] = true
		var exp sdktrace.SpanExporter
		var err error
		desc := name
		switch name {
		case "otlp":
			proto := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"))
			if proto == "" {
				proto = strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_PROTOCOL"))
			}
			switch strings.ToLower(proto) {
			case "", "http/protobuf":
				exp, err = otlptracehttp.New(ctx)
				desc = "otlp http/protobuf"
			case "grpc":
				exp, err = otlptracegrpc.New(ctx)
				desc = "otlp grpc"
			default:
				closeAll()
				return nil, fmt.Errorf("%w: OTEL_EXPORTER_OTLP_PROTOCOL=%q is not supported; use http/protobuf (the default) or grpc", ErrConfig, proto)
			}
		case "console":
			w := o.Console
			if w == nil {
				w = os.Stderr
			}
			exp, err = stdouttrace.New(stdouttrace.WithWriter(w))
		default:
			closeAll()
			return nil, fmt.Errorf("%w: OTEL_TRACES_EXPORTER=%q: exporter %q is not supported; use otlp, console or none", ErrConfig, names, name)
		}
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("telemetry: exporter %s: %w", desc, err)
		}
		exporters = append(exporters, exp)
		described = append(described, desc)
	}
	if len(exporters) == 0 {
		return off, nil
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", DefaultServiceName)}
	if o.ServiceVersion != "" {
		attrs = append(attrs, attribute.String("service.version", o.ServiceVersion))
	}
	// Later attributes win: the environment overrides the defaults.
	attrs = append(attrs, envResource(getenv)...)
	res, err := resource.New(ctx, resource.WithTelemetrySDK(), resource.WithAttributes(attrs...))
	if err != nil && res == nil {
		closeAll()
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	for _, e := range exporters {
		opts = append(opts, sdktrace.WithBatcher(e))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	return &Tracing{Provider: tp, Exporters: described, shutdown: tp.Shutdown}, nil
}

// envResource reads OTEL_RESOURCE_ATTRIBUTES (key=value pairs separated
// by commas, values percent-encoded) and OTEL_SERVICE_NAME, which wins
// over a service.name among them. A malformed pair is skipped.
func envResource(getenv func(string) string) []attribute.KeyValue {
	var attrs []attribute.KeyValue
	for _, pair := range strings.Split(getenv("OTEL_RESOURCE_ATTRIBUTES"), ",") {
		k, v, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			continue
		}
		if dv, err := url.PathUnescape(strings.TrimSpace(v)); err == nil {
			attrs = append(attrs, attribute.String(k, dv))
		}
	}
	if name := strings.TrimSpace(getenv("OTEL_SERVICE_NAME")); name != "" {
		attrs = append(attrs, attribute.String("service.name", name))
	}
	return attrs
}

// IsNoop reports whether tp records nothing: nil, or the no-op provider.
// The runtime then skips its instrumentation altogether.
func IsNoop(tp trace.TracerProvider) bool {
	if tp == nil {
		return true
	}
	_, ok := tp.(noop.TracerProvider)
	return ok
}
