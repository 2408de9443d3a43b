package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse checks that no input makes the parser panic, that every problem
// is complete, and that a config that loads can be printed.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yml")
	files = append(files, "../examples/veeam_failover_exporter.yml")
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, "testdata/fuzz.yml", LoadOptions{})
		if err != nil {
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error is not a non-empty Errors: %#v", err)
			}
			for _, p := range errs {
				if p.File != "testdata/fuzz.yml" || p.Line < 1 || p.Key == "" || p.Msg == "" {
					t.Fatalf("incomplete problem %#v", p)
				}
			}
			if strings.Contains(err.Error(), "SENTINEL-FILE") {
				t.Fatalf("secret file content in error: %v", err)
			}
			return
		}
		_ = cfg.String()
	})
}
