package simulator

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Fault is an injected misbehaviour for the requests of one API whose path
// starts with PathPrefix. Several kinds may be combined; they apply in the
// order Latency, ExpireAuth, Reset, Status, NonJSON, Truncate.
type Fault struct {
	// PathPrefix limits the fault to paths with this prefix ("" = all), for
	// example "/api/v3/infrastructure".
	PathPrefix string
	// Method, when set, limits the fault to requests of this method (POST:
	// the action calls only, not the reads that track them).
	Method string
	// Status > 0 answers with this status in the API's own error format
	// (VSPC turns >= 500 into 520) without calling the API: a refusal
	// that did nothing (429, or a 5xx before processing).
	Status int
	// AfterAction makes Status come after the API has handled the request
	// (its answer is dropped): an action that was carried out although the
	// client sees an error (a 5xx or a 401 after the call, issue 17).
	AfterAction bool
	// RetryAfter goes with Status 429: VSPC's retryAfter seconds and the
	// Retry-After header.
	RetryAfter int
	// Latency is an extra delay before answering.
	Latency time.Duration
	// ExpireAuth invalidates all tokens and sessions once, at the first
	// matching request, which then proceeds (and gets the API's 401 unless it
	// is a login). It is one-shot whatever Count says.
	ExpireAuth bool
	// Truncate sends the real response with its full Content-Length but only
	// the first half of the body, then closes the connection: clients see an
	// unexpected EOF.
	Truncate bool
	// NonJSON answers 200 with an HTML body.
	NonJSON bool
	// Reset closes the TCP connection without an answer.
	Reset bool
	// Count limits the fault to the next Count matching requests; 0 means
	// until cleared.
	Count int
}

// faultSet holds the current fault of each API.
type faultSet struct {
	mu     sync.Mutex
	byAPI  map[API]*Fault
	remain map[API]int // matches left when Count > 0
}

func newFaultSet() *faultSet {
	return &faultSet{byAPI: make(map[API]*Fault), remain: make(map[API]int)}
}

func (fs *faultSet) set(api API, f Fault) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.byAPI[api] = &f
	fs.remain[api] = f.Count
}

func (fs *faultSet) clear() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	clear(fs.byAPI)
	clear(fs.remain)
}

// match returns the fault for a request and consumes one of its uses.
func (fs *faultSet) match(api API, method, path string) (Fault, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	f := fs.byAPI[api]
	if f == nil || !strings.HasPrefix(path, f.PathPrefix) || (f.Method != "" && !strings.EqualFold(f.Method, method)) {
		return Fault{}, false
	}
	got := *f
	if f.ExpireAuth {
		f.ExpireAuth = false
		if !f.active() {
			delete(fs.byAPI, api)
			delete(fs.remain, api)
			return got, true
		}
	}
	if f.Count > 0 {
		fs.remain[api]--
		if fs.remain[api] <= 0 {
			delete(fs.byAPI, api)
			delete(fs.remain, api)
		}
	}
	return got, true
}

// active reports whether the fault still does anything.
func (f *Fault) active() bool {
	return f.Status > 0 || f.Latency > 0 || f.ExpireAuth || f.Truncate || f.NonJSON || f.Reset
}

// SetFault replaces the fault of an API.
func (s *Simulator) SetFault(api API, f Fault) { s.faults.set(api, f) }

// ClearFaults removes the faults of all APIs.
func (s *Simulator) ClearFaults() { s.faults.clear() }

// retryAfterWriter is implemented by APIs with a throttling body of their
// own (VSPC's retryAfter); the others get writeError and a Retry-After
// header.
type retryAfterWriter interface {
	writeRetryAfter(w http.ResponseWriter, seconds int)
}

// sleep waits for d or until ctx ends, reporting whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// applyFault serves r under fault f, calling next when the fault lets the
// request through.
func applyFault(w http.ResponseWriter, r *http.Request, h apiHandler, f Fault, next http.Handler) {
	if f.ExpireAuth {
		h.expireAuth()
	}
	switch {
	case f.Reset:
		resetConn(w)
	case f.Status > 0 && f.AfterAction:
		// Carry the request out, drop the answer, then fail.
		next.ServeHTTP(&bufferWriter{header: make(http.Header), status: http.StatusOK}, r)
		h.writeError(w, f.Status, "Simulated fault after processing: "+statusText(f.Status))
	case f.Status > 0:
		if f.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
			if ra, ok := h.(retryAfterWriter); ok && f.Status == http.StatusTooManyRequests {
				ra.writeRetryAfter(w, f.RetryAfter)
				return
			}
		}
		h.writeError(w, f.Status, "Simulated fault: "+statusText(f.Status))
	case f.NonJSON:
		body := "<html><body><h1>502 Bad Gateway</h1>garbage</body></html>"
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(body))
	case f.Truncate:
		rec := &bufferWriter{header: make(http.Header), status: http.StatusOK}
		next.ServeHTTP(rec, r)
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		body := rec.body.Bytes()
		// The full length is announced and half is sent: net/http then
		// closes the connection, so the client reads an unexpected EOF.
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(rec.status)
		_, _ = w.Write(body[:len(body)/2])
		_ = http.NewResponseController(w).Flush()
	default:
		next.ServeHTTP(w, r)
	}
}

func statusText(code int) string {
	if t := http.StatusText(code); t != "" {
		return strconv.Itoa(code) + " " + t
	}
	return "HTTP " + strconv.Itoa(code)
}

// resetConn hijacks the connection and closes it with SO_LINGER 0, so that
// the peer sees a TCP reset (under TLS as well: the TLS layer is bypassed and
// no close_notify is sent).
func resetConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// HTTP/2 cannot be hijacked; we only serve HTTP/1.1, so this does
		// not happen, but do not answer normally either.
		panic(http.ErrAbortHandler)
	}
	raw := conn
	if tc, ok := conn.(*tls.Conn); ok {
		raw = tc.NetConn()
	}
	if tcp, ok := raw.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = raw.Close()
}

// bufferWriter records a response in memory.
type bufferWriter struct {
	header http.Header
	status int
	wrote  bool
	body   bytes.Buffer
}

func (b *bufferWriter) Header() http.Header { return b.header }

func (b *bufferWriter) WriteHeader(code int) {
	if !b.wrote {
		b.status, b.wrote = code, true
	}
}

func (b *bufferWriter) Write(p []byte) (int, error) {
	b.wrote = true
	return b.body.Write(p)
}

// statusWriter reports the response status once, before the first byte of
// the response goes out (or when the connection is hijacked, with status 0),
// so that the request log holds every request a client has had an answer
// to. It unwraps for http.ResponseController (hijack, flush).
type statusWriter struct {
	http.ResponseWriter
	status   int
	onStatus func(status int)
}

func (s *statusWriter) report(code int) {
	if s.onStatus != nil {
		f := s.onStatus
		s.onStatus = nil
		s.status = code
		f(code)
	}
}

func (s *statusWriter) WriteHeader(code int) {
	s.report(code)
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(p []byte) (int, error) {
	s.report(http.StatusOK)
	return s.ResponseWriter.Write(p)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Hijack is found by http.ResponseController before Unwrap; the request is
// logged with status 0.
func (s *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := s.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("simulator: connection cannot be hijacked")
	}
	s.report(0)
	return h.Hijack()
}
