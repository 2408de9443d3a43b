package simulator

import (
	"bytes"
	"io"
	"log"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Request is one entry of the request log.
type Request struct {
	Method   string
	Path     string
	RawQuery string
	// Header is the request's header with the values of Authorization,
	// X-RestSvcSessionId and Cookie replaced by "REDACTED".
	Header http.Header
	// Body is the request body; secrets in form bodies (password,
	// refresh_token, ...) are replaced by "REDACTED".
	Body string
	// Status is the HTTP status answered, 0 when the connection was reset
	// or the client gave up before the answer. An entry is in the log
	// before the client receives the first byte of its response.
	Status int
	// Time is when the request arrived, by Options.Now.
	Time time.Time
}

// maxLogged bounds the log of each API; older entries are dropped so that
// long benchmarks do not grow without bound.
const maxLogged = 100_000

// maxLoggedBody bounds the body kept per request.
const maxLoggedBody = 64 << 10

type requestLog struct {
	now  func() time.Time
	mu   sync.Mutex
	reqs map[API][]Request
}

func newRequestLog(now func() time.Time) *requestLog {
	return &requestLog{now: now, reqs: make(map[API][]Request)}
}

func (l *requestLog) add(api API, r Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	rs := l.reqs[api]
	if len(rs) >= maxLogged {
		rs = append(rs[:0:0], rs[len(rs)-maxLogged/2:]...)
	}
	l.reqs[api] = append(rs, r)
}

// Requests returns a copy of the request log of an API, oldest first.
func (s *Simulator) Requests(api API) []Request {
	s.log.mu.Lock()
	defer s.log.mu.Unlock()
	rs := s.log.reqs[api]
	out := make([]Request, len(rs))
	for i, r := range rs {
		r.Header = r.Header.Clone()
		out[i] = r
	}
	return out
}

// ResetRequests empties the request logs of all APIs.
func (s *Simulator) ResetRequests() {
	s.log.mu.Lock()
	defer s.log.mu.Unlock()
	clear(s.log.reqs)
}

// secretHeaders are redacted in the log.
var secretHeaders = []string{"Authorization", "X-RestSvcSessionId", "Cookie"}

// secretFormFields are redacted in logged form bodies.
var secretFormFields = map[string]bool{
	"password":      true,
	"refresh_token": true,
	"access_token":  true,
	"client_secret": true,
	"mfa_token":     true,
	"mfa_code":      true,
	"code":          true,
}

func redactHeader(h http.Header) http.Header {
	out := h.Clone()
	for _, k := range secretHeaders {
		if vs, ok := out[http.CanonicalHeaderKey(k)]; ok {
			for i := range vs {
				vs[i] = "REDACTED"
			}
		}
	}
	return out
}

// redactBody hides secret fields of form-encoded bodies, keeping the rest
// verbatim. Bodies that are not forms (JSON, XML) are kept as they are.
func redactBody(contentType string, body []byte) string {
	mt, _, _ := mime.ParseMediaType(contentType)
	trimmed := bytes.TrimSpace(body)
	looksForm := mt == "application/x-www-form-urlencoded" ||
		(mt == "" && len(trimmed) > 0 && !bytes.ContainsAny(trimmed[:1], "{[<") && bytes.ContainsRune(trimmed, '='))
	if !looksForm {
		return string(body)
	}
	parts := strings.Split(string(body), "&")
	for i, p := range parts {
		k, _, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		name, err := url.QueryUnescape(k)
		if err != nil {
			name = k
		}
		if secretFormFields[strings.ToLower(strings.TrimSpace(name))] {
			parts[i] = k + "=REDACTED"
		}
	}
	return strings.Join(parts, "&")
}

// middleware wraps an API handler in the request log, latency and faults.
func (s *Simulator) middleware(sv *server) http.Handler {
	h := sv.handler
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entry := Request{
			Method:   r.Method,
			Path:     r.URL.Path,
			RawQuery: r.URL.RawQuery,
			Header:   redactHeader(r.Header),
			Time:     s.opts.Now(),
		}
		if r.Body != nil {
			body, _ := io.ReadAll(io.LimitReader(r.Body, maxLoggedBody+1))
			rest := r.Body
			r.Body = struct {
				io.Reader
				io.Closer
			}{io.MultiReader(bytes.NewReader(body), rest), rest}
			if len(body) > maxLoggedBody {
				body = body[:maxLoggedBody]
			}
			entry.Body = redactBody(r.Header.Get("Content-Type"), body)
		}
		sw := &statusWriter{ResponseWriter: w, onStatus: func(status int) {
			entry.Status = status
			s.log.add(sv.api, entry)
		}}
		answered := true
		defer func() {
			if answered {
				sw.report(http.StatusOK) // a handler that wrote nothing
			} else {
				sw.report(0)
			}
		}()

		f, faulty := s.faults.match(sv.api, r.Method, r.URL.Path)
		if !sleep(r.Context(), s.opts.Latency+f.Latency) {
			// The client went away or the simulator is closing.
			answered = false
			return
		}
		if !faulty {
			h.ServeHTTP(sw, r)
			return
		}
		applyFault(sw, r, h, f, h)
	})
}

func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }
