package proctest

import (
	"net"
	"strings"
	"testing"
	"time"
)

func TestProcessLogsAndExitCode(t *testing.T) {
	p := Start(t, "sh", "/bin/sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3")
	if code := p.Wait(t, 10*time.Second); code != 3 {
		t.Errorf("exit code %d, want 3", code)
	}
	if done, err := p.Exited(); !done || err == nil {
		t.Errorf("Exited() = %v, %v; want true and an exit error", done, err)
	}
	if got, want := p.Logs(), "to-stdout\nto-stderr\n"; got != want {
		t.Errorf("Logs() = %q, want %q", got, want)
	}
	if p.Name() != "sh" {
		t.Errorf("Name() = %q", p.Name())
	}
}

func TestProcessStopAndKill(t *testing.T) {
	for _, kill := range []bool{false, true} {
		p := Start(t, "sleep", "/bin/sh", "-c", "exec sleep 60")
		if done, _ := p.Exited(); done {
			t.Fatal("exited at once")
		}
		start := time.Now()
		if kill {
			p.Kill()
		} else {
			p.Stop()
		}
		if done, err := p.Exited(); !done || err == nil || !strings.Contains(err.Error(), "signal") {
			t.Errorf("kill=%v: Exited() = %v, %v; want ended by a signal", kill, done, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("kill=%v: took %s", kill, d)
		}
	}
}

func TestFreeAddr(t *testing.T) {
	addr := FreeAddr(t)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	ln.Close()
}

func TestTail(t *testing.T) {
	if got := Tail("abcdef", 3); got != "...\ndef" {
		t.Errorf("Tail = %q", got)
	}
	if got := Tail("abc", 3); got != "abc" {
		t.Errorf("Tail = %q", got)
	}
}
