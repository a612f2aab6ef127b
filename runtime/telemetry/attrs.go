package telemetry

import "go.opentelemetry.io/otel/attribute"

// Attribute keys of the OpenTelemetry semantic conventions the spans and
// metrics carry (MCP, gen_ai, JSON-RPC, network, error), as strings: the
// MCP ones are still in development upstream.
const (
	KeyMCPMethodName      = attribute.Key("mcp.method.name")
	KeyMCPSessionID       = attribute.Key("mcp.session.id")
	KeyMCPProtocolVersion = attribute.Key("mcp.protocol.version")
	KeyJSONRPCRequestID   = attribute.Key("jsonrpc.request.id")
	KeyNetworkTransport   = attribute.Key("network.transport")
	KeyErrorType          = attribute.Key("error.type")

	KeyGenAIOperationName = attribute.Key("gen_ai.operation.name")
	KeyGenAIToolName      = attribute.Key("gen_ai.tool.name")
	KeyGenAIProviderName  = attribute.Key("gen_ai.provider.name")
	KeyGenAISystem        = attribute.Key("gen_ai.system") // the older name of gen_ai.provider.name, still read by many backends
	KeyGenAIRequestModel  = attribute.Key("gen_ai.request.model")
	KeyGenAIUsageInput    = attribute.Key("gen_ai.usage.input_tokens")
	KeyGenAIUsageOutput   = attribute.Key("gen_ai.usage.output_tokens")
)

// nano-vm-mcp's own attribute keys, under "nanovm.".
const (
	// KeyTraceID is the run's trace id (the store's and get_trace's id,
	// not the OpenTelemetry trace id).
	KeyTraceID     = attribute.Key("nanovm.trace_id")
	KeyProgramName = attribute.Key("nanovm.program.name")
	KeyRunStatus   = attribute.Key("nanovm.run.status")
	KeyRunSteps    = attribute.Key("nanovm.run.steps")
	KeyStepID      = attribute.Key("nanovm.step.id")
	KeyStepIndex   = attribute.Key("nanovm.step.index")
	KeyStepType    = attribute.Key("nanovm.step.type")
	KeyStepStatus  = attribute.Key("nanovm.step.status")
	KeyAttempt     = attribute.Key("nanovm.attempt")
	// KeyToolModuleSHA256 and KeyToolManifestSHA256 name the exact code a
	// tool call ran; KeyToolCapabilities the capabilities it held;
	// KeyToolMemoryBytes its instance's peak linear memory.
	KeyToolModuleSHA256   = attribute.Key("nanovm.tool.module_sha256")
	KeyToolManifestSHA256 = attribute.Key("nanovm.tool.manifest_sha256")
	KeyToolSource         = attribute.Key("nanovm.tool.source")
	KeyToolCapabilities   = attribute.Key("nanovm.tool.capabilities")
	KeyToolMemoryBytes    = attribute.Key("nanovm.tool.memory_bytes")
)

// Values of the attributes above.
const (
	// OperationExecuteTool is gen_ai.operation.name of tools/call and of a
	// tool step's call.
	OperationExecuteTool = "execute_tool"
	// OperationChat is gen_ai.operation.name of an llm step's call.
	OperationChat = "chat"
	// ErrorTypeTool is error.type of a tools/call whose result has
	// isError set.
	ErrorTypeTool = "tool_error"
	// TransportPipe and TransportTCP are network.transport of the stdio
	// transport (and the shared socket a stdio server forwards to) and of
	// the HTTP transports.
	TransportPipe = "pipe"
	TransportTCP  = "tcp"
)
