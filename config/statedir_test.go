package config

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestStateDirChecked: an armed trigger whose state file cannot be created
// fails validation (--config.check and start-up), naming the key.
func TestStateDirChecked(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "token"), "t0ken\n")
	writeFile(t, filepath.Join(dir, "afile"), "x")
	for _, tc := range []struct {
		name, stateFile, dryRun, problem string
	}{
		{"missing directory", "missing/state.json", "false", "trigger.state_file: the state file's directory cannot hold it: stat " + filepath.Join(dir, "missing") + ": no such file or directory"},
		{"directory is a file", "afile/state.json", "false", "is not a directory"},
		{"writable directory", "state.json", "false", ""},
		{"dry-run is not checked", "missing/state.json", "true", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			yaml := "trigger: {dry_run: " + tc.dryRun + ", webhook_bearer_token_file: token, state_file: " + tc.stateFile + "}\n"
			_, err := Parse([]byte(yaml), filepath.Join(dir, "c.yml"), LoadOptions{})
			if tc.problem == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.problem) {
				t.Fatalf("want %q, got: %v", tc.problem, err)
			}
		})
	}
}

func TestMaxDecisionsPerNotification(t *testing.T) {
	cfg, err := Parse([]byte("trigger: {}\n"), "c.yml", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Trigger.MaxDecisionsPerNotification; got != 200 {
		t.Errorf("default max_decisions_per_notification %d, want 200", got)
	}
	_, err = Parse([]byte("trigger: {max_decisions_per_notification: 0}\n"), "c.yml", LoadOptions{})
	if err == nil || !strings.Contains(err.Error(), "trigger.max_decisions_per_notification: must be at least 1, got 0") {
		t.Errorf("got %v", err)
	}
}
