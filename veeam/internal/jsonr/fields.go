package jsonr

import (
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

// TimeField reads a *string date-time as the clients' wire types do: null
// and unparsable values are the zero time.
func TimeField(r *Reader, field string) time.Time {
	b, ok := r.Bytes(field)
	if !ok {
		return time.Time{}
	}
	t, _ := veeam.ParseTimeBytes(b)
	return t
}

// IDField reads a string or *string id (null: ""), normalised. Ids that
// repeat on a page (a plan's backup server, a point's replica) are shared
// through in; pass nil for ids that are unique.
func IDField(r *Reader, in *Interner, field string) string {
	b, ok := r.Bytes(field)
	switch {
	case !ok:
		return ""
	case in == nil:
		return veeam.NormalizeIDBytes(b)
	}
	return in.ID(b)
}
