package reliability

import (
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/internal/proctest"
)

// TestHalfOpenConnections: the exporter binary closes connections that
// never finish their request header, and more of them than its connection
// cap do not keep /-/healthy from answering (issue "Trigger safety", item
// 12: 560 half-open connections at a 512 descriptor limit made every
// endpoint time out).
func TestHalfOpenConnections(t *testing.T) {
	addr := proctest.FreeAddr(t)
	p := startExporter(t, "--demo", "--web.listen-address="+addr)
	hc := &http.Client{Timeout: 30 * time.Second}
	defer hc.CloseIdleConnections()
	waitReady(t, p, hc, "http://"+addr, nil)

	const halfOpen = 300 // more than httpguard.Defaults.MaxConnections
	conns := make([]net.Conn, 0, halfOpen)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for range halfOpen {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		conns = append(conns, c)
		if _, err := c.Write([]byte("GET /-/healthy HTTP/1.1\r\nHost: x\r\n")); err != nil {
			t.Fatalf("write: %v", err)
		}
	}

	// A new connection, as a Prometheus or an Alertmanager would open.
	fresh := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	start := time.Now()
	code, _, err := httpDo(fresh, http.MethodGet, "http://"+addr+"/-/healthy", nil, nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("/-/healthy with %d half-open connections: %d %v", halfOpen, code, err)
	}
	t.Logf("/-/healthy answered after %s with %d half-open connections", time.Since(start).Round(time.Millisecond), halfOpen)

	// Every half-open connection is closed by the server once its header
	// timeout passes (10 s, plus the wait of those beyond the cap).
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := 0
	for _, c := range conns {
		wg.Go(func() {
			_ = c.SetReadDeadline(time.Now().Add(45 * time.Second))
			buf := make([]byte, 512)
			for {
				if _, err := c.Read(buf); err != nil {
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						mu.Lock()
						open++
						mu.Unlock()
					}
					return
				}
			}
		})
	}
	wg.Wait()
	if open > 0 {
		t.Errorf("%d of %d half-open connections still open after 45 s: no read-header timeout", open, halfOpen)
	}
}
