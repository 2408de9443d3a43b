// Package proctest runs the exporter binary, and the other programs the
// end-to-end and reliability tests need, as child processes of a test.
package proctest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binaryName is the file name of the built exporter.
const binaryName = "veeam_failover_exporter"

// module is the module root, found once per test binary.
var module struct {
	once  sync.Once
	goBin string
	root  string
	err   error
}

// moduleRoot returns the go command and the directory of the module's
// go.mod, as `go env GOMOD` reports it from the test's working directory.
func moduleRoot() (goBin, root string, err error) {
	module.once.Do(func() {
		module.goBin, module.err = exec.LookPath("go")
		if module.err != nil {
			module.err = fmt.Errorf("go not found on PATH: %w", module.err)
			return
		}
		out, err := exec.Command(module.goBin, "env", "GOMOD").Output()
		if err != nil {
			module.err = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		gomod := strings.TrimSpace(string(out))
		if gomod == "" || gomod == os.DevNull {
			module.err = fmt.Errorf("go env GOMOD: not inside a module")
			return
		}
		module.root = filepath.Dir(gomod)
	})
	return module.goBin, module.root, module.err
}

// build builds the exporter from the module root into dir.
func build(dir string) (string, error) {
	goBin, root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, binaryName)
	cmd := exec.Command(goBin, "build", "-o", bin, ".")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}

// BuildExporter builds the exporter binary from the module root into a
// temporary directory of tb and returns its path. Every call builds.
func BuildExporter(tb testing.TB) string {
	tb.Helper()
	bin, err := build(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	return bin
}

// shared is the exporter built once for the whole test binary.
var shared struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// SharedExporter builds the exporter binary once per test binary and
// returns its path. A TestMain that uses it calls RemoveShared after m.Run.
func SharedExporter(tb testing.TB) string {
	tb.Helper()
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "proctest-bin-")
		if shared.err != nil {
			return
		}
		shared.path, shared.err = build(shared.dir)
	})
	if shared.err != nil {
		tb.Fatal(shared.err)
	}
	return shared.path
}

// RemoveShared removes the binary SharedExporter built, if it built one.
func RemoveShared() {
	if shared.dir != "" {
		_ = os.RemoveAll(shared.dir)
	}
}

// FreeAddr returns a loopback address with a port that was free a moment ago.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		tb.Fatalf("close listener: %v", err)
	}
	return addr
}

// logTail is how much of the output DumpLog shows.
const logTail = 16 << 10

// Process is a program started by a test, with its stdout and stderr in
// files of a temporary directory that is also its working directory.
type Process struct {
	name           string
	cmd            *exec.Cmd
	dir            string
	stdout, stderr string
	done           chan struct{}
	err            error
}

// Start runs bin with args in a new temporary directory and, when the test
// ends, stops it (SIGTERM, then SIGKILL after 10 s) and, if the test failed,
// logs the tail of its output. Call it after creating the temporary
// directories the program writes to, so that it is stopped before they are
// removed.
func Start(tb testing.TB, name, bin string, args ...string) *Process {
	tb.Helper()
	dir := tb.TempDir()
	p := &Process{
		name:   name,
		dir:    dir,
		stdout: filepath.Join(dir, name+".stdout.log"),
		stderr: filepath.Join(dir, name+".stderr.log"),
		done:   make(chan struct{}),
	}
	outF, err := os.Create(p.stdout)
	if err != nil {
		tb.Fatalf("%s log: %v", name, err)
	}
	errF, err := os.Create(p.stderr)
	if err != nil {
		outF.Close()
		tb.Fatalf("%s log: %v", name, err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = outF, errF
	p.cmd.Dir = dir
	if err := p.cmd.Start(); err != nil {
		outF.Close()
		errF.Close()
		tb.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		outF.Close()
		errF.Close()
		close(p.done)
	}()
	tb.Cleanup(func() {
		p.Stop()
		if tb.Failed() {
			p.DumpLog(tb)
		}
	})
	return p
}

// Name is the name the process was started with.
func (p *Process) Name() string { return p.name }

// PID is the process id, for tests that act on one process among several.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Stop ends the process with SIGTERM (SIGKILL after 10 s) and waits for it.
func (p *Process) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Kill ends the process with SIGKILL (kill -9) and waits for it.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Wait waits for the process to exit by itself and returns its exit code;
// the test fails if it is still running after timeout.
func (p *Process) Wait(tb testing.TB, timeout time.Duration) int {
	tb.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		tb.Fatalf("%s still running after %s", p.name, timeout)
	}
	return p.cmd.ProcessState.ExitCode()
}

// Exited reports the process' end, and the error of its wait, if it ended.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Logs is all of stdout followed by all of stderr.
func (p *Process) Logs() string {
	a, _ := os.ReadFile(p.stdout)
	b, _ := os.ReadFile(p.stderr)
	return string(a) + string(b)
}

// DumpLog logs the last 16 KiB of the process' output (stdout, then stderr).
func (p *Process) DumpLog(tb testing.TB) {
	tb.Helper()
	tb.Logf("---- %s log (%s) ----\n%s\n---- end of %s log ----", p.name, p.dir, Tail(p.Logs(), logTail), p.name)
}

// Tail returns the last n bytes of s, marked with "...\n" when cut.
func Tail(s string, n int) string {
	if len(s) > n {
		return "...\n" + s[len(s)-n:]
	}
	return s
}
