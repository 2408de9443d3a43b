// Command veeam_failover_tool is the operator's command line for
// veeam_failover_exporter, in the style of amtool: it lists the approvals
// waiting and the recent decisions of a running exporter, approves or
// rejects, runs a manual action through the trigger's guards, and shows the
// kill switch and arm state, over HTTP(S); and it lists plans, plan VMs with
// their recovery points, and replicas straight from the targets of a config
// file, read-only.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/alecthomas/kingpin/v2"
	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/version"

	"github.com/veeam-failover/veeam_failover_exporter/trigger"
)

const toolName = "veeam_failover_tool"

// cli holds the flags shared by the commands.
type cli struct {
	url          string
	tokenFile    string
	caFile       string
	insecure     bool
	user         string
	passwordFile string
	timeout      time.Duration
	output       string
	configFile   string
	target       string
	out          io.Writer
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	c := &cli{out: stdout}
	app := kingpin.New(toolName, "Command line for veeam_failover_exporter: approvals, manual actions, trigger state, and a read-only look at the Veeam targets.")
	app.Version(version.Print(toolName))
	app.HelpFlag.Short('h')
	app.UsageWriter(stdout)
	app.ErrorWriter(stderr)
	app.Flag("exporter.url", "URL of the running exporter.").Default("http://localhost:9852").Envar("VEEAM_FAILOVER_EXPORTER_URL").StringVar(&c.url)
	app.Flag("approver-token-file", "File with the approver's token (trigger.approver_token_file); needed to approve, reject and run actions.").StringVar(&c.tokenFile)
	app.Flag("tls.ca-file", "CA certificate to verify the exporter's TLS certificate.").StringVar(&c.caFile)
	app.Flag("tls.insecure-skip-verify", "Do not verify the exporter's TLS certificate.").BoolVar(&c.insecure)
	app.Flag("http.basic-auth-user", "Basic auth user of --web.config.file on the exporter.").StringVar(&c.user)
	app.Flag("http.basic-auth-password-file", "File with that user's password.").StringVar(&c.passwordFile)
	app.Flag("timeout", "Timeout of each request.").Default("30s").DurationVar(&c.timeout)
	app.Flag("output", "Output format: simple or json.").Short('o').Default("simple").EnumVar(&c.output, "simple", "json")

	statusCmd := app.Command("status", "Show whether the trigger is armed, dry-run, kill switch and heartbeat.")
	approvalsCmd := app.Command("approvals", "List the approvals waiting for a person.")
	decisionsCmd := app.Command("decisions", "List the recent decisions and outcomes.")
	var limit int
	decisionsCmd.Flag("limit", "How many of each to show.").Default("20").IntVar(&limit)

	var id, by, reason string
	approveCmd := app.Command("approve", "Approve a waiting failover: its guards run again, then the call is made.")
	approveCmd.Arg("id", "Approval id (see approvals).").Required().StringVar(&id)
	rejectCmd := app.Command("reject", "Reject a waiting failover: nothing is called.")
	rejectCmd.Arg("id", "Approval id (see approvals).").Required().StringVar(&id)
	for _, cmd := range []*kingpin.CmdClause{approveCmd, rejectCmd} {
		cmd.Flag("by", "Who answers (written to the audit log).").Required().StringVar(&by)
		cmd.Flag("reason", "Why.").StringVar(&reason)
	}
	var rule, object string
	actionCmd := app.Command("action", "Run a rule's action on an object by hand, through kill_switch, allow, cooldown, target_state, rate_limit, concurrency and dry_run.")
	actionCmd.Arg("rule", "Trigger rule whose action runs.").Required().StringVar(&rule)
	actionCmd.Arg("object", "Object (plan or replica) for a rule that takes it from a label; empty: the rule's own.").StringVar(&object)
	actionCmd.Flag("by", "Who asks (written to the audit log).").Required().StringVar(&by)
	actionCmd.Flag("reason", "Why.").Required().StringVar(&reason)

	offline := func(cmd *kingpin.CmdClause) {
		cmd.Flag("config.file", "The exporter's config file: the targets and their read credentials.").Required().StringVar(&c.configFile)
		cmd.Flag("target", "Only this target.").StringVar(&c.target)
	}
	plansCmd := app.Command("plans", "List the failover plans of the configured VSPC and EM targets (read-only, straight from the targets).")
	offline(plansCmd)
	var plan string
	planVMsCmd := app.Command("plan-vms", "List the VMs of a plan with their recovery point: the replica of the plan's own backup server (read-only).")
	offline(planVMsCmd)
	planVMsCmd.Arg("plan", "Plan name or id.").Required().StringVar(&plan)
	replicasCmd := app.Command("replicas", "List the replicas of the configured VBR targets, per VM with its newest restore point, and each replica's recovery point (read-only).")
	offline(replicasCmd)

	cmd, err := app.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", toolName, err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), max(c.timeout, time.Second)*4)
	defer cancel()
	switch cmd {
	case statusCmd.FullCommand():
		err = c.status(ctx)
	case approvalsCmd.FullCommand():
		err = c.approvals(ctx)
	case decisionsCmd.FullCommand():
		err = c.decisions(ctx, limit)
	case approveCmd.FullCommand(), rejectCmd.FullCommand():
		err = c.post(ctx, "/trigger/approvals/"+id, map[string]any{"approve": cmd == approveCmd.FullCommand(), "by": by, "reason": reason})
	case actionCmd.FullCommand():
		err = c.post(ctx, "/trigger/actions", map[string]any{"rule": rule, "object": object, "by": by, "reason": reason})
	case plansCmd.FullCommand():
		err = c.plans(ctx)
	case planVMsCmd.FullCommand():
		err = c.planVMs(ctx, plan)
	case replicasCmd.FullCommand():
		err = c.replicas(ctx)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", toolName, err)
		return 1
	}
	return 0
}

// client is the HTTP client to the exporter: its TLS and basic auth.
func (c *cli) client() (*http.Client, error) {
	hc := promconfig.HTTPClientConfig{TLSConfig: promconfig.TLSConfig{CAFile: c.caFile, InsecureSkipVerify: c.insecure}}
	if c.user != "" {
		hc.BasicAuth = &promconfig.BasicAuth{Username: c.user, PasswordFile: c.passwordFile}
	}
	if err := hc.Validate(); err != nil {
		return nil, err
	}
	cl, err := promconfig.NewClientFromConfig(hc, toolName)
	if err != nil {
		return nil, err
	}
	cl.Timeout = c.timeout
	return cl, nil
}

// do sends a request to the exporter and decodes its JSON answer into v. An
// answer of 4xx or 5xx is an error with the exporter's message.
func (c *cli) do(ctx context.Context, method, path string, body []byte, v any) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.url, "/")+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
		if c.tokenFile == "" {
			return fmt.Errorf("--approver-token-file is required for %s", path)
		}
		tok, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return fmt.Errorf("reading the approver token: %w", err)
		}
		token := strings.TrimSpace(string(tok))
		if c.user != "" {
			req.Header.Set(trigger.ApproverTokenHeader, token) // Authorization carries basic auth
		} else {
			req.Header.Set("Authorization", "Bearer "+token)
		}
	}
	resp, err := cl.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 400 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, e.Error)
		}
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s %s: answer is not JSON: %w", method, path, err)
	}
	return nil
}

// triggerStatus is the part of GET /trigger the tool shows.
type triggerStatus struct {
	Armed          bool   `json:"armed"`
	DryRun         bool   `json:"dry_run"`
	DisarmedReason string `json:"disarmed_reason"`
	KillSwitch     struct {
		Path   string `json:"path"`
		Active bool   `json:"active"`
		Reason string `json:"reason"`
	} `json:"kill_switch"`
	ApproverAuth  bool       `json:"approver_auth"`
	LastHeartbeat *time.Time `json:"last_heartbeat"`
	RateLimit     struct {
		Tokens float64 `json:"tokens"`
	} `json:"rate_limit"`
	Approvals []struct {
		ID               string    `json:"id"`
		Rule             string    `json:"rule"`
		Action           string    `json:"action"`
		Target           string    `json:"target"`
		Object           string    `json:"object"`
		PlanName         string    `json:"plan_name"`
		Deadline         time.Time `json:"deadline"`
		RemainingSeconds float64   `json:"remaining_seconds"`
	} `json:"approvals"`
	Recent []struct {
		Time      time.Time `json:"time"`
		Rule      string    `json:"rule"`
		Object    string    `json:"object"`
		Guard     string    `json:"guard"`
		Reason    string    `json:"reason"`
		Outcome   string    `json:"outcome"`
		RequestID string    `json:"request_id"`
	} `json:"recent_decisions"`
	RecentOutcomes []struct {
		Time      time.Time `json:"time"`
		Rule      string    `json:"rule"`
		Object    string    `json:"object"`
		Outcome   string    `json:"outcome"`
		Message   string    `json:"message"`
		RequestID string    `json:"request_id"`
	} `json:"recent_outcomes"`
}

func (c *cli) fetchStatus(ctx context.Context) (*triggerStatus, error) {
	var s triggerStatus
	return &s, c.do(ctx, http.MethodGet, "/trigger", nil, &s)
}

func (c *cli) status(ctx context.Context) error {
	s, err := c.fetchStatus(ctx)
	if err != nil {
		return err
	}
	if c.output == "json" {
		return c.json(s)
	}
	w := c.table()
	fmt.Fprintf(w, "armed\t%v\n", s.Armed)
	fmt.Fprintf(w, "dry_run\t%v\n", s.DryRun)
	if s.DisarmedReason != "" {
		fmt.Fprintf(w, "disarmed\t%s\n", s.DisarmedReason)
	}
	fmt.Fprintf(w, "kill_switch\t%v\t%s\n", s.KillSwitch.Active, firstNonEmpty(s.KillSwitch.Reason, s.KillSwitch.Path))
	fmt.Fprintf(w, "approvals_enabled\t%v\n", s.ApproverAuth)
	fmt.Fprintf(w, "approvals_waiting\t%d\n", len(s.Approvals))
	fmt.Fprintf(w, "rate_limit_tokens\t%.2f\n", s.RateLimit.Tokens)
	if s.LastHeartbeat != nil {
		hb := "never"
		if !s.LastHeartbeat.IsZero() {
			hb = s.LastHeartbeat.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "last_heartbeat\t%s\n", hb)
	}
	return w.Flush()
}

func (c *cli) approvals(ctx context.Context) error {
	s, err := c.fetchStatus(ctx)
	if err != nil {
		return err
	}
	if c.output == "json" {
		return c.json(s.Approvals)
	}
	w := c.table()
	fmt.Fprintln(w, "ID\tRULE\tACTION\tTARGET\tOBJECT\tDEADLINE\tREMAINING")
	for _, a := range s.Approvals {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.Rule, a.Action, a.Target, firstNonEmpty(a.PlanName, a.Object),
			a.Deadline.UTC().Format(time.RFC3339), (time.Duration(a.RemainingSeconds) * time.Second).String())
	}
	return w.Flush()
}

func (c *cli) decisions(ctx context.Context, limit int) error {
	s, err := c.fetchStatus(ctx)
	if err != nil {
		return err
	}
	s.Recent = s.Recent[:min(limit, len(s.Recent))]
	s.RecentOutcomes = s.RecentOutcomes[:min(limit, len(s.RecentOutcomes))]
	if c.output == "json" {
		return c.json(map[string]any{"decisions": s.Recent, "outcomes": s.RecentOutcomes})
	}
	w := c.table()
	fmt.Fprintln(w, "TIME\tRULE\tOBJECT\tVERDICT\tREQUEST ID\tREASON")
	for _, d := range s.Recent {
		v := d.Outcome
		if v == "blocked" {
			v = "blocked:" + d.Guard
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", d.Time.UTC().Format(time.RFC3339), d.Rule, d.Object, v, d.RequestID, d.Reason)
	}
	fmt.Fprintln(w, "\nTIME\tRULE\tOBJECT\tOUTCOME\tREQUEST ID\tMESSAGE")
	for _, o := range s.RecentOutcomes {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", o.Time.UTC().Format(time.RFC3339), o.Rule, o.Object, o.Outcome, o.RequestID, o.Message)
	}
	return w.Flush()
}

// post sends an approval answer or a manual action and prints the verdict.
func (c *cli) post(ctx context.Context, path string, body map[string]any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	var res struct {
		State    string `json:"state"`
		Error    string `json:"error"`
		Decision *struct {
			Outcome   string `json:"outcome"`
			Guard     string `json:"guard"`
			Reason    string `json:"reason"`
			RequestID string `json:"request_id"`
		} `json:"decision"`
	}
	if err := c.do(ctx, http.MethodPost, path, b, &res); err != nil {
		return err
	}
	if c.output == "json" {
		return c.json(res)
	}
	if res.State != "" {
		fmt.Fprintf(c.out, "approval %s\n", res.State)
	}
	if d := res.Decision; d != nil {
		switch d.Outcome {
		case "decided":
			fmt.Fprintf(c.out, "action decided and started, request id %s\n", d.RequestID)
		case "dry_run":
			fmt.Fprintf(c.out, "dry-run: nothing called (%s)\n", d.Reason)
		default:
			fmt.Fprintf(c.out, "%s by %s: %s\n", d.Outcome, d.Guard, d.Reason)
		}
	}
	return nil
}

func (c *cli) table() *tabwriter.Writer { return tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0) }

func (c *cli) json(v any) error {
	enc := json.NewEncoder(c.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
