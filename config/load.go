// Package config reads the exporter's YAML configuration: strictly (an
// unknown key is an error), with defaults, secrets from files, and
// validation that reports every problem with its file, line and key.
package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	promconfig "github.com/prometheus/common/config"
)

// LoadOptions carries what the config file cannot know by itself.
type LoadOptions struct {
	// WebhookBasicAuth says that the web config file (--web.config.file) has
	// basic_auth_users, so the webhook is authenticated even without a bearer
	// token.
	WebhookBasicAuth bool
}

// Load reads, parses and validates the config file at path. Relative file
// names in it are taken relative to the file's directory. On problems the
// error is an Errors listing every one of them.
func Load(path string, opts LoadOptions) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config file: %w", err)
	}
	return Parse(data, path, opts)
}

// Parse is Load for a file that has already been read; filename is used in
// messages and its directory resolves relative file names.
func Parse(data []byte, filename string, opts LoadOptions) (*Config, error) {
	p := newParser(filename)
	// Absolute, so that the paths stay right whatever the working directory
	// and whoever joins them with a directory again.
	p.dir = filepath.Dir(filename)
	if abs, err := filepath.Abs(p.dir); err == nil {
		p.dir = abs
	}
	cfg := Default()
	if p.decodeDocument(data, cfg) {
		p.resolvePaths(cfg)
		p.validate(cfg, opts) // before readSecrets: it tells password from password_file
		p.readSecrets(cfg)
	}
	if len(p.probs) > 0 {
		p.redact()
		slices.SortStableFunc(p.probs, func(a, b Problem) int { return a.Line - b.Line })
		return nil, p.probs
	}
	for i := range cfg.Targets {
		if cfg.Targets[i].Collectors == nil {
			cfg.Targets[i].Collectors = cfg.Targets[i].EffectiveCollectors()
		}
	}
	return cfg, nil
}

// resolvePaths makes relative file names relative to the config file's
// directory, as Prometheus does, and absolute.
func (p *parser) resolvePaths(cfg *Config) {
	for i := range cfg.Targets {
		t := &cfg.Targets[i]
		t.PasswordFile = promconfig.JoinDir(p.dir, t.PasswordFile)
		t.APIKeyFile = promconfig.JoinDir(p.dir, t.APIKeyFile)
		t.TLSConfig.SetDirectory(p.dir)
	}
	tr := &cfg.Trigger
	tr.WebhookBearerTokenFile = promconfig.JoinDir(p.dir, tr.WebhookBearerTokenFile)
	tr.ApproverTokenFile = promconfig.JoinDir(p.dir, tr.ApproverTokenFile)
	tr.StateFile = promconfig.JoinDir(p.dir, tr.StateFile)
	tr.AuditLog = promconfig.JoinDir(p.dir, tr.AuditLog)
	tr.KillSwitchFile = promconfig.JoinDir(p.dir, tr.KillSwitchFile)
	etcd := &tr.Coordination.Etcd
	etcd.PasswordFile = promconfig.JoinDir(p.dir, etcd.PasswordFile)
	etcd.TLSConfig.SetDirectory(p.dir)
}

// readSecrets loads the *_file secrets into their Secret fields.
func (p *parser) readSecrets(cfg *Config) {
	for i := range cfg.Targets {
		t := &cfg.Targets[i]
		key := fmt.Sprintf("targets[%d]", i)
		if t.PasswordFile != "" {
			if s, ok := p.readSecretFile(key+".password_file", t.PasswordFile); ok && t.Password == "" {
				t.Password = promconfig.Secret(s)
			}
		}
		if t.APIKeyFile != "" {
			if s, ok := p.readSecretFile(key+".api_key_file", t.APIKeyFile); ok && t.APIKey == "" {
				t.APIKey = promconfig.Secret(s)
			}
		}
	}
	if f := cfg.Trigger.WebhookBearerTokenFile; f != "" {
		if s, ok := p.readSecretFile("trigger.webhook_bearer_token_file", f); ok {
			cfg.Trigger.WebhookBearerToken = promconfig.Secret(s)
		}
	}
	if f := cfg.Trigger.Coordination.Etcd.PasswordFile; f != "" {
		if s, ok := p.readSecretFile("trigger.coordination.etcd.password_file", f); ok {
			cfg.Trigger.Coordination.Etcd.Password = promconfig.Secret(s)
		}
	}
	if f := cfg.Trigger.ApproverTokenFile; f != "" {
		if s, ok := p.readSecretFile("trigger.approver_token_file", f); ok {
			cfg.Trigger.ApproverToken = promconfig.Secret(s)
		}
	}
	if tr := &cfg.Trigger; tr.ApproverToken != "" && tr.ApproverToken == tr.WebhookBearerToken {
		p.errorf("trigger.approver_token_file", "holds the same token as webhook_bearer_token_file: "+
			"whoever can send alerts could then approve failovers; use a different token")
	}
}

// maxSecretFileSize bounds what is read from a secret file: a token or
// password, not a device or a log.
const maxSecretFileSize = 64 << 10

// readSecretFile returns the file's content without the trailing newline.
// Errors name the file and the key, never the content.
func (p *parser) readSecretFile(key, path string) (string, bool) {
	s, err := readSecretFile(path)
	if err != nil {
		p.errorf(key, "cannot read %s: %v", path, err)
		return "", false
	}
	p.addSecret(s)
	return s, true
}

func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", pathErrorCause(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", pathErrorCause(err)
	}
	if !fi.Mode().IsRegular() {
		return "", errors.New("not a regular file")
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFileSize+1))
	if err != nil {
		return "", pathErrorCause(err)
	}
	if len(b) > maxSecretFileSize {
		return "", fmt.Errorf("larger than %d KiB", maxSecretFileSize>>10)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", errors.New("the file is empty")
	}
	return s, nil
}

// pathErrorCause drops the path from an *fs.PathError: the caller names it.
func pathErrorCause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
