package config

import (
	"fmt"
	"strings"
)

// Problem is one thing wrong with a config file, located by line and key so
// that an operator can go straight to it.
type Problem struct {
	File string
	Line int
	// Key is the path of the offending key, e.g. "targets[1].url" or
	// "trigger.rules[0].action.target".
	Key string
	Msg string
}

// String formats the problem as "file:line: key: message".
func (p Problem) String() string {
	return fmt.Sprintf("%s:%d: %s: %s", p.File, p.Line, p.Key, p.Msg)
}

// Errors is every problem found in one config file. Load and Parse return it
// (as error) so that --config.check can print all of them, one per line.
type Errors []Problem

// Error joins the problems, one per line.
func (e Errors) Error() string {
	lines := make([]string, len(e))
	for i, p := range e {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}
