package telemetry

import (
	"bytes"
	"context"
	"errors"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Ensure FromEnv configures tracing only from the OTEL_* variables: with
// none set (or the SDK disabled, or the exporter "none") the provider is
// the no-op one; an endpoint alone turns OTLP on; an exporter or protocol
// this build lacks is refused naming the variable.
func TestFromEnv(t *testing.T) {
	tests := []struct {
		name      string
		env       map[string]string
		exporters []string
		err       string
	}{
		{name: "nothing set", env: nil},
		{name: "exporter none", env: map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}},
		{name: "sdk disabled", env: map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}},
		{name: "unrelated variables", env: map[string]string{"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"}},
		{name: "endpoint alone", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, exporters: []string{"otlp http/protobuf"}},
		{name: "traces endpoint alone", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, exporters: []string{"otlp http/protobuf"}},
		{name: "grpc", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, exporters: []string{"otlp grpc"}},
		{name: "traces protocol wins", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, exporters: []string{"otlp http/protobuf"}},
		{name: "console and otlp", env: map[string]string{"OTEL_TRACES_EXPORTER": "console, otlp"}, exporters: []string{"console", "otlp http/protobuf"}},
		{name: "unknown exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, err: "OTEL_TRACES_EXPORTER"},
		{name: "http/json", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, err: "OTEL_EXPORTER_OTLP_PROTOCOL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var console bytes.Buffer
			tr, err := FromEnv(context.Background(), Options{Getenv: func(k string) string { return tt.env[k] }, Console: &console})
			if tt.err != "" {
				if !errors.Is(err, ErrConfig) || !bytes.Contains([]byte(err.Error()), []byte(tt.err)) {
					t.Fatalf("err = %v, want ErrConfig naming %s", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Shutdown(context.Background())
			if len(tt.exporters) == 0 {
				if _, ok := tr.Provider.(noop.TracerProvider); !ok || tr.Enabled() || !IsNoop(tr.Provider) {
					t.Fatalf("provider %T (enabled %v), want the no-op provider", tr.Provider, tr.Enabled())
				}
				return
			}
			if _, ok := tr.Provider.(*sdktrace.TracerProvider); !ok || !tr.Enabled() || IsNoop(tr.Provider) {
				t.Fatalf("provider %T, want the SDK's", tr.Provider)
			}
			if got := tr.Exporters; len(got) != len(tt.exporters) || got[0] != tt.exporters[0] || got[len(got)-1] != tt.exporters[len(got)-1] {
				t.Fatalf("exporters %q, want %q", got, tt.exporters)
			}
		})
	}
}

// Ensure the console exporter writes the spans it is given to its writer
// (stderr by default: never stdout, the stdio transport's channel), with
// the service name from OTEL_SERVICE_NAME.
func TestFromEnvConsole(t *testing.T) {
	var out bytes.Buffer
	env := map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "my-nano"}
	tr, err := FromEnv(context.Background(), Options{Getenv: func(k string) string { return env[k] }, Console: &out})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.Provider.Tracer("test").Start(context.Background(), "hello")
	span.End()
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out.Bytes(), []byte(`"Name":"hello"`)) || !bytes.Contains(out.Bytes(), []byte("my-nano")) {
		t.Fatalf("console output lacks the span or the service name:\n%s", out.String())
	}
}
