// Package trigger receives Alertmanager webhooks and turns firing alerts
// into guarded, rate-limited failover calls on Veeam (VSPC plan start/undo,
// Enterprise Manager plan start/undo and CDP VM failover, VBR replica
// failover, planned, permanent and undo), tracks each call to its end, and
// reports decisions and outcomes as metrics, as /trigger JSON and as an
// audit log. A failover that fires by mistake takes production down, so
// every step is built to fail safe.
//
// # Pipeline
//
// Each notification is split into groups of alerts per rule and object (the
// plan, replica set or CDP VM the rule acts on, fixed in the rule or taken
// from an alert label). Alert-level guards come first: kill_switch (the
// kill switch file exists, or cannot be checked), match (no rule matches;
// rule label "none"), resolved (only firing alerts act) and for (firing at
// least the rule's `for`). The alerts left in a group then meet the group
// guards, in order: quorum (distinct label sets >= min_alerts, so a resent
// alert never counts twice), allow (a label-chosen object must be listed),
// dedup (this group key + earliest startsAt, or any of these alert
// instances, was already acted on by the rule for the object), cooldown
// (per rule and object since the last decided action), target_state (read
// live: a VSPC plan must be Ready to start and failed over to undo, every
// VBR replica needs a restore point whose allowedOperations permit the
// operation, and no action of ours may be in flight on the same plan, CDP VM
// or restore point), rate_limit (a global token bucket whose use survives
// restarts), concurrency (max_concurrent actions in flight) and dry_run.
// The first guard that says no ends the group's decision; it is counted in
// veeam_trigger_blocked_total{rule,guard}, written to the audit log and
// returned in the webhook's answer. A group acts at most once per
// notification, however many alerts it holds.
//
// Concurrent identical notifications (Alertmanager repeats, HA peers) are
// serialised on the dedup and cooldown keys: while one is reading Veeam for
// target_state the others stop at dedup.
//
// # Durability
//
// Before any call the decision is written to the audit log and to the state
// file (temporary file, fsync, rename, fsync of the directory): dedup keys,
// cooldown, rate-limit use and the action record with status "decided".
// The status becomes "sending" (durably) just before the call and "sent",
// with the task, session or async-action handle, once it is answered. After
// a restart:
//   - decided: never sent (outcome abandoned);
//   - sending: whether Veeam received the call is unknown; it is never
//     repeated (outcome abandoned, logged as uncertain);
//   - sent: tracked again to its end, with the deadline counted from the
//     original call (EM tasks belong to the logon session that started
//     them; one that cannot be read after a restart is abandoned).
//
// A state file that cannot be read or parsed is copied aside
// (state.json.corrupt-<time>), left untouched, and the trigger runs
// disarmed (as in dry-run) with the reason in the log, in /trigger and as
// veeam_trigger_armed 0, until an operator repairs or removes the file and
// reloads. Dry-run decisions keep their dedup and cooldown memory apart
// (in memory only), so dry-run shows what armed mode would do without
// making an incident count as handled once armed.
//
// # Calls
//
// Just before calling, the kill switch, dry-run and shutdown are checked
// again. Each call carries a request id, a UUIDv5 of rule, object, group
// key and earliest startsAt, sent to VSPC as X-Request-id: a second exporter
// replica acting on the same notification does not start the plan twice.
// A call Veeam answers with an error ends failed. A call without a usable
// answer (connection lost, timeout) is never repeated by the trigger: for
// VSPC the plan's status shows whether it started (timeout if it never
// does); for EM and VBR the action is abandoned with a message to check
// the target. Actions are tracked (VSPC async action then plan status, EM
// task, VBR sessions) until they end as success, warning or failed, or
// action_timeout passes (timeout).
//
// # Layout
//
// Each action kind is one file, kind_<name>.go: its name, target type,
// object shape (object.go: plan, replica set, CDP VM), live target check,
// call and tracking, registered with config from an init function. A kind
// states the small interface it needs from its target's client; the Veeam
// clients satisfy them directly, and New takes one client per target. The
// guard order is the list of stages in stages.go. What the trigger
// remembers (state file, dedup, cooldowns, rate-limit use) is its store
// (store.go), kept by a backend (the state file, state.go).
package trigger
