//go:build !windows

package main

import "context"

// runAsService is the Windows service hook (service_windows.go); elsewhere
// the process is never a service and main runs the exporter itself.
func runAsService([]string, func(ctx context.Context, args []string) int) (code int, handled bool) {
	return 0, false
}
