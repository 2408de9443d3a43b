package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// figure is one row of the report. Value and Baseline are in Unit; Ratio is
// Value/Baseline unless the row says otherwise (Note). OK is nil for rows
// that are information without a target.
type figure struct {
	ID       string   `json:"id"`
	Figure   string   `json:"figure"`
	Name     string   `json:"name"`
	Value    float64  `json:"value"`
	Unit     string   `json:"unit"`
	Baseline *float64 `json:"baseline,omitempty"`
	BaseName string   `json:"baseline_name,omitempty"`
	Ratio    *float64 `json:"ratio,omitempty"`
	Target   string   `json:"target,omitempty"`
	OK       *bool    `json:"ok,omitempty"`
	Note     string   `json:"note,omitempty"`
}

// report is what bench/report.json holds.
type report struct {
	Time     time.Time      `json:"time"`
	Machine  machine        `json:"machine"`
	Settings settings       `json:"settings"`
	Figures  []figure       `json:"figures"`
	Details  map[string]any `json:"details"`
	Errors   []string       `json:"errors,omitempty"`
	Duration string         `json:"duration"`
}

type machine struct {
	CPUs      int    `json:"nproc"`
	CPUModel  string `json:"cpu_model"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	MemTotal  string `json:"mem_total,omitempty"`
	// LoadAvg is /proc/loadavg at the start and the end: other work on
	// the machine shows in the timings.
	LoadAvg []string `json:"loadavg,omitempty"`
}

func currentMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	m.CPUModel = procField("/proc/cpuinfo", "model name")
	m.MemTotal = procField("/proc/meminfo", "MemTotal")
	m.LoadAvg = []string{loadAvg()}
	return m
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

// procField is the value of the first "key: value" line of a /proc file.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func ptr[T any](v T) *T { return &v }

// add appends a row.
func (r *report) add(f figure) { r.Figures = append(r.Figures, f) }

// row starts a row; base, target and note complete it.
func row(id, fig, name string, value float64, unit string) figure {
	return figure{ID: id, Figure: fig, Name: name, Value: value, Unit: unit}
}

func (f figure) base(name string, v float64) figure {
	f.Baseline, f.BaseName = ptr(v), name
	if v != 0 {
		f.Ratio = ptr(f.Value / v)
	}
	return f
}

func (f figure) target(t string, ok bool) figure { f.Target, f.OK = t, ptr(ok); return f }

func (f figure) note(n string) figure { f.Note = n; return f }

// printTable writes the report as an aligned table.
func (r *report) printTable(w io.Writer) {
	fmt.Fprintf(w, "veeam_failover_exporter bench — %s, %d CPUs (%s), %s\n", r.Time.Format(time.RFC3339), r.Machine.CPUs, r.Machine.CPUModel, r.Machine.GoVersion)
	e := r.Settings.Estate
	fmt.Fprintf(w, "estate: VSPC %d plans x %d objects = %d; EM %d cloud sessions (%d plans); VBR %d replicas x %d points; latency %s per request; scrape.concurrency %d\n\n",
		e.VSPCPlans, e.ObjectsPerPlan, e.planObjects(), e.EMSessions, e.EMPlans, e.VBRReplicas, e.PointsPerReplica, r.Settings.Latency, r.Settings.Concurrency)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tvalue\tbaseline\tratio\ttarget\tok")
	for _, f := range r.Figures {
		base := ""
		if f.Baseline != nil {
			base = formatValue(*f.Baseline, f.Unit)
			if f.BaseName != "" {
				base += " (" + f.BaseName + ")"
			}
		}
		ratio := ""
		if f.Ratio != nil {
			ratio = fmt.Sprintf("%.2f", *f.Ratio)
		}
		ok := "-"
		if f.OK != nil {
			ok = "ok"
			if !*f.OK {
				ok = "MISSED"
			}
		}
		fmt.Fprintf(tw, "%s %s\t%s\t%s\t%s\t%s\t%s\n", f.Figure, f.Name, formatValue(f.Value, f.Unit), base, ratio, f.Target, ok)
	}
	_ = tw.Flush()
	for _, f := range r.Figures {
		if f.Note != "" {
			fmt.Fprintf(w, "  [%s %s] %s\n", f.Figure, f.Name, f.Note)
		}
	}
	if d, ok := r.Details["ideal_definition"].(string); ok {
		fmt.Fprintf(w, "  [ideal] %s\n", d)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "ERROR: %s\n", e)
	}
	fmt.Fprintf(w, "\nbench took %s; load average at start and end: %s\n", r.Duration, strings.Join(r.Machine.LoadAvg, " / "))
}

func formatValue(v float64, unit string) string {
	switch {
	case unit == "":
		if v == math.Trunc(v) {
			return fmt.Sprintf("%.0f", v)
		}
		return fmt.Sprintf("%.2f", v)
	case v == math.Trunc(v) && math.Abs(v) < 1e7:
		return fmt.Sprintf("%.0f %s", v, unit)
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f %s", v, unit)
	default:
		return fmt.Sprintf("%.3g %s", v, unit)
	}
}

func (r *report) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// writeBenchfmt writes the figures in Go benchmark format, one benchmark
// per row, so that two runs can be compared with benchstat.
func (r *report) writeBenchfmt(path string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "goos: %s\ngoarch: %s\npkg: github.com/veeam-failover/veeam_failover_exporter/bench\ncpu: %s\n", r.Machine.OS, r.Machine.Arch, r.Machine.CPUModel)
	for _, f := range r.Figures {
		unit := strings.ReplaceAll(f.Unit, " ", "_")
		if unit == "" {
			unit = "x"
		}
		name := strings.NewReplacer(".", "_", " ", "_").Replace(f.ID)
		fmt.Fprintf(&b, "Benchmark%s-%d\t1\t%g %s\n", name, r.Machine.CPUs, f.Value, unit)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
