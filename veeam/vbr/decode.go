package vbr

import (
	"errors"
	"fmt"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/internal/jsonr"
)

// Replica and restore point pages are decoded with jsonr rather than
// encoding/json, as VSPC's are: a large B&R holds thousands of replicas and
// several points each. The result is what decodeCollection over the wire
// types gives (the tests compare the two), except that times are in UTC.

func key(k []byte, name string) bool { return jsonr.Key(k, name) }

// readCollection reads {data: [...], pagination: {total}} and hands each
// element of data to item; it returns the total (the item count without
// pagination). Repeated keys behave as encoding/json's pointers do.
func readCollection(body []byte, item func(r *jsonr.Reader), reset func()) (int, error) {
	r := jsonr.New(body)
	var (
		hasData, hasPagination bool
		total, count           int
	)
	r.Object("response", func(k []byte) {
		switch {
		case key(k, "data"):
			reset()
			count = 0
			hasData = r.Array("data", func() { item(r); count++ })
		case key(k, "pagination"):
			if r.Null() {
				hasPagination, total = false, 0
				return
			}
			if !hasPagination {
				hasPagination, total = true, 0
			}
			r.Object("pagination", func(k []byte) {
				switch {
				case key(k, "total"):
					total = r.Int("total")
				case key(k, "count"):
					r.Int("count")
				default:
					r.Skip()
				}
			})
		default:
			r.Skip()
		}
	})
	if err := r.End(); err != nil {
		return 0, err
	}
	if !hasData {
		return 0, errors.New("response has no data")
	}
	if !hasPagination {
		return count, nil
	}
	if total < 0 {
		return 0, fmt.Errorf("negative total %d", total)
	}
	return total, nil
}

// timeField reads a *string date-time: null and unparsable values are the
// zero time.
func timeField(r *jsonr.Reader, field string) time.Time {
	b, ok := r.Bytes(field)
	if !ok {
		return time.Time{}
	}
	t, _ := veeam.ParseTimeBytes(b)
	return t
}

// idField reads an id; ids that repeat on a page (a point's replica, a
// replica's job) are shared through in, unique ones pass nil.
func idField(r *jsonr.Reader, in *jsonr.Interner, field string) string {
	b, ok := r.Bytes(field)
	switch {
	case !ok:
		return ""
	case in == nil:
		return veeam.NormalizeIDBytes(b)
	}
	return in.ID(b)
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
				x.ID = idField(r, nil, "id")
			case key(k, "type"):
				x.Type = strField(r, in, "type")
			case key(k, "jobId"):
				x.JobID = idField(r, in, "jobId")
			case key(k, "name"):
				x.Name = r.String("name")
			case key(k, "platformName"):
				x.PlatformName = strField(r, in, "platformName")
			case key(k, "creationTime"):
				x.CreationTime = timeField(r, "creationTime")
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
				p.ID = idField(r, nil, "id")
			case key(k, "name"):
				p.Name = strField(r, in, "name")
			case key(k, "replicaId"):
				p.ReplicaID = idField(r, in, "replicaId")
			case key(k, "creationTime"):
				p.CreationTime = timeField(r, "creationTime")
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
