package httpguard

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestHalfOpenConnectionsDoNotBlock: more half-open connections than the
// cap (each sends half a request header and waits) delay a real request by
// at most ReadHeaderTimeout, and the server closes them.
func TestHalfOpenConnectionsDoNotBlock(t *testing.T) {
	l := Limits{ReadHeaderTimeout: 500 * time.Millisecond, ReadTimeout: time.Second, WriteTimeout: time.Second,
		IdleTimeout: time.Second, MaxConnections: 16}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "Healthy") })}
	l.Apply(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l.Listener(ln)) }()
	t.Cleanup(func() { _ = srv.Close() })

	var conns []net.Conn
	for range 64 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write([]byte("GET /-/healthy HTTP/1.1\r\nHost: x\r\n"))
		conns = append(conns, c)
	}
	t.Cleanup(func() {
		for _, c := range conns {
			_ = c.Close()
		}
	})
	start := time.Now()
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Get("http://" + ln.Addr().String() + "/-/healthy")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	took := time.Since(start)
	t.Logf("answered after %s behind 64 half-open connections", took.Round(time.Millisecond))
	if resp.StatusCode != http.StatusOK || took > 4*time.Second {
		t.Fatalf("status %d after %s", resp.StatusCode, took)
	}
	// The first half-open connection was closed by the server.
	// (A 408 answer may come first; the close follows.)
	_ = conns[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	for {
		_, err := conns[0].Read(buf)
		if err == nil {
			continue
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("half-open connection still open after 5s")
		}
		break
	}
}
