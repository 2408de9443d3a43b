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
// instances, was already acted on by this action on the object), cooldown
// (per action and object since the last decided action, with the rule's
// duration), target_state (read live: a VSPC plan must be Ready to start
// and failed over to undo, every VBR replica needs a restore point whose
// allowedOperations permit the operation; and the object lock: no action
// of any rule in flight on the same object, plan, CDP VM or restore point,
// and no hold left by an action that ended timeout or uncertain),
// approval (a rule with approval.within waits for a person: approvals.go),
// rate_limit (a global token bucket whose use survives restarts),
// concurrency (max_concurrent actions in flight) and dry_run. The first
// guard that says no ends the group's decision; it is counted in
// veeam_trigger_blocked_total{rule,guard}, written to the audit log and
// returned in the webhook's answer. A group acts at most once per
// notification, however many alerts it holds; a notification that would
// make more than max_decisions_per_notification decisions is refused (400)
// before any.
//
// # People in the loop
//
// A person answers an approval (POST /trigger/approvals/{id}) or asks for a
// manual action (POST /trigger/actions) with the approver's token, never
// the webhook's. Both reuse decide with only their guards (alertGroup.only):
// an approved decision meets kill_switch, target_state, rate_limit,
// concurrency and dry_run again; a manual one kill_switch, allow, cooldown,
// target_state, rate_limit, concurrency and dry_run. With coordination an
// approval is shared in etcd (approvals_shared.go): any replica lists and
// answers it, an answer is used once by compare-and-swap, and the approved
// decision goes through the claim on the replica that answered. A
// heartbeat alert (heartbeat_matchers) is taken out of a notification
// before any rule matches and only recorded (heartbeat.go).
//
// # The object is the key
//
// The trigger's memory (dedup keys, cooldowns, request ids, the object
// lock) is keyed on the action type and the object, never on the rule's
// name or the label's spelling: before target_state's live read on the
// object as written (target + text), so Alertmanager's repeats stop before
// Veeam is read; after it also on the object as Veeam identifies it
// (objectKey: target + plan id, target + CDP replica/VM, or target + sorted
// restore point ids). Two spellings of one plan, two rules on it, or a rule
// renamed by a reload are one object. Concurrent identical notifications
// are serialised on the reserved keys: while one reads Veeam the others
// stop at dedup.
//
// # Pending decisions
//
// A group blocked only by what time lifts — `for`, a target that could not
// be read (not one that answered "not Ready"), rate_limit or concurrency —
// is kept in the state file and evaluated again by the trigger itself,
// through the whole pipeline: at the `for` deadline, after a backoff for an
// unreadable target (2s, 4s … five times), when a token or a slot frees.
// Alertmanager would send an unchanged group again only at repeat_interval.
// A later notification that resolves its alerts drops it; it expires at the
// latest of its alerts' endsAt and its `for` deadline + 10m. /trigger lists
// them; veeam_trigger_pending_decisions{rule,guard} counts them.
//
// # Durability
//
// Before any call the decision is written to the audit log (with what it
// adds to the memory) and to the state file (temporary file, fsync,
// rename, fsync of the directory): dedup keys, cooldowns, rate-limit use
// and the action record with status "decided". The status becomes
// "sending" (durably) just before the call and "sent", with the task,
// session or async-action handle, once it is answered. After a restart:
//   - decided: never sent: abandoned and released (below);
//   - sending: whether Veeam received the call is unknown; it is never
//     repeated: uncertain, everything kept, the object held;
//   - sent: tracked again to its end, with the deadline counted from the
//     original call.
//
// Release: an action that ends without having reached Veeam (still
// decided: kill switch, dry-run or shutdown at the last check, a crash; or
// marked Unsent because Veeam's answer proves it unprocessed) gives back
// its dedup keys, cooldowns, rate-limit token and object lock, with a
// "released" audit line, so the next notification of a still firing alert
// acts. An action that ends timeout or uncertain keeps everything and holds
// its object one more action_timeout (its task may still run).
//
// No memory, no arming: a state file that cannot be read or parsed is
// copied aside (state.json.corrupt-<time>), left untouched, and the
// trigger runs disarmed (as in dry-run) with the reason in the log, in
// /trigger and as veeam_trigger_armed 0 / veeam_trigger_state_error 1,
// until an operator repairs or removes the file and reloads. A missing
// state file over an audit log with decisions (a lost volume) is rebuilt
// from the log: dedup keys, cooldowns, rate-limit uses, holds, and actions
// without an outcome end uncertain; if the log cannot be read the trigger
// stays disarmed. An audit log that cannot be opened disarms the trigger
// the same way (New does not fail: the exporter's metrics keep serving).
// Dry-run decisions keep their dedup and cooldown memory apart (in memory
// only), so dry-run shows what armed mode would do without making an
// incident count as handled once armed.
//
// # Calls
//
// Just before calling, the kill switch, dry-run and shutdown are checked
// again. Each call carries a request id, a UUIDv5 of action, objectKey,
// group key and earliest startsAt, sent to VSPC as X-Request-id: a second exporter
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
// remembers (state file, dedup, cooldowns, rate-limit use, holds, pending
// decisions) is its store (store.go), kept by a backend (the state file,
// state.go); release.go gives back what an unsent action took, pending.go
// evaluates kept decisions again, reconcile.go reads the audit log back
// (orphan decisions, rebuilding a lost state file). Webhook bodies are
// parsed strictly (strictjson.go: exact-case keys, no key twice). With
// trigger.coordination.etcd, coord.go keeps that memory in etcd instead
// (package coordination): one fenced claim per object, shared dedup keys,
// cooldowns, rate-limit use and slots, hand-over of the actions of replicas
// that stopped, and 503 without a quorum.
package trigger
