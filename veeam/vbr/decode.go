package vbr

import (
	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/internal/jsonr"
)

// Replica and restore point pages are decoded with jsonr rather than
// encoding/json, as VSPC's are: a large B&R holds thousands of replicas and
// several points each. The result is what decodeCollection over the wire
// types gives (the tests compare the two), except that times are in UTC.

func key(k []byte, name string) bool { return jsonr.Key(k, name) }

// readCollection reads {data: [...], pagination: {total}}; see
// jsonr.ReadList.
func readCollection(body []byte, item func(r *jsonr.Reader), reset func()) (int, error) {
	return jsonr.ReadList(body, item, reset, func(r *jsonr.Reader, k []byte, p *jsonr.Paging) {
		if key(k, "pagination") {
			p.Read(r, "pagination", "count")
			return
		}
		r.Skip()
	})
}

func strField(r *jsonr.Reader, in *jsonr.Interner, field string) string {
	b, _ := r.Bytes(field)
	return in.Str(b)
}

// DecodeReplicas decodes a ReplicasResult page and its total.
func DecodeReplicas(body []byte) ([]veeam.Replica, int, error) {
	in := jsonr.NewInterner(veeam.NormalizeIDBytes)
	items := make([]veeam.Replica, 0, len(body)/512+1) // replicas are ~300 bytes
	total, err := readCollection(body, func(r *jsonr.Reader) {
		var x veeam.Replica
		r.Object("data[]", func(k []byte) {
			switch {
			case key(k, "id"):
				x.ID = jsonr.IDField(r, nil, "id")
			case key(k, "type"):
				x.Type = strField(r, in, "type")
			case key(k, "jobId"):
				x.JobID = jsonr.IDField(r, in, "jobId")
			case key(k, "name"):
				x.Name = r.String("name")
			case key(k, "platformName"):
				x.PlatformName = strField(r, in, "platformName")
			case key(k, "creationTime"):
				x.CreationTime = jsonr.TimeField(r, "creationTime")
			case key(k, "state"):
				x.State = strField(r, in, "state")
			default:
				r.Skip()
			}
		})
		items = append(items, x)
	}, func() { items = items[:0] })
	if err != nil {
		return nil, 0, err
	}
	return items, total, nil
}

// DecodeReplicaPoints decodes a ReplicaPointsResult page and its total.
func DecodeReplicaPoints(body []byte) ([]veeam.ReplicaPoint, int, error) {
	in := jsonr.NewInterner(veeam.NormalizeIDBytes)
	items := make([]veeam.ReplicaPoint, 0, len(body)/512+1) // points are ~350 bytes
	total, err := readCollection(body, func(r *jsonr.Reader) {
		var p veeam.ReplicaPoint
		r.Object("data[]", func(k []byte) {
			switch {
			case key(k, "id"):
				p.ID = jsonr.IDField(r, nil, "id")
			case key(k, "name"):
				p.Name = strField(r, in, "name")
			case key(k, "replicaId"):
				p.ReplicaID = jsonr.IDField(r, in, "replicaId")
			case key(k, "creationTime"):
				p.CreationTime = jsonr.TimeField(r, "creationTime")
			case key(k, "allowedOperations"):
				p.AllowedOperations = p.AllowedOperations[:0]
				if !r.Array("allowedOperations", func() {
					p.AllowedOperations = append(p.AllowedOperations, strField(r, in, "allowedOperations[]"))
				}) {
					p.AllowedOperations = nil
				}
			case key(k, "state"):
				p.State = strField(r, in, "state")
			default:
				r.Skip()
			}
		})
		if p.AllowedOperations == nil {
			p.AllowedOperations = []string{}
		}
		items = append(items, p)
	}, func() { items = items[:0] })
	if err != nil {
		return nil, 0, err
	}
	return items, total, nil
}
