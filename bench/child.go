package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is a process the bench started (the exporter, Prometheus, an etcd
// member), stopped by its pid, never by name.
type child struct {
	cmd  *exec.Cmd
	logs *lockedBuffer
	done chan struct{} // closed once the process exited
}

// startChild starts cmd; what it writes goes to cmd's Stdout and Stderr
// when set, else to logs.
func startChild(cmd *exec.Cmd) (*child, error) {
	c := &child{cmd: cmd, logs: &lockedBuffer{}, done: make(chan struct{})}
	if cmd.Stdout == nil {
		cmd.Stdout = c.logs
	}
	if cmd.Stderr == nil {
		cmd.Stderr = c.logs
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		_ = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// waitReady polls url every poll until it answers 200, failing when the
// child exits first or after timeout (the child is then left running: the
// caller stops it).
func (c *child) waitReady(hc *http.Client, name, url string, poll, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := hc.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-c.done:
			return fmt.Errorf("%s exited: %s", name, c.logTail())
		case <-time.After(poll):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %s", name, timeout, c.logTail())
		}
	}
}

// stop sends SIGTERM to the child's pid and waits, killing it after grace.
func (c *child) stop(grace time.Duration) {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(grace):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// pid is the child's process id, for /proc.
func (c *child) pid() int { return c.cmd.Process.Pid }

// logTail is the end of what the child wrote to logs.
func (c *child) logTail() string {
	s := c.logs.String()
	if len(s) > 2000 {
		s = "…" + s[len(s)-2000:]
	}
	return strings.TrimSpace(s)
}

// lockedBuffer collects a child's output while the bench reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
