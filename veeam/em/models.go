package em

// Decoders for Enterprise Manager's two representations of the RestAPI.xsd
// types. XML: <Links><Link/></Links>, attributes for Href/Type/Name/UID,
// lists as a wrapper element around item elements. JSON: the same names,
// "Links":[...], and lists either as an array or as an object keyed by the
// plural ({"FailoverPlans":[...]}), possibly nested once more inside the
// element of the same name; EM's JSON for QueryResult is not documented, so
// both forms are accepted. The wire types carry both xml and json tags, so
// one set of types serves both decoders.

import (
	"bytes"
	"encoding"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

// Namespace is the XML namespace of every EM document.
const Namespace = "http://www.veeam.com/ent/v1.0"

type link struct {
	Rel  string `xml:"Rel,attr" json:"Rel"`
	Href string `xml:"Href,attr" json:"Href"`
	Name string `xml:"Name,attr" json:"Name"`
	Type string `xml:"Type,attr" json:"Type"`
}

// lastSegment is the last path segment of an href, without its query.
func lastSegment(href string) string {
	if u, err := url.Parse(href); err == nil {
		href = u.Path
	} else if i := strings.IndexAny(href, "?#"); i >= 0 {
		href = href[:i]
	}
	href = strings.TrimRight(href, "/")
	if href == "" {
		return ""
	}
	return path.Base(href)
}

// backupServerID finds the backup server an entity belongs to from its
// Rel="Up" BackupServerReference link.
func backupServerID(links []link) string {
	for _, l := range links {
		if strings.EqualFold(l.Rel, "Up") && strings.EqualFold(l.Type, "BackupServerReference") {
			return veeam.NormalizeID(lastSegment(l.Href))
		}
	}
	return ""
}

// maxListNesting bounds how deep a JSON list may be wrapped in objects
// named after it ({"X":{"X":[...]}} is depth 2).
const maxListNesting = 3

// unmarshalList decodes EM JSON for a list: [...], null, {"<key>":[...]},
// {"<key>":null} or {"<key>":{"<key>":[...]}}.
func unmarshalList[T any](data []byte, key string) ([]T, error) {
	for depth := 0; ; depth++ {
		data = bytes.TrimSpace(data)
		switch {
		case len(data) == 0:
			return nil, errors.New("empty list value")
		case bytes.Equal(data, []byte("null")):
			return nil, nil
		case data[0] == '[':
			var items []T
			if err := json.Unmarshal(data, &items); err != nil {
				return nil, err
			}
			return items, nil
		case data[0] == '{' && depth < maxListNesting:
			var m map[string]json.RawMessage
			if err := json.Unmarshal(data, &m); err != nil {
				return nil, err
			}
			raw, ok := m[key]
			if !ok {
				return nil, fmt.Errorf("list object has no %q", key)
			}
			data = raw
		default:
			return nil, fmt.Errorf("%s: want a list, got %.20q", key, data)
		}
	}
}

// emBool is a boolean that EM may write as true/false or "true"/"True".
type emBool bool

func (b *emBool) UnmarshalText(t []byte) error {
	v, err := strconv.ParseBool(strings.TrimSpace(string(t)))
	if err != nil {
		return fmt.Errorf("boolean %.20q", t)
	}
	*b = emBool(v)
	return nil
}

func (b *emBool) UnmarshalJSON(d []byte) error { return unmarshalScalarJSON(d, b) }

// unmarshalScalarJSON reads a JSON scalar that EM may also quote, or null,
// through the type's text form, so XML and JSON accept the same values.
func unmarshalScalarJSON(d []byte, t encoding.TextUnmarshaler) error {
	d = bytes.TrimSpace(d)
	if bytes.Equal(d, []byte("null")) {
		return nil
	}
	if len(d) > 0 && d[0] == '"' {
		var s string
		if err := json.Unmarshal(d, &s); err != nil {
			return err
		}
		return t.UnmarshalText([]byte(s))
	}
	return t.UnmarshalText(d)
}

// emInt is an integer that tolerates empty XML elements and quoted JSON.
type emInt int

func (n *emInt) UnmarshalText(t []byte) error {
	s := strings.TrimSpace(string(t))
	if s == "" {
		*n = 0
		return nil
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("integer %.20q", s)
	}
	*n = emInt(v)
	return nil
}

func (n *emInt) UnmarshalJSON(d []byte) error { return unmarshalScalarJSON(d, n) }

// failoveredVM is FailoveredVmType.
type failoveredVM struct {
	ID          string `xml:"FailoveredVmId" json:"FailoveredVmId"`
	Name        string `xml:"Name" json:"Name"`
	DisplayName string `xml:"DisplayName" json:"DisplayName"`
	Order       emInt  `xml:"Order" json:"Order"`
}

type vmList struct {
	Items []failoveredVM `xml:"FailoveredVm"`
}

func (l *vmList) UnmarshalJSON(d []byte) (err error) {
	l.Items, err = unmarshalList[failoveredVM](d, "FailoveredVms")
	return err
}

// planEntity is FailoverPlanEntityType.
type planEntity struct {
	UID         string `xml:"UID,attr" json:"UID"`
	Name        string `xml:"Name,attr" json:"Name"`
	Href        string `xml:"Href,attr" json:"Href"`
	Links       []link `xml:"Links>Link" json:"Links"`
	Description string `xml:"Description" json:"Description"`
	Info        *struct {
		Includes *vmList `xml:"Includes" json:"Includes"`
	} `xml:"FailoverPlanInfo" json:"FailoverPlanInfo"`
}

func (p *planEntity) vms() []failoveredVM {
	if p.Info == nil || p.Info.Includes == nil {
		return nil
	}
	return p.Info.Includes.Items
}

func (p *planEntity) id() string {
	if p.UID != "" {
		return veeam.NormalizeID(p.UID)
	}
	return veeam.NormalizeID(lastSegment(p.Href))
}

func (p *planEntity) plan() veeam.FailoverPlan {
	return veeam.FailoverPlan{
		ID:             p.id(),
		Name:           p.Name,
		BackupServerID: backupServerID(p.Links),
		Description:    p.Description,
		ObjectsCount:   len(p.vms()),
	}
}

func (p *planEntity) objects() []veeam.FailoverPlanObject {
	pid, bs := p.id(), backupServerID(p.Links)
	vms := p.vms()
	out := make([]veeam.FailoverPlanObject, 0, len(vms))
	for _, vm := range vms {
		name := vm.Name
		if name == "" {
			name = vm.DisplayName
		}
		out = append(out, veeam.FailoverPlanObject{
			ID:             veeam.NormalizeID(vm.ID),
			PlanID:         pid,
			Name:           name,
			BackupServerID: bs,
		})
	}
	return out
}

type planList struct {
	Items []planEntity `xml:"FailoverPlan"`
}

func (l *planList) UnmarshalJSON(d []byte) (err error) {
	l.Items, err = unmarshalList[planEntity](d, "FailoverPlans")
	return err
}

// sessionBase holds the members EM's session entities share
// (CloudFailoverSessionEntityType, RestoreSessionEntityType).
type sessionBase struct {
	UID             string `xml:"UID,attr" json:"UID"`
	Name            string `xml:"Name,attr" json:"Name"`
	Href            string `xml:"Href,attr" json:"Href"`
	CreationTimeUTC string `xml:"CreationTimeUTC" json:"CreationTimeUTC"`
	EndTimeUTC      string `xml:"EndTimeUTC" json:"EndTimeUTC"`
	State           string `xml:"State" json:"State"`
	Result          string `xml:"Result" json:"Result"`
	Progress        emInt  `xml:"Progress" json:"Progress"`
	FailureMessage  string `xml:"FailureMessage" json:"FailureMessage"`
}

// id is the session's id: its UID, or the last segment of its Href.
func (s *sessionBase) id() string {
	if id := veeam.NormalizeID(s.UID); id != "" {
		return id
	}
	return veeam.NormalizeID(lastSegment(s.Href))
}

// times are the creation and end times; zero when absent or unreadable.
func (s *sessionBase) times() (created, ended time.Time) {
	created, _ = veeam.ParseTime(s.CreationTimeUTC)
	ended, _ = veeam.ParseTime(s.EndTimeUTC)
	return created, ended
}

// progress is Progress within 0–100.
func (s *sessionBase) progress() int { return min(max(int(s.Progress), 0), 100) }

// sessionEntity is CloudFailoverSessionEntityType.
type sessionEntity struct {
	sessionBase
	Links   []link `xml:"Links>Link" json:"Links"`
	JobType string `xml:"JobType" json:"JobType"`
}

func (s *sessionEntity) session() veeam.CloudFailoverSession {
	ct, et := s.times()
	return veeam.CloudFailoverSession{
		ID:             s.id(),
		Name:           s.Name,
		BackupServerID: backupServerID(s.Links),
		JobType:        s.JobType,
		State:          s.State,
		Result:         s.Result,
		Progress:       s.progress(),
		CreationTime:   ct,
		EndTime:        et,
		FailureMessage: s.FailureMessage,
	}
}

type sessionList struct {
	Items []sessionEntity `xml:"CloudFailoverSession"`
}

func (l *sessionList) UnmarshalJSON(d []byte) (err error) {
	l.Items, err = unmarshalList[sessionEntity](d, "CloudFailoverSessions")
	return err
}

// restoreEntity is RestoreSessionEntityType (the members used).
type restoreEntity struct {
	sessionBase
}

func (s *restoreEntity) session() veeam.RestoreSession {
	ct, et := s.times()
	return veeam.RestoreSession{
		ID: s.id(), Name: s.Name, State: s.State, Result: s.Result,
		Progress:     s.progress(),
		CreationTime: ct, EndTime: et, FailureMessage: s.FailureMessage,
	}
}

// task is TaskType.
type task struct {
	TaskID    string `xml:"TaskId" json:"TaskId"`
	State     string `xml:"State" json:"State"`
	Operation string `xml:"Operation" json:"Operation"`
	Href      string `xml:"Href,attr" json:"Href"`
	Links     []link `xml:"Links>Link" json:"Links"`
	Result    *struct {
		Success emBool `xml:"Success,attr" json:"Success"`
		Message string `xml:"Message" json:"Message"`
	} `xml:"Result" json:"Result"`
}

func (t *task) task() veeam.Task {
	id := t.TaskID
	if id == "" {
		id = lastSegment(t.Href)
	}
	out := veeam.Task{ID: id, State: t.State, Operation: t.Operation}
	for _, l := range t.Links {
		if strings.EqualFold(l.Rel, "Related") && strings.EqualFold(l.Type, "RestoreSession") {
			out.RestoreSessionID = veeam.NormalizeID(lastSegment(l.Href))
		}
	}
	if t.Result != nil {
		out.HasResult = true
		out.Success = bool(t.Result.Success)
		out.Message = t.Result.Message
	}
	return out
}

type taskList struct {
	Items []task `xml:"Task"`
}

func (l *taskList) UnmarshalJSON(d []byte) (err error) {
	l.Items, err = unmarshalList[task](d, "Tasks")
	return err
}

type pagingInfo struct {
	PageNum    emInt `xml:"PageNum,attr" json:"PageNum"`
	PageSize   emInt `xml:"PageSize,attr" json:"PageSize"`
	PagesCount emInt `xml:"PagesCount,attr" json:"PagesCount"`
}

// queryResult is QueryResultType with the entity lists the client reads.
type queryResult struct {
	Entities *struct {
		FailoverPlans         *planList    `xml:"FailoverPlans" json:"FailoverPlans"`
		CloudFailoverSessions *sessionList `xml:"CloudFailoverSessions" json:"CloudFailoverSessions"`
	} `xml:"Entities" json:"Entities"`
	Resources *struct {
		Tasks *taskList `xml:"Tasks" json:"Tasks"`
	} `xml:"Resources" json:"Resources"`
	PagingInfo *pagingInfo `xml:"PagingInfo" json:"PagingInfo"`
}

func (q *queryResult) pages() int {
	if q.PagingInfo == nil {
		return 1
	}
	return max(int(q.PagingInfo.PagesCount), 0)
}

// logonSession is LogonSessionType.
type logonSession struct {
	SessionID string `xml:"SessionId" json:"SessionId"`
	Href      string `xml:"Href,attr" json:"Href"`
}

// errorBody is ErrorType.
type errorBody struct {
	Message    string `xml:"Message,attr" json:"Message"`
	StatusCode emInt  `xml:"StatusCode,attr" json:"StatusCode"`
}

// isXML sniffs a body: EM answers XML unless asked for JSON, and some
// errors come back as JSON whatever was asked.
func isXML(body []byte) bool {
	b := bytes.TrimPrefix(bytes.TrimLeft(body, " \t\r\n"), []byte("\xef\xbb\xbf"))
	return len(b) > 0 && b[0] == '<'
}

// decode decodes an XML or JSON body into v, by sniffing. An XML document
// must have one of the given root elements, so that an HTML error page from
// a proxy is not read as an empty list.
func decode(body []byte, v any, roots ...string) error {
	if isXML(body) {
		return decodeXML(body, v, roots...)
	}
	return json.Unmarshal(body, v)
}

// decodeXML decodes an XML document whose root is one of roots (no DTDs or
// entities are expanded by encoding/xml; content after the root is
// rejected).
func decodeXML(body []byte, v any, roots ...string) error {
	body = bytes.TrimPrefix(bytes.TrimLeft(body, " \t\r\n"), []byte("\xef\xbb\xbf"))
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	var start *xml.StartElement
	for start == nil {
		tok, err := d.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			start = &t
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return errors.New("text before the document element")
			}
		case xml.EndElement:
			return errors.New("unexpected end element")
		}
	}
	if len(roots) > 0 && !slices.Contains(roots, start.Name.Local) {
		return fmt.Errorf("document element <%.40s>, want <%s>", start.Name.Local, strings.Join(roots, "> or <"))
	}
	if err := d.DecodeElement(v, start); err != nil {
		return err
	}
	for {
		tok, err := d.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		switch t := tok.(type) {
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return errors.New("text after the document element")
			}
		case xml.Comment, xml.ProcInst:
		default:
			return errors.New("content after the document element")
		}
	}
}

// checkJSONQuery refuses a JSON object that is no QueryResult at all.
func checkJSONQuery(body []byte) error {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(body, &probe); err != nil {
		return err
	}
	for _, k := range []string{"PagingInfo", "Entities", "Refs", "Resources"} {
		if _, ok := probe[k]; ok {
			return nil
		}
	}
	return errors.New("not a QueryResult")
}

func decodeQuery(body []byte) (*queryResult, error) {
	var q queryResult
	if !isXML(body) {
		if err := checkJSONQuery(body); err != nil {
			return nil, err
		}
	}
	if err := decode(body, &q, "QueryResult"); err != nil {
		return nil, err
	}
	return &q, nil
}

// Page is one decoded page of a query.
type Page[T any] struct {
	Items []T
	Pages int
}

// DecodePlanQuery decodes a QueryResult of FailoverPlan entities (XML or
// JSON).
func DecodePlanQuery(body []byte) (Page[veeam.FailoverPlan], error) {
	ents, pages, err := decodePlanEntities(body)
	if err != nil {
		return Page[veeam.FailoverPlan]{}, err
	}
	out := make([]veeam.FailoverPlan, 0, len(ents))
	for i := range ents {
		out = append(out, ents[i].plan())
	}
	return Page[veeam.FailoverPlan]{Items: out, Pages: pages}, nil
}

func decodePlanEntities(body []byte) ([]planEntity, int, error) {
	q, err := decodeQuery(body)
	if err != nil {
		return nil, 0, err
	}
	var items []planEntity
	if q.Entities != nil && q.Entities.FailoverPlans != nil {
		items = q.Entities.FailoverPlans.Items
	}
	return items, q.pages(), nil
}

// DecodeSessionQuery decodes a QueryResult of CloudFailoverSession entities
// (XML or JSON). The JSON EM sends is read by a fast path; other shapes
// fall back to decodeSessionQuery.
func DecodeSessionQuery(body []byte) (Page[veeam.CloudFailoverSession], error) {
	if !isXML(body) {
		if p, ok := fastSessionQuery(body); ok {
			return p, nil
		}
	}
	return decodeSessionQuery(body)
}

// decodeSessionQuery decodes a QueryResult of CloudFailoverSession entities
// with encoding/xml or encoding/json.
func decodeSessionQuery(body []byte) (Page[veeam.CloudFailoverSession], error) {
	q, err := decodeQuery(body)
	if err != nil {
		return Page[veeam.CloudFailoverSession]{}, err
	}
	var out []veeam.CloudFailoverSession
	if q.Entities != nil && q.Entities.CloudFailoverSessions != nil {
		items := q.Entities.CloudFailoverSessions.Items
		out = make([]veeam.CloudFailoverSession, 0, len(items))
		for i := range items {
			out = append(out, items[i].session())
		}
	}
	return Page[veeam.CloudFailoverSession]{Items: out, Pages: q.pages()}, nil
}

// DecodePlan decodes one FailoverPlan entity.
func DecodePlan(body []byte) (veeam.FailoverPlan, error) {
	var p planEntity
	if err := decode(body, &p, "FailoverPlan"); err != nil {
		return veeam.FailoverPlan{}, err
	}
	if p.id() == "" {
		return veeam.FailoverPlan{}, errors.New("failover plan without UID")
	}
	return p.plan(), nil
}

// DecodeTask decodes one Task.
func DecodeTask(body []byte) (veeam.Task, error) {
	var t task
	if err := decode(body, &t, "Task"); err != nil {
		return veeam.Task{}, err
	}
	// The id may come from the Href; check what it gives, not that an Href
	// was there.
	out := t.task()
	if out.ID == "" {
		return veeam.Task{}, errors.New("task without TaskId")
	}
	return out, nil
}

// DecodeRestoreSession decodes one RestoreSession entity.
func DecodeRestoreSession(body []byte) (veeam.RestoreSession, error) {
	var s restoreEntity
	if err := decode(body, &s, "RestoreSession"); err != nil {
		return veeam.RestoreSession{}, err
	}
	out := s.session()
	if out.ID == "" {
		return veeam.RestoreSession{}, errors.New("restore session without UID")
	}
	return out, nil
}

// DecodeTasks decodes a task list ({"Tasks":[...]} or <TaskList><Task/>...).
func DecodeTasks(body []byte) ([]veeam.Task, error) {
	var l taskList
	if isXML(body) {
		if err := decodeXML(body, &l, "Tasks", "TaskList"); err != nil {
			return nil, err
		}
	} else if err := json.Unmarshal(body, &l); err != nil {
		return nil, err
	}
	out := make([]veeam.Task, 0, len(l.Items))
	for i := range l.Items {
		out = append(out, l.Items[i].task())
	}
	return out, nil
}

// DecodeError decodes an Error body (XML or JSON) into its message and
// StatusCode.
func DecodeError(body []byte) (message string, status int, err error) {
	var e errorBody
	if err := decode(body, &e, "Error"); err != nil {
		return "", 0, err
	}
	return e.Message, int(e.StatusCode), nil
}

// decodeLogon reads the session id from a LogonSession body, falling back
// to the last segment of its Href.
func decodeLogon(body []byte) (string, error) {
	var l logonSession
	if err := decode(body, &l, "LogonSession"); err != nil {
		return "", err
	}
	if l.SessionID != "" {
		return l.SessionID, nil
	}
	return lastSegment(l.Href), nil
}

// formatTime is how EM takes DateTime values.
func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
