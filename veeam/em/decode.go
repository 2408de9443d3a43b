package em

import (
	"bytes"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/internal/jsonr"
)

// fastSessionQuery reads the JSON QueryResult of cloud failover sessions
// in the shape EM sends, with jsonr rather than encoding/json: 5,000
// sessions with their per-VM tasks are ~20 MB, which the reflective
// decoder read three times over. It reports false for anything else (XML,
// other shapes, repeated keys, errors): the caller then decodes with
// decodeSessionQuery, so results and errors stay exactly those of the
// reflective decoder. Times are in UTC.
func fastSessionQuery(body []byte) (Page[veeam.CloudFailoverSession], bool) {
	var (
		r          = jsonr.New(body)
		in         = jsonr.NewInterner(veeam.NormalizeIDBytes)
		out        []veeam.CloudFailoverSession
		pagesCount int
		bail       bool
		isQuery    bool
		seenTop    uint8
		hasList    bool
		hasPaging  bool
	)
	once := func(seen *uint8, bit uint8) bool {
		if *seen&bit != 0 {
			bail = true
			r.Fail(errBail)
			return false
		}
		*seen |= bit
		return true
	}
	r.Object("QueryResult", func(k []byte) {
		switch {
		case string(k) == "Entities":
			isQuery = true
			if !once(&seenTop, 1) {
				return
			}
			var seen uint8
			r.Object("Entities", func(k []byte) {
				switch {
				case string(k) == "CloudFailoverSessions":
					if !once(&seen, 1) {
						return
					}
					hasList = readSessionList(r, in, &out)
				case string(k) == "FailoverPlans":
					if !once(&seen, 2) || !r.Null() {
						r.Fail(errBail)
					}
				case jsonr.Key(k, "CloudFailoverSessions"), jsonr.Key(k, "FailoverPlans"):
					r.Fail(errBail)
				default:
					r.Skip()
				}
			})
		case string(k) == "PagingInfo":
			isQuery = true
			if !once(&seenTop, 2) {
				return
			}
			hasPaging = r.Object("PagingInfo", func(k []byte) {
				switch {
				case string(k) == "PagesCount":
					pagesCount = max(r.Int("PagesCount"), 0)
				case string(k) == "PageNum", string(k) == "PageSize":
					r.Int("PagingInfo")
				case jsonr.Key(k, "PagesCount"), jsonr.Key(k, "PageNum"), jsonr.Key(k, "PageSize"):
					r.Fail(errBail)
				default:
					r.Skip()
				}
			})
		case string(k) == "Resources":
			isQuery = true
			if !once(&seenTop, 4) || !r.Null() {
				r.Fail(errBail)
			}
		case string(k) == "Refs":
			isQuery = true
			r.Skip()
		case jsonr.Key(k, "Entities"), jsonr.Key(k, "PagingInfo"), jsonr.Key(k, "Resources"):
			r.Fail(errBail)
		default:
			r.Skip()
		}
	})
	if r.End() != nil || bail || !isQuery {
		return Page[veeam.CloudFailoverSession]{}, false
	}
	pages := 1 // as queryResult.pages: without PagingInfo, one page
	if hasPaging {
		pages = pagesCount
	}
	if hasList && out == nil {
		out = []veeam.CloudFailoverSession{}
	}
	return Page[veeam.CloudFailoverSession]{Items: out, Pages: pages}, true
}

// errBail stops the fast path; the caller falls back.
var errBail = bailError{}

type bailError struct{}

func (bailError) Error() string { return "not the usual shape" }

// readSessionList reads the CloudFailoverSessions value: null, an array of
// entities, or {"CloudFailoverSessions": [...]}. It reports whether a list
// (not null) was there.
func readSessionList(r *jsonr.Reader, in *jsonr.Interner, out *[]veeam.CloudFailoverSession) bool {
	switch r.Kind() {
	case "null":
		r.Null()
		return false
	case "array":
		*out = make([]veeam.CloudFailoverSession, 0, 64)
		var sc scratch
		r.Array("CloudFailoverSessions", func() { *out = append(*out, sessionEntityFast(r, in, &sc)) })
		return true
	case "object":
		found := false
		r.Object("CloudFailoverSessions", func(k []byte) {
			if string(k) != "CloudFailoverSessions" {
				r.Skip()
				return
			}
			if found || r.Kind() != "array" {
				r.Fail(errBail)
				return
			}
			found = true
			readSessionList(r, in, out)
		})
		if !found {
			r.Fail(errBail)
		}
		return true
	}
	r.Fail(errBail)
	return false
}

// scratch holds raw values of one entity while it is read.
type scratch struct{ uid, href, rel, lhref, typ []byte }

// sessionEntityFast reads one CloudFailoverSessionEntityType.
func sessionEntityFast(r *jsonr.Reader, in *jsonr.Interner, sc *scratch) veeam.CloudFailoverSession {
	var (
		s               veeam.CloudFailoverSession
		seen            uint16
		backupServerRef string
	)
	uid, href := sc.uid[:0], sc.href[:0]
	defer func() { sc.uid, sc.href = uid, href }()
	field := func(bit uint16) bool {
		if seen&bit != 0 {
			r.Fail(errBail)
			return false
		}
		seen |= bit
		return true
	}
	if !r.Object("CloudFailoverSession", func(k []byte) {
		switch string(k) {
		case "UID":
			if field(1) {
				b, _ := r.Bytes("UID")
				uid = append(uid[:0], b...)
			}
		case "Name":
			if field(2) {
				b, _ := r.Bytes("Name")
				s.Name = in.Str(b)
			}
		case "Href":
			if field(4) {
				b, _ := r.Bytes("Href")
				href = append(href[:0], b...)
			}
		case "Links":
			if field(8) {
				backupServerRef = links(r, sc)
			}
		case "JobType":
			if field(16) {
				b, _ := r.Bytes("JobType")
				s.JobType = in.Str(b)
			}
		case "CreationTimeUTC":
			if field(32) {
				b, _ := r.Bytes("CreationTimeUTC")
				s.CreationTime, _ = veeam.ParseTimeBytes(b)
			}
		case "EndTimeUTC":
			if field(64) {
				b, _ := r.Bytes("EndTimeUTC")
				s.EndTime, _ = veeam.ParseTimeBytes(b)
			}
		case "State":
			if field(128) {
				b, _ := r.Bytes("State")
				s.State = in.Str(b)
			}
		case "Result":
			if field(256) {
				b, _ := r.Bytes("Result")
				s.Result = in.Str(b)
			}
		case "Progress":
			if field(512) {
				s.Progress = min(max(r.Int("Progress"), 0), 100)
			}
		case "FailureMessage":
			if field(1024) {
				s.FailureMessage = r.String("FailureMessage")
			}
		default:
			for _, name := range sessionFields {
				if jsonr.Key(k, name) {
					r.Fail(errBail)
					return
				}
			}
			r.Skip()
		}
	}) {
		r.Fail(errBail) // null entity: leave it to the reflective decoder
	}
	s.ID = veeam.NormalizeIDBytes(uid)
	if s.ID == "" {
		s.ID = veeam.NormalizeID(lastSegment(string(href)))
	}
	s.BackupServerID = backupServerRef
	return s
}

var sessionFields = []string{"UID", "Name", "Href", "Links", "JobType", "CreationTimeUTC", "EndTimeUTC", "State", "Result", "Progress", "FailureMessage"}

// links reads an entity's Links array and returns the backup server id of
// its first Rel="Up" BackupServerReference link, as backupServerID does.
func links(r *jsonr.Reader, sc *scratch) string {
	id, found := "", false
	r.Array("Links", func() {
		rel, href, typ := sc.rel[:0], sc.lhref[:0], sc.typ[:0]
		defer func() { sc.rel, sc.lhref, sc.typ = rel, href, typ }()
		var seen uint8
		if !r.Object("Link", func(k []byte) {
			var dst *[]byte
			var bit uint8
			switch string(k) {
			case "Rel":
				dst, bit = &rel, 1
			case "Href":
				dst, bit = &href, 2
			case "Type":
				dst, bit = &typ, 4
			case "Name":
				dst, bit = nil, 8
			default:
				for _, name := range []string{"Rel", "Href", "Type", "Name"} {
					if jsonr.Key(k, name) {
						r.Fail(errBail)
						return
					}
				}
				r.Skip()
				return
			}
			if seen&bit != 0 {
				r.Fail(errBail)
				return
			}
			seen |= bit
			b, _ := r.Bytes("Links[]")
			if dst != nil {
				*dst = append((*dst)[:0], b...)
			}
		}) {
			r.Fail(errBail) // null link
			return
		}
		if !found && bytes.EqualFold(rel, []byte("Up")) && bytes.EqualFold(typ, []byte("BackupServerReference")) {
			id, found = veeam.NormalizeID(lastSegment(string(href))), true
		}
	})
	return id
}
