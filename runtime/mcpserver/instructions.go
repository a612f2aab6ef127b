package mcpserver

// instructions is what initialize tells a model about the server. Claude
// Code defers tools behind a search and shows this text first, so it
// carries what the tool descriptions assume: what a program is and the
// workflow. It stays under 2 KB (a test checks).
const instructions = `nano-vm-mcp runs programs: small deterministic state machines whose tool steps call WebAssembly-sandboxed tools under the operator's policy. Every step is persisted with a hash-chained audit envelope, so runs survive restarts, can be resumed, replayed and proved.

Workflow: list_tools (what tools exist) → run_program (returns a summary and trace_id) → get_trace (steps, paged) → verify_audit. A suspended run continues with resume_program. Pass idempotency_key for anything that must not happen twice. Registered tools are also listed as tools of their own: a call runs it as a one-step program and returns {output, trace_id}; its idempotency key goes in _meta "nanovm/idempotency_key".

Program: {"name":"…","steps":[…], optional "max_steps"}. Steps run in array order unless redirected. Every step has "id" and "type":
- tool: "tool" (a registered name, or name@sha256:<hex>), "args" {…}, "output_key".
- llm: "prompt", "system", "output_key", "allowed_outputs" [exact answers] (needs a configured model).
- condition: "condition" expression, "then" / "otherwise" step ids.
- parallel: "parallel_steps" [tool|llm steps], "max_concurrency".
Any step: "next_step" (jump), "is_terminal" (end with success), "on_error" fail|skip|retry, "max_retries", "timeout_seconds".
$refs: "$amount", "$reservation.id" read the input, a step's output by step id, or an output_key; a string that is exactly one $ref keeps the value's type.
Conditions: == != > >= < <= in, not in, contains, and, or, not, parentheses; strings in quotes; True/False/None. Example: "$check.status == 'ok' and $amount > 100".
A tool answering "PENDING" suspends the run; resume_program's payload then appears as $__webhook__.
Secrets: put_secret returns vault://secret/<id>; pass that ref, never the value.
Errors come back as JSON {"error": code, "message": …}: fix the named argument, field or step and retry.`
