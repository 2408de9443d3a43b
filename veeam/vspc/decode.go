package vspc

import (
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/internal/jsonr"
)

// The list pages are decoded with jsonr rather than encoding/json: a
// service provider's 50,000 plan objects are 100 pages of 500, and the
// reflective decoder was most of a scrape's CPU time. The result is what
// decodeList over the wire types gives (the tests compare the two), except
// that times are in UTC.

// key matches member keys as encoding/json does.
func key(k []byte, name string) bool { return jsonr.Key(k, name) }

// readEnvelope reads {data: [...], meta: {pagingInfo: {total}}}; see
// jsonr.ReadList. A null meta forgets an earlier pagingInfo.
func readEnvelope(body []byte, item func(r *jsonr.Reader), reset func()) (int, error) {
	return jsonr.ReadList(body, item, reset, func(r *jsonr.Reader, k []byte, p *jsonr.Paging) {
		if !key(k, "meta") {
			r.Skip()
			return
		}
		if r.Null() {
			p.Has, p.Total = false, 0
			return
		}
		r.Object("meta", func(k []byte) {
			if !key(k, "pagingInfo") {
				r.Skip()
				return
			}
			p.Read(r, "pagingInfo", "count", "offset")
		})
	})
}

// DecodePlanObjects decodes a failover plan object collection page (items
// and total); exported for the fuzz target's benefit and for tools that
// read captured responses.
func DecodePlanObjects(body []byte) ([]veeam.FailoverPlanObject, int, error) {
	in := jsonr.NewInterner(veeam.NormalizeIDBytes)
	items := make([]veeam.FailoverPlanObject, 0, len(body)/1024+1) // objects are ~600 bytes
	total, err := readEnvelope(body, func(r *jsonr.Reader) {
		var o veeam.FailoverPlanObject
		r.Object("data[]", func(k []byte) { objectField(r, in, k, &o) })
		items = append(items, o)
	}, func() { items = items[:0] })
	if err != nil {
		return nil, 0, err
	}
	if items == nil {
		items = []veeam.FailoverPlanObject{}
	}
	return items, total, nil
}

// objectField reads one member of a BackupFailoverPlanObject.
func objectField(r *jsonr.Reader, in *jsonr.Interner, k []byte, o *veeam.FailoverPlanObject) {
	switch {
	case key(k, "instanceUid"):
		o.ID = jsonr.IDField(r, nil, "instanceUid")
	case key(k, "planUid"):
		o.PlanID = jsonr.IDField(r, in, "planUid")
	case key(k, "name"):
		o.Name = r.String("name")
	case key(k, "hostName"):
		b, _ := r.Bytes("hostName")
		o.HostName = in.Str(b)
	case key(k, "backupServerUid"):
		o.BackupServerID = jsonr.IDField(r, in, "backupServerUid")
	case key(k, "folderName"):
		r.Bytes("folderName") // type-checked, not kept
	case key(k, "path"):
		r.Bytes("path")
	case key(k, "restoreSession"):
		if r.Null() {
			o.RestoreStatus, o.RestorePointID = "", ""
			o.RestorePointTime, o.RestoreStartTime, o.RestoreEndTime = time.Time{}, time.Time{}, time.Time{}
			o.ProtectedVMID = ""
			return
		}
		defer clearEmptySession(o)
		r.Object("restoreSession", func(k []byte) {
			switch {
			case key(k, "backupStatus"):
				b, _ := r.Bytes("backupStatus")
				o.RestoreStatus = in.Str(b)
			case key(k, "restorePointUid"):
				o.RestorePointID = jsonr.IDField(r, nil, "restorePointUid")
			case key(k, "restorePointDateTime"):
				o.RestorePointTime = jsonr.TimeField(r, "restorePointDateTime")
			case key(k, "startDateTime"):
				o.RestoreStartTime = jsonr.TimeField(r, "startDateTime")
			case key(k, "endDateTime"):
				o.RestoreEndTime = jsonr.TimeField(r, "endDateTime")
			case key(k, "instanceUid"):
				o.ProtectedVMID = jsonr.IDField(r, nil, "instanceUid")
			default:
				r.Skip()
			}
		})
	default:
		r.Skip()
	}
}

// clearEmptySession drops a restoreSession that holds no session (no
// status and no start: an object of nulls for a plan that never ran), so
// that it reads as no session rather than one at the zero time.
func clearEmptySession(o *veeam.FailoverPlanObject) {
	if (o.RestoreStatus == "" || o.RestoreStatus == "Unknown") && o.RestoreStartTime.IsZero() && o.RestorePointTime.IsZero() {
		o.RestoreStatus, o.RestorePointID, o.ProtectedVMID = "", "", ""
		o.RestorePointTime, o.RestoreStartTime, o.RestoreEndTime = time.Time{}, time.Time{}, time.Time{}
	}
}

// DecodePlans decodes a failover plan collection page (items and total).
func DecodePlans(body []byte) ([]veeam.FailoverPlan, int, error) {
	in := jsonr.NewInterner(veeam.NormalizeIDBytes)
	var items []veeam.FailoverPlan
	total, err := readEnvelope(body, func(r *jsonr.Reader) {
		var p veeam.FailoverPlan
		r.Object("data[]", func(k []byte) { planField(r, in, k, &p) })
		items = append(items, p)
	}, func() { items = items[:0] })
	if err != nil {
		return nil, 0, err
	}
	if items == nil {
		items = []veeam.FailoverPlan{}
	}
	return items, total, nil
}

// planField reads one member of a BackupFailoverPlan.
func planField(r *jsonr.Reader, in *jsonr.Interner, k []byte, p *veeam.FailoverPlan) {
	switch {
	case key(k, "instanceUid"):
		p.ID = jsonr.IDField(r, nil, "instanceUid")
	case key(k, "originalUid"):
		r.Bytes("originalUid")
	case key(k, "backupServerUid"):
		p.BackupServerID = jsonr.IDField(r, in, "backupServerUid")
	case key(k, "name"):
		p.Name = r.String("name")
	case key(k, "type"):
		b, _ := r.Bytes("type")
		p.Type = in.Str(b)
	case key(k, "status"):
		b, _ := r.Bytes("status")
		p.Status = in.Str(b)
	case key(k, "tenantUid"):
		p.TenantID = jsonr.IDField(r, in, "tenantUid")
	case key(k, "objectsCount"):
		p.ObjectsCount = r.Int("objectsCount")
	case key(k, "lastSession"):
		if r.Null() {
			p.LastSession = nil
			return
		}
		s := p.LastSession
		if s == nil {
			s = &veeam.PlanSession{}
		}
		if r.Object("lastSession", func(k []byte) {
			switch {
			case key(k, "instanceUid"):
				s.ID = jsonr.IDField(r, nil, "instanceUid")
			case key(k, "endTime"):
				s.EndTime = jsonr.TimeField(r, "endTime")
			case key(k, "status"):
				b, _ := r.Bytes("status")
				s.Status = in.Str(b)
			case key(k, "message"):
				s.Message = r.String("message")
			default:
				r.Skip()
			}
		}) {
			p.LastSession = s
		}
	default:
		r.Skip()
	}
}
