package mcpserver

// Chunked module uploads: upload_module stages a module in pieces in a
// file under the server's data folder, and register_tool takes it by its
// upload id (module_upload) instead of inline base64. A large module then
// never travels, or sits in the server's memory, as one JSON message. See
// .rationale/mcp.md ("Why are large modules uploaded in chunks?").

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/nanovm/nano-vm-mcp/runtime"
	"github.com/nanovm/nano-vm-mcp/store"
)

// Defaults of the chunked upload's bounds (Options fields left zero).
const (
	// MaxChunkBytes is the most one upload_module call may carry, decoded:
	// 1 MiB, about 1.4 MB of base64, far inside every transport's message
	// limit.
	MaxChunkBytes = 1 << 20
	// DefaultUploadTTL is how long an upload may go without a chunk (or,
	// finished, without being registered) before it is discarded and its
	// staged file removed.
	DefaultUploadTTL = 10 * time.Minute
	// DefaultUploadsPerSession bounds the uploads one MCP session may have
	// open at once.
	DefaultUploadsPerSession = 2
	// DefaultMaxStagedBytes bounds the bytes all open uploads may stage on
	// disk together.
	DefaultMaxStagedBytes = 256 << 20
)

// codeUploadLimit is the error code of a chunk refused because it would
// take an upload, a session's uploads or all staged uploads past a bound.
const codeUploadLimit = "upload_limit"

// uploadIDPattern is an upload id: "up_" and 128 random bits in hex.
var uploadIDPattern = regexp.MustCompile(`^up_[0-9a-f]{32}$`)

// maxTombstones bounds the ids remembered after their upload ended, so a
// late chunk is told why rather than only "unknown".
const maxTombstones = 1024

// uploads holds the open chunked uploads; safe for concurrent use.
type uploads struct {
	dir        string
	ttl        time.Duration
	maxBytes   int64 // one upload: the module ceiling
	maxStaged  int64 // all open uploads
	perSession int
	now        func() time.Time

	mu     sync.Mutex
	open   map[string]*upload
	staged int64
	// gone remembers why an id ended (expired, registered, discarded),
	// for its own session only; bounded by maxTombstones.
	gone      map[string]tombstone
	goneOrder []string
	dirReady  bool
}

type tombstone struct{ session, why string }

// upload is one staged module.
type upload struct {
	id, session string
	path        string
	size        int64
	sum         hash.Hash
	done        bool
	touched     time.Time
	// busy is set while register_tool reads the staged file: a chunk or
	// a second registration is refused, and the sweep leaves it alone.
	busy bool
}

func newUploads(dir string, o *Options, maxModule int64) *uploads {
	u := &uploads{
		dir: dir, ttl: o.UploadTTL, maxBytes: maxModule, maxStaged: o.MaxStagedUploadBytes,
		perSession: o.UploadsPerSession, now: o.Now,
		open: map[string]*upload{}, gone: map[string]tombstone{},
	}
	orDefault(&u.ttl, DefaultUploadTTL)
	orDefault(&u.maxStaged, DefaultMaxStagedBytes)
	orDefault(&u.perSession, DefaultUploadsPerSession)
	if u.now == nil {
		u.now = time.Now
	}
	return u
}

// stagedPrefix and stagedSuffix name a staged file: "up-<random>.part".
const (
	stagedPrefix = "up-"
	stagedSuffix = ".part"
)

// removeLeftovers removes staged files a crashed or killed server left,
// older than the TTL (a live upload of this database touches its file at
// every chunk).
func (u *uploads) removeLeftovers() {
	ents, err := os.ReadDir(u.dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, stagedPrefix) || !strings.HasSuffix(name, stagedSuffix) {
			continue
		}
		if info, err := e.Info(); err == nil && u.now().Sub(info.ModTime()) > u.ttl {
			_ = os.Remove(filepath.Join(u.dir, name))
		}
	}
}

// sweepLocked discards the uploads idle past the TTL; under mu.
func (u *uploads) sweepLocked() {
	now := u.now()
	for _, up := range u.open {
		if !up.busy && now.Sub(up.touched) > u.ttl {
			u.dropLocked(up, fmt.Sprintf("expired: nothing came for it in %s (the uploads' time limit); start a new upload", u.ttl))
		}
	}
}

// dropLocked ends up, removing its file and remembering why; under mu.
func (u *uploads) dropLocked(up *upload, why string) {
	delete(u.open, up.id)
	u.staged -= up.size
	_ = os.Remove(up.path)
	if len(u.goneOrder) >= maxTombstones {
		delete(u.gone, u.goneOrder[0])
		u.goneOrder = u.goneOrder[1:]
	}
	u.gone[up.id] = tombstone{session: up.session, why: why}
	u.goneOrder = append(u.goneOrder, up.id)
}

// closeAll removes every staged file (Shutdown).
func (u *uploads) closeAll() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, up := range u.open {
		u.dropLocked(up, "the server shut down")
	}
}

// find returns session's open upload id, or a not_found error saying why
// there is none; under mu. An id another session started is reported as
// unknown to this one: the id is its owner's alone.
func (u *uploads) findLocked(session, id string) (*upload, error) {
	if !uploadIDPattern.MatchString(id) {
		return nil, argError("argument \"upload_id\": %s is not an upload id (\"up_\" and 32 hex digits, as upload_module returned it)", store.Clip(id))
	}
	if up, ok := u.open[id]; ok && up.session == session {
		return up, nil
	}
	if t, ok := u.gone[id]; ok && t.session == session {
		return nil, &runtime.Error{Code: runtime.CodeNotFound, Message: fmt.Sprintf("upload %s has ended: %s", id, t.why)}
	}
	return nil, &runtime.Error{Code: runtime.CodeNotFound, Message: fmt.Sprintf("no upload %s in this session: an upload is bound to the MCP session that started it, and ends when it expires, is registered or the server restarts", id)}
}

func (u *uploads) ensureDirLocked() error {
	if u.dirReady {
		return nil
	}
	if err := os.MkdirAll(u.dir, 0o700); err != nil {
		return fmt.Errorf("upload module: staging folder: %w", err)
	}
	u.dirReady = true
	return nil
}

// chunkResult is upload_module's answer.
type chunkResult struct {
	UploadID      string    `json:"upload_id"`
	ReceivedBytes int64     `json:"received_bytes"`
	SHA256        string    `json:"sha256"`
	Done          bool      `json:"done"`
	ExpiresAt     time.Time `json:"expires_at"`
	Next          string    `json:"next"`
}

// chunk appends data at offset to session's upload id ("" starts one),
// sealing it when done; want, when set on done, is the sha256 the whole
// module must have.
func (u *uploads) chunk(session, id string, offset int64, data []byte, done bool, want string) (chunkResult, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.sweepLocked()
	var up *upload
	if id == "" {
		if offset != 0 {
			return chunkResult{}, argError("argument \"offset\": %d, but a new upload (no upload_id) starts at offset 0", offset)
		}
		n := 0
		for _, o := range u.open {
			if o.session == session {
				n++
			}
		}
		if n >= u.perSession {
			return chunkResult{}, &runtime.Error{Code: codeUploadLimit, Message: fmt.Sprintf("this session has %d uploads open, the most one session may have; finish one (register it) or let it expire (%s without a chunk)", n, u.ttl)}
		}
		if err := u.ensureDirLocked(); err != nil {
			return chunkResult{}, err
		}
		f, err := os.CreateTemp(u.dir, stagedPrefix+"*"+stagedSuffix)
		if err != nil {
			return chunkResult{}, fmt.Errorf("upload module: stage: %w", err)
		}
		path := f.Name()
		if err := f.Close(); err != nil {
			_ = os.Remove(path)
			return chunkResult{}, fmt.Errorf("upload module: stage: %w", err)
		}
		var b [16]byte
		if _, err := io.ReadFull(rand.Reader, b[:]); err != nil {
			_ = os.Remove(path)
			return chunkResult{}, fmt.Errorf("upload module: id: %w", err)
		}
		up = &upload{id: "up_" + hex.EncodeToString(b[:]), session: session, path: path, sum: sha256.New(), touched: u.now()}
		u.open[up.id] = up
	} else {
		var err error
		if up, err = u.findLocked(session, id); err != nil {
			return chunkResult{}, err
		}
		switch {
		case up.busy:
			return chunkResult{}, argError("upload %s is being registered now; wait for register_tool's answer", id)
		case up.done:
			return chunkResult{}, argError("upload %s is finished (done was given, at %d bytes); register it with register_tool's module_upload, or start a new upload", id, up.size)
		case offset != up.size:
			return chunkResult{}, argError("argument \"offset\": %d, but upload %s has %d bytes: chunks go in order, each at the offset where the last one ended (received_bytes); send the chunk at offset %d", offset, id, up.size, up.size)
		}
	}
	if up.size+int64(len(data)) > u.maxBytes {
		u.dropLocked(up, "it went over the module size ceiling")
		return chunkResult{}, &runtime.Error{Code: codeUploadLimit, Message: fmt.Sprintf("upload %s would hold %d bytes with this chunk, over the %d-byte ceiling on one module (--max-module-bytes); the upload is discarded", up.id, up.size+int64(len(data)), u.maxBytes)}
	}
	if u.staged+int64(len(data)) > u.maxStaged {
		return chunkResult{}, &runtime.Error{Code: codeUploadLimit, Message: fmt.Sprintf("the server stages %d bytes of unfinished uploads; this chunk would take them over the %d-byte bound on all staged uploads; retry later", u.staged, u.maxStaged)}
	}
	if len(data) > 0 {
		if err := appendFile(up.path, data); err != nil {
			u.dropLocked(up, "its staged file could not be written")
			return chunkResult{}, fmt.Errorf("upload module %s: %w", up.id, err)
		}
		up.sum.Write(data)
		up.size += int64(len(data))
		u.staged += int64(len(data))
	}
	up.touched = u.now()
	sum := hex.EncodeToString(up.sum.Sum(nil))
	if done {
		if up.size == 0 {
			u.dropLocked(up, "it was finished empty")
			return chunkResult{}, argError("upload %s is finished with no bytes: a module cannot be empty; the upload is discarded", up.id)
		}
		if want != "" && !strings.EqualFold(want, sum) {
			u.dropLocked(up, "its bytes did not hash to the sha256 given")
			return chunkResult{}, argError("argument \"sha256\": the %d bytes received hash to %s, not %s; a chunk was lost or altered: the upload is discarded, start again", up.size, sum, store.Clip(want))
		}
		up.done = true
	}
	out := chunkResult{UploadID: up.id, ReceivedBytes: up.size, SHA256: sum, Done: up.done, ExpiresAt: up.touched.Add(u.ttl).UTC()}
	if up.done {
		out.Next = fmt.Sprintf(`Finished. Register it: register_tool {"name":…,"manifest":…,"module_upload":%q}.`, up.id)
	} else {
		out.Next = fmt.Sprintf("Send the next chunk with upload_id %q and offset %d; the last one with done: true.", up.id, up.size)
	}
	return out, nil
}

func appendFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// take reads session's finished upload id into one buffer of its exact
// size, for register_tool. The upload stays, busy, until release: with
// ok true (registered) it ends and its file is removed; with ok false it
// may be registered again (a corrected manifest) until it expires.
func (u *uploads) take(session, id string) (wasm []byte, sum string, release func(ok bool), err error) {
	u.mu.Lock()
	u.sweepLocked()
	up, err := u.findLocked(session, id)
	if err == nil {
		switch {
		case up.busy:
			err = argError("upload %s is being registered now; wait for that register_tool's answer", id)
		case !up.done:
			err = argError("upload %s is not finished: it has %d bytes; send its last chunk with done: true, then register it", id, up.size)
		}
	}
	if err != nil {
		u.mu.Unlock()
		return nil, "", nil, err
	}
	up.busy = true
	path, size, want := up.path, up.size, hex.EncodeToString(up.sum.Sum(nil))
	u.mu.Unlock()

	release = func(ok bool) {
		u.mu.Lock()
		defer u.mu.Unlock()
		up.busy = false
		up.touched = u.now()
		if ok {
			u.dropLocked(up, "it was registered")
		}
	}
	wasm, err = readStaged(path, size)
	if err == nil {
		if got := sha256.Sum256(wasm); hex.EncodeToString(got[:]) != want {
			err = fmt.Errorf("upload module %s: the staged file changed: it hashes to %x, the chunks to %s", id, got, want)
		}
	}
	if err != nil {
		release(false)
		return nil, "", nil, err
	}
	return wasm, want, release, nil
}

// readStaged reads a staged file of size bytes into one buffer of that
// size.
func readStaged(path string, size int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("upload module: read staged file: %w", err)
	}
	defer f.Close()
	buf := make([]byte, size)
	if _, err := io.ReadFull(f, buf); err != nil {
		return nil, fmt.Errorf("upload module: read staged file: %w", err)
	}
	return buf, nil
}

// sweepLoop discards expired uploads until stop is done, so an abandoned
// upload's file goes even when no further upload comes.
func (u *uploads) sweepLoop(stop context.Context) {
	t := time.NewTicker(min(u.ttl/2, time.Minute))
	defer t.Stop()
	for {
		select {
		case <-stop.Done():
			return
		case <-t.C:
			u.mu.Lock()
			u.sweepLocked()
			u.mu.Unlock()
		}
	}
}

// sessionOf names the MCP session a call came on ("" when it has none:
// an in-process call without a session).
func sessionOf(ctx context.Context) string {
	if s := server.ClientSessionFromContext(ctx); s != nil {
		return s.SessionID()
	}
	return ""
}

type chunkArgs struct {
	UploadID string `json:"upload_id"`
	Offset   *int64 `json:"offset"`
	Data     string `json:"data"`
	Done     bool   `json:"done"`
	SHA256   string `json:"sha256"`
}

func uploadModuleDef() toolDef {
	return toolDef{
		name:  "upload_module",
		title: "Upload a large module in chunks",
		description: fmt.Sprintf(`Upload a WebAssembly module in chunks, for register_tool's module_upload: the way to send a module too large for one message (more than a few MB).

Start with offset 0 and no upload_id; the answer gives upload_id. Send each further chunk with that upload_id at offset received_bytes, in order; give done: true with the last one (optionally sha256 of the whole module, checked). Then call register_tool with module_upload set to the upload_id instead of wasm_base64. Each chunk's data is standard base64 of at most %d bytes. The whole module is bounded by the server's module ceiling; an upload belongs to the session that started it and is discarded after %s without a chunk, or once registered.

Example: {"offset":0,"data":"AGFzbQEAAAA…"} then {"upload_id":"up_…","offset":1048576,"data":"…","done":true}`, MaxChunkBytes, DefaultUploadTTL),
		input: closed(map[string]any{
			"upload_id": str("The upload to continue, as the first chunk's answer gave it; absent to start a new upload."),
			"offset":    integer("Where this chunk goes: 0 for the first, then received_bytes of the previous answer."),
			"data":      str(fmt.Sprintf("This chunk of the module, standard base64, at most %d bytes decoded; may be empty with done.", MaxChunkBytes)),
			"done":      boolean("True with the last chunk: the upload is finished and can be registered."),
			"sha256":    str("With done: the SHA-256 (hex) of the whole module, checked against the bytes received."),
		}, "offset"),
		output: object(map[string]any{
			"upload_id":      str("Pass it with the next chunk, and as register_tool's module_upload."),
			"received_bytes": integer("The bytes received so far: the next chunk's offset."),
			"sha256":         str("SHA-256 (hex) of the bytes received so far."),
			"done":           boolean("True once the upload is finished."),
			"expires_at":     str("RFC 3339 time after which the upload is discarded unless another chunk (or the registration) comes."),
			"next":           str("What to do next."),
		}, "upload_id", "received_bytes", "sha256", "done", "expires_at", "next"),
		readOnly: false, destructive: false, idempotent: false, openWorld: false,
		handler: withArgs((*Server).uploadModule),
	}
}

func (s *Server) uploadModule(ctx context.Context, req mcp.CallToolRequest, a chunkArgs) (any, error) {
	if a.Offset == nil {
		return nil, argError("argument \"offset\" is required: 0 for the first chunk, then the received_bytes of the previous answer")
	}
	if *a.Offset < 0 {
		return nil, argError("argument \"offset\": %d is negative", *a.Offset)
	}
	if a.Data == "" && !a.Done {
		return nil, argError("argument \"data\" is required (it may be empty only with done: true)")
	}
	if a.SHA256 != "" && !a.Done {
		return nil, argError("argument \"sha256\" is given with the last chunk only (done: true)")
	}
	// Refuse an oversized chunk before decoding it: base64 with line
	// breaks is at most about 4/3 of its bytes, plus the breaks.
	if len(a.Data) > 2*base64.StdEncoding.EncodedLen(MaxChunkBytes) {
		return nil, &runtime.Error{Code: codeUploadLimit, Message: fmt.Sprintf("argument \"data\" is %d characters of base64, more than a chunk of %d bytes takes; send smaller chunks", len(a.Data), MaxChunkBytes)}
	}
	var data []byte
	if a.Data != "" {
		var err error
		if data, err = decodeBase64(a.Data); err != nil {
			return nil, argError("argument \"data\": %v", err)
		}
	}
	if len(data) > MaxChunkBytes {
		return nil, &runtime.Error{Code: codeUploadLimit, Message: fmt.Sprintf("argument \"data\" holds %d bytes, over the %d-byte limit of one chunk; send smaller chunks", len(data), MaxChunkBytes)}
	}
	return s.uploads.chunk(sessionOf(ctx), a.UploadID, *a.Offset, data, a.Done, a.SHA256)
}
