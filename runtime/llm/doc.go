// Package llm answers a program's llm steps: it turns a model string of the
// form provider/model (the value of NANO_VM_MCP_LLM_MODEL, as LiteLLM spells
// it) into a kernel.LLMClient that talks to that provider.
//
// Supported providers:
//
//   - openai/<model>: any OpenAI-compatible Chat Completions endpoint
//     (OpenAI, vLLM, a LiteLLM proxy, a llama.cpp server).
//   - ollama/<model>: Ollama's local OpenAI-compatible endpoint.
//   - anthropic/<model>: Anthropic's Messages API.
//   - mock/<spec>: a deterministic, offline provider for examples, tests and
//     benchmarks (see [New] for its spec forms).
//
// The HTTP clients are written on net/http and encoding/json; RATIONALE.md
// ("LLM providers") says why no SDK is used and how the mock stays
// deterministic.
//
// # Invariants
//
//   - A client holds no per-call state: one client serves any number of
//     concurrent calls, and the mock provider's answer depends only on the
//     request, never on call order.
//   - Provider errors reach the caller verbatim (status and capped body) as
//     an [*APIError]; [IsRetryable] tells rate limits, server and network
//     failures apart from requests that will fail again.
//   - Every response body is read through a size cap.
//
// # Caveats
//
//   - Cost is computed from a built-in price table ([DefaultPrices]) that is
//     only as current as its date; unknown models cost 0.
//   - The kernel owns retries and step timeouts (through ctx); a client makes
//     exactly one HTTP request per Complete call.
package llm
