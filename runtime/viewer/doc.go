// Package viewer serves the run viewer: a read-only browser view of a
// database's runs, their step timelines, step outputs, state hashes and
// audit envelopes, the audit chain's status, the tool registry and the
// policy. It is one http.Handler rooted at /ui/: static files embedded in
// the binary (plain HTML, CSS and JavaScript modules; no CDN, no build
// step) and a JSON API under /ui/api/ backed by a Source — the runtime's
// own read functions, the ones get_trace, list_traces, verify_audit,
// list_tools and the policy resource call.
//
// # Auth
//
// The handler does no auth itself: the HTTP transport (mcpserver) puts
// it behind the same Host, Origin and bearer-token guard as /mcp, and
// the "nano-vm-mcp ui" command behind the same guard with a token of its
// own. The static files carry no data and are served without the token
// (Public reports which paths those are); every /ui/api/ request needs
// it, as an Authorization: Bearer header the page's script sends. The
// page asks for the token once and keeps it in sessionStorage (the tab's
// lifetime); "nano-vm-mcp ui" hands it over in the URL's fragment, which
// a browser never sends to a server, and the page removes it from the
// address bar at once. No cookie is set, so no request a browser makes on
// its own (a link, a form or an image of another site) is ever
// authenticated: there is nothing to forge. See RATIONALE.md, "Why does the
// run viewer send the token as a header from sessionStorage, not a
// cookie?".
//
// # Invariants
//
//   - Read-only: the API answers GET and HEAD only; nothing it calls
//     writes.
//   - Every name, output and log comes from clients and WebAssembly
//     modules, so the page inserts them as text only (textContent), never
//     as HTML; the Content-Security-Policy allows scripts, styles and
//     connections to this origin only, with no inline script, and the
//     page may not be framed.
//   - Every answer is bounded: a page of runs holds at most MaxRunsPage
//     runs after scanning at most MaxScan; a trace's step summaries come
//     MaxStepsPage at a time with names and errors clipped; one step's
//     output is clipped to MaxOutputBytes.
package viewer
