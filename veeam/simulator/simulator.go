// Package simulator is an in-process fake of the three Veeam REST APIs the
// exporter talks to: the Service Provider Console v3 API, the Backup
// Enterprise Manager API and the Backup & Replication REST API. It follows
// the protocol facts in veeam-api.md closely enough that clients, collectors,
// the trigger, end-to-end tests, benchmarks and --demo can run against it.
//
// Each API is served on its own loopback listener, plain HTTP or HTTPS with a
// generated CA. The core (this file, faults.go, log.go, tls.go) owns the
// listeners and wraps every API handler in latency, fault and request-log
// middleware; the API files (vspc.go, em.go, vbr.go) own their estates.
package simulator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// API names one of the simulated products.
type API string

// The simulated APIs.
const (
	APIVSPC API = "vspc"
	APIEM   API = "em"
	APIVBR  API = "vbr"
)

// Options configure a simulator. The zero value is usable: Start applies the
// defaults documented per field.
type Options struct {
	// Seed makes the estates deterministic.
	Seed int64
	// TLS serves HTTPS with a generated self-signed CA (see CACertPEM).
	TLS bool
	// Username and Password are accepted by all three APIs.
	// Defaults "monitor" / "sim-password".
	Username, Password string
	// VSPCAPIKey is accepted as a VSPC Bearer token. Default "sim-api-key".
	VSPCAPIKey string

	VSPC VSPCOptions
	EM   EMOptions
	VBR  VBROptions

	// ActionDuration is how long plan start/undo, EM tasks and VBR sessions
	// take to finish. Default 1s.
	ActionDuration time.Duration
	// Latency is added to every request of every API.
	Latency time.Duration
	// Now is the clock used for token expiry, sessions and timestamps.
	// Default time.Now.
	Now func() time.Time
}

// Default credentials used when Options leave them empty.
const (
	DefaultUsername   = "monitor"
	DefaultPassword   = "sim-password"
	DefaultVSPCAPIKey = "sim-api-key"
)

func (o Options) withDefaults() Options {
	if o.Username == "" {
		o.Username = DefaultUsername
	}
	if o.Password == "" {
		o.Password = DefaultPassword
	}
	if o.VSPCAPIKey == "" {
		o.VSPCAPIKey = DefaultVSPCAPIKey
	}
	if o.ActionDuration <= 0 {
		o.ActionDuration = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// apiHandler is what each API file provides to the core.
type apiHandler interface {
	http.Handler
	// writeError answers in this API's own error format.
	writeError(w http.ResponseWriter, status int, message string)
	// expireAuth invalidates every token or session issued so far.
	expireAuth()
}

// Estate is a deep copy of the simulator's truth, for comparing what a
// client or collector reports with what the fake products hold.
type Estate struct {
	VSPC VSPCEstate
	EM   EMEstate
	VBR  VBREstate
}

// Simulator runs the three fake APIs. Create it with Start, stop it with
// Close.
type Simulator struct {
	opts Options

	vspc *vspcAPI
	em   *emAPI
	vbr  *vbrAPI

	servers map[API]*server
	caPEM   []byte

	faults *faultSet
	log    *requestLog

	closeOnce sync.Once
	closeErr  error
}

// server is one API's listener and http.Server.
type server struct {
	api     API
	url     string
	srv     *http.Server
	handler apiHandler
	done    chan struct{}
	// ctx is cancelled by Close so that sleeping middleware returns early.
	ctx    context.Context
	cancel context.CancelFunc
}

// Start builds the estates and starts the three servers on 127.0.0.1 with
// ephemeral ports.
func Start(o Options) (*Simulator, error) {
	o = o.withDefaults()
	s := &Simulator{
		opts:    o,
		servers: make(map[API]*server, 3),
		faults:  newFaultSet(),
		log:     newRequestLog(o.Now),
	}
	s.vspc = newVSPC(&s.opts)
	s.em = newEM(&s.opts)
	s.vbr = newVBR(&s.opts)

	var tlsConf *tls.Config
	if o.TLS {
		ca, conf, err := newTLSConfig()
		if err != nil {
			return nil, fmt.Errorf("simulator: generating TLS certificates: %w", err)
		}
		s.caPEM, tlsConf = ca, conf
	}

	for _, a := range []struct {
		api API
		h   apiHandler
	}{{APIVSPC, s.vspc}, {APIEM, s.em}, {APIVBR, s.vbr}} {
		srv, err := s.serve(a.api, a.h, tlsConf)
		if err != nil {
			_ = s.Close()
			return nil, fmt.Errorf("simulator: starting %s: %w", a.api, err)
		}
		s.servers[a.api] = srv
	}
	return s, nil
}

func (s *Simulator) serve(api API, h apiHandler, tlsConf *tls.Config) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	scheme := "http"
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
		scheme = "https"
	}
	ctx, cancel := context.WithCancel(context.Background())
	sv := &server{
		api:     api,
		url:     scheme + "://" + ln.Addr().String(),
		handler: h,
		done:    make(chan struct{}),
		ctx:     ctx,
		cancel:  cancel,
	}
	sv.srv = &http.Server{
		Handler:           s.middleware(sv),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          discardLogger(),
	}
	go func() {
		defer close(sv.done)
		_ = sv.srv.Serve(ln)
	}()
	return sv, nil
}

// Close stops the servers and waits for them. It is safe to call twice.
func (s *Simulator) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		for _, sv := range s.servers {
			sv.cancel()
		}
		for _, api := range []API{APIVSPC, APIEM, APIVBR} {
			sv, ok := s.servers[api]
			if !ok {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := sv.srv.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("simulator: shutting down %s: %w", api, err))
				_ = sv.srv.Close()
			}
			cancel()
			<-sv.done
		}
		for _, h := range []any{s.vspc, s.em, s.vbr} {
			if c, ok := h.(interface{ close() }); ok {
				c.close()
			}
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

func (s *Simulator) url(api API) string {
	if sv, ok := s.servers[api]; ok {
		return sv.url
	}
	return ""
}

// VSPCURL is scheme://127.0.0.1:port; clients append /api/v3.
func (s *Simulator) VSPCURL() string { return s.url(APIVSPC) }

// EMURL is scheme://127.0.0.1:port; clients append /api.
func (s *Simulator) EMURL() string { return s.url(APIEM) }

// VBRURL is scheme://127.0.0.1:port; clients append /api.
func (s *Simulator) VBRURL() string { return s.url(APIVBR) }

// CACertPEM is the PEM of the CA that signed the servers' certificate, or nil
// when TLS is off.
func (s *Simulator) CACertPEM() []byte {
	if s.caPEM == nil {
		return nil
	}
	return append([]byte(nil), s.caPEM...)
}

// Estate returns a deep copy of the current truth of all three APIs.
func (s *Simulator) Estate() Estate {
	return Estate{
		VSPC: s.vspc.estate(),
		EM:   s.em.estate(),
		VBR:  s.vbr.estate(),
	}
}
