package simulator

// Enterprise Manager representations, shared by XML and JSON.
//
// EM serialises the same XSD types (RestAPI.xsd) as XML or JSON:
//   - XML: namespace http://www.veeam.com/ent/v1.0 on the root; inherited
//     elements come first, so an entity starts with <Links> and then its own
//     elements in XSD order; Href/Type/Name/UID are attributes.
//   - JSON (doc example of /cloud/tenants?format=Entity): an entity's own
//     elements first, then its own attributes, then the inherited Name, UID,
//     Links, Href, Type; a reference is Links, UID, Name, Href, Type; a Link
//     is Rel, Href and, only when set, Name and Type; missing values are
//     null; a list type is an object keyed by the plural of its items
//     ({"FailoverPlans":[...]}), also when nested
//     ("Resources":{"CloudTenantResources":[...]},
//     "StorageResourceStats":{"StorageResourceStats":[...]}), and an empty
//     nested list is {"<Items>":null}.
//
// Struct field order therefore drives both encodings. Where the two orders
// differ (entities), the links are held twice: XLinks is the XML <Links>
// element (first) and Links is the JSON key (after UID). Root element names
// are given by the writer, not by XMLName fields.

import (
	"encoding/json"
	"encoding/xml"
	"time"
)

// emNS is the namespace of every EM XML document [C].
const emNS = "http://www.veeam.com/ent/v1.0"

// emNullString is a string that JSON-encodes "" as null (EM's "missing
// values appear as null") and that XML omits when empty (with omitempty).
type emNullString string

func (s emNullString) MarshalJSON() ([]byte, error) {
	if s == "" {
		return []byte("null"), nil
	}
	return json.Marshal(string(s))
}

// emLink is <Link Rel Href Name Type/>.
type emLink struct {
	Rel  string `xml:"Rel,attr" json:"Rel"`
	Href string `xml:"Href,attr" json:"Href"`
	Name string `xml:"Name,attr,omitempty" json:"Name,omitempty"`
	Type string `xml:"Type,attr,omitempty" json:"Type,omitempty"`
}

// emRef is an EntityReferenceType: <Ref> in lists, <EntityRef> as a root.
type emRef struct {
	Links []emLink `xml:"Links>Link" json:"Links"`
	UID   string   `xml:"UID,attr" json:"UID"`
	Name  string   `xml:"Name,attr" json:"Name"`
	Href  string   `xml:"Href,attr" json:"Href"`
	Type  string   `xml:"Type,attr" json:"Type"`
}

// emRefList is EntityReferences (root) and QueryResult/Refs; JSON {"Refs":[...]}.
type emRefList struct {
	Refs []emRef `xml:"Ref" json:"Refs"`
}

// emError is the Error body [C].
type emError struct {
	FirstChanceExceptionMessage emNullString `xml:"FirstChanceExceptionMessage,omitempty" json:"FirstChanceExceptionMessage"`
	Message                     string       `xml:"Message,attr" json:"Message"`
	StackTrace                  emNullString `xml:"StackTrace,omitempty" json:"StackTrace"`
	Status                      emNullString `xml:"Status,attr,omitempty" json:"Status"`
	StatusCode                  int          `xml:"StatusCode,attr" json:"StatusCode"`
}

// emEnterpriseManager is the unauthenticated GET /api/ answer.
type emEnterpriseManager struct {
	XLinks            []emLink               `xml:"Links>Link" json:"-"`
	SupportedVersions emSupportedVersionList `xml:"SupportedVersions" json:"SupportedVersions"`
	Links             []emLink               `xml:"-" json:"Links"`
	Href              emNullString           `xml:"Href,attr,omitempty" json:"Href"`
	Type              emNullString           `xml:"Type,attr,omitempty" json:"Type"`
}

type emSupportedVersionList struct {
	SupportedVersions []emSupportedVersion `xml:"SupportedVersion" json:"SupportedVersions"`
}

type emSupportedVersion struct {
	Links []emLink `xml:"Links>Link" json:"Links"`
	Name  string   `xml:"Name,attr" json:"Name"`
}

// emLogonSession is a LogonSessionType.
type emLogonSession struct {
	XLinks    []emLink `xml:"Links>Link" json:"-"`
	UserName  string   `xml:"UserName" json:"UserName"`
	SessionID string   `xml:"SessionId" json:"SessionId"`
	Links     []emLink `xml:"-" json:"Links"`
	Href      string   `xml:"Href,attr" json:"Href"`
	Type      string   `xml:"Type,attr" json:"Type"`
}

type emLogonSessionList struct {
	LogonSessions []emLogonSession `xml:"LogonSession" json:"LogonSessions"`
}

// emFailoverPlan is a FailoverPlanEntityType.
type emFailoverPlan struct {
	XLinks           []emLink           `xml:"Links>Link" json:"-"`
	Description      string             `xml:"Description" json:"Description"`
	FailoverPlanInfo emFailoverPlanInfo `xml:"FailoverPlanInfo" json:"FailoverPlanInfo"`
	Name             string             `xml:"Name,attr" json:"Name"`
	UID              string             `xml:"UID,attr" json:"UID"`
	Links            []emLink           `xml:"-" json:"Links"`
	Href             string             `xml:"Href,attr" json:"Href"`
	Type             string             `xml:"Type,attr" json:"Type"`
}

type emFailoverPlanInfo struct {
	Includes emFailoveredVMList `xml:"Includes" json:"Includes"`
}

type emFailoveredVMList struct {
	FailoveredVms []emFailoveredVM `xml:"FailoveredVm" json:"FailoveredVms"`
}

// emFailoveredVM is a FailoveredVmType. GuestProcessingOptions and the
// inherited ResourceType members are not simulated: omitted in XML, null in
// JSON.
type emFailoveredVM struct {
	FailoveredVMID         string    `xml:"FailoveredVmId" json:"FailoveredVmId"`
	HierarchyObjRef        string    `xml:"HierarchyObjRef" json:"HierarchyObjRef"`
	Name                   string    `xml:"Name" json:"Name"`
	DisplayName            string    `xml:"DisplayName" json:"DisplayName"`
	Order                  int       `xml:"Order" json:"Order"`
	GuestProcessingOptions *struct{} `xml:"GuestProcessingOptions,omitempty" json:"GuestProcessingOptions"`
	Links                  []emLink  `xml:"-" json:"Links"`
}

type emFailoverPlanList struct {
	FailoverPlans []emFailoverPlan `xml:"FailoverPlan" json:"FailoverPlans"`
}

// emTask is a TaskType: Links, TaskId, State, Operation, Result [C].
type emTask struct {
	XLinks    []emLink      `xml:"Links>Link" json:"-"`
	TaskID    string        `xml:"TaskId" json:"TaskId"`
	State     string        `xml:"State" json:"State"`
	Operation string        `xml:"Operation" json:"Operation"`
	Result    *emTaskResult `xml:"Result,omitempty" json:"Result"`
	Links     []emLink      `xml:"-" json:"Links"`
	Href      string        `xml:"Href,attr" json:"Href"`
	Type      string        `xml:"Type,attr" json:"Type"`
}

// emTaskResult is TaskResultInfoType. Its attributes become JSON booleans,
// as attributes do elsewhere in EM JSON ("LeaseOptions":{"Enabled":false});
// that this holds for Result is [?].
type emTaskResult struct {
	Message            string `xml:"Message" json:"Message"`
	Success            bool   `xml:"Success,attr" json:"Success"`
	CredentialsNeeded  bool   `xml:"CredentialsNeeded,attr,omitempty" json:"CredentialsNeeded"`
	ConfirmationNeeded bool   `xml:"ConfirmationNeeded,attr,omitempty" json:"ConfirmationNeeded"`
}

type emTaskList struct {
	Tasks []emTask `xml:"Task" json:"Tasks"`
}

// emRunMembers are the members of every run EM reports, sessions and the
// task sessions of a cloud failover alike, in the order of the documented
// examples: CreationTimeUTC, EndTimeUTC, State, Result, Progress,
// FailureMessage. EndTimeUTC and FailureMessage are left out while they
// have no value, as in the example of a Working session. Both encoders
// write an embedded struct's members in its place.
type emRunMembers struct {
	CreationTimeUTC time.Time    `xml:"CreationTimeUTC" json:"CreationTimeUTC"`
	EndTimeUTC      *time.Time   `xml:"EndTimeUTC,omitempty" json:"EndTimeUTC"`
	State           string       `xml:"State" json:"State"`
	Result          string       `xml:"Result" json:"Result"`
	Progress        int          `xml:"Progress" json:"Progress"`
	FailureMessage  emNullString `xml:"FailureMessage,omitempty" json:"FailureMessage"`
}

// emSessionMembers are the leading members every EM session entity shares
// (cloud failover and restore sessions): Links, JobType, then the run's.
type emSessionMembers struct {
	XLinks  []emLink `xml:"Links>Link" json:"-"`
	JobType string   `xml:"JobType" json:"JobType"`
	emRunMembers
}

// emCloudFailoverSession is a CloudFailoverSessionEntityType: the session
// members, then CloudFailoverTasks.
type emCloudFailoverSession struct {
	emSessionMembers
	CloudFailoverTasks emCloudFailoverTaskList `xml:"CloudFailoverTasks" json:"CloudFailoverTasks"`
	Name               string                  `xml:"Name,attr" json:"Name"`
	UID                string                  `xml:"UID,attr" json:"UID"`
	Links              []emLink                `xml:"-" json:"Links"`
	Href               string                  `xml:"Href,attr" json:"Href"`
	Type               string                  `xml:"Type,attr" json:"Type"`
}

// emCloudFailoverTaskList is CloudFailoverTaskSessionInfoListType: in the
// documented XML its items are again named CloudFailoverTasks.
type emCloudFailoverTaskList struct {
	Tasks []emCloudFailoverTask `xml:"CloudFailoverTasks" json:"CloudFailoverTasks"`
}

type emCloudFailoverTask struct {
	VMReplicaPointLink emLink `xml:"VmReplicaPointLink" json:"VmReplicaPointLink"`
	emRunMembers
	VMName string `xml:"VmName,attr" json:"VmName"`
}

type emCloudFailoverSessionList struct {
	CloudFailoverSessions []emCloudFailoverSession `xml:"CloudFailoverSession" json:"CloudFailoverSessions"`
}

// emCdpReplica is the CdpReplica entity of the documented example.
type emCdpReplica struct {
	XLinks       []emLink `xml:"Links>Link" json:"-"`
	BackupServer string   `xml:"BackupServer" json:"BackupServer"`
	PolicyUID    string   `xml:"PolicyUid" json:"PolicyUid"`
	PolicyName   string   `xml:"PolicyName" json:"PolicyName"`
	Name         string   `xml:"Name,attr" json:"Name"`
	UID          string   `xml:"UID,attr" json:"UID"`
	Links        []emLink `xml:"-" json:"Links"`
	Href         string   `xml:"Href,attr" json:"Href"`
	Type         string   `xml:"Type,attr" json:"Type"`
}

type emCdpReplicaList struct {
	CdpReplicas []emCdpReplica `xml:"CdpReplica" json:"CdpReplicas"`
}

// emCdpReplicaVM is the CDP replica VM entity. The documented example names
// the element and type CdpReplicaVm (Type="CdpReplicaVm", references
// "CdpReplicaVmReference"); the XSD mapping table says VmCdpReplica. The
// captured body wins here [?].
type emCdpReplicaVM struct {
	XLinks         []emLink `xml:"Links>Link" json:"-"`
	VMRef          string   `xml:"VmRef" json:"VmRef"`
	ReplicaUID     string   `xml:"ReplicaUid" json:"ReplicaUid"`
	BackupServer   string   `xml:"BackupServer" json:"BackupServer"`
	PolicyUID      string   `xml:"PolicyUid" json:"PolicyUid"`
	PolicyName     string   `xml:"PolicyName" json:"PolicyName"`
	RepositoryName string   `xml:"RepositoryName" json:"RepositoryName"`
	Name           string   `xml:"Name,attr" json:"Name"`
	UID            string   `xml:"UID,attr" json:"UID"`
	Links          []emLink `xml:"-" json:"Links"`
	Href           string   `xml:"Href,attr" json:"Href"`
	Type           string   `xml:"Type,attr" json:"Type"`
}

type emCdpReplicaVMList struct {
	CdpReplicaVms []emCdpReplicaVM `xml:"CdpReplicaVm" json:"CdpReplicaVms"`
}

// emBackupServer is a BackupServerEntityType.
type emBackupServer struct {
	XLinks      []emLink `xml:"Links>Link" json:"-"`
	Description string   `xml:"Description" json:"Description"`
	Port        int      `xml:"Port" json:"Port"`
	Version     string   `xml:"Version" json:"Version"`
	Name        string   `xml:"Name,attr" json:"Name"`
	UID         string   `xml:"UID,attr" json:"UID"`
	Links       []emLink `xml:"-" json:"Links"`
	Href        string   `xml:"Href,attr" json:"Href"`
	Type        string   `xml:"Type,attr" json:"Type"`
}

type emBackupServerList struct {
	BackupServers []emBackupServer `xml:"BackupServer" json:"BackupServers"`
}

// emQueryResult is QueryResultType: Refs, Entities, Resources, Links,
// PagingInfo.
//
// JSON shape [?]: the sources show no QueryResult in JSON. The same rules
// that give "Resources":{"CloudTenantResources":[...]} and
// "StorageResourceStats":{"StorageResourceStats":[...]} (a list type nested
// in another element keeps its own {"<Items>":[...]} object) give
//
//	{"Refs":{"Refs":[...]},"Entities":null,"Resources":null,"Links":null,"PagingInfo":{...}}
//	{"Refs":null,"Entities":{"FailoverPlans":null,"CloudFailoverSessions":{"CloudFailoverSessions":[...]}},...}
//
// so that is what the simulator sends; clients are best off accepting the
// flat form ("CloudFailoverSessions":[...]) as well.
type emQueryResult struct {
	Refs      *emRefList   `xml:"Refs,omitempty" json:"Refs"`
	Entities  *emEntities  `xml:"Entities,omitempty" json:"Entities"`
	Resources *emResources `xml:"Resources,omitempty" json:"Resources"`
	// Links is never set; a pointer, since encoding/xml writes the <Links>
	// parent of a nil slice but not of a nil pointer.
	Links      *[]emLink    `xml:"Links>Link" json:"Links"`
	PagingInfo emPagingInfo `xml:"PagingInfo" json:"PagingInfo"`
}

// emEntities is the subset of EntitiesType the simulator fills.
type emEntities struct {
	FailoverPlans         *emFailoverPlanList         `xml:"FailoverPlans,omitempty" json:"FailoverPlans"`
	CloudFailoverSessions *emCloudFailoverSessionList `xml:"CloudFailoverSessions,omitempty" json:"CloudFailoverSessions"`
}

// emResources is the subset of ResourcesType the simulator fills: tasks are
// resources, not entities (they have no UID), so a Task query answers with
// Resources/Tasks whatever the format [I].
type emResources struct {
	Tasks *emTaskList `xml:"Tasks,omitempty" json:"Tasks"`
}

// emPagingInfo is PagingInfoType [C: XSD, pagesize_and_page example].
type emPagingInfo struct {
	Links      []emLink `xml:"Links>Link" json:"Links"`
	PageNum    int      `xml:"PageNum,attr" json:"PageNum"`
	PageSize   int      `xml:"PageSize,attr" json:"PageSize"`
	PagesCount int      `xml:"PagesCount,attr" json:"PagesCount"`
}

// emMarshalXML encodes v as the root element root in the EM namespace,
// with an XML declaration as EM sends it.
func emMarshalXML(root string, v any) ([]byte, error) {
	out, err := xml.Marshal(emXMLRoot{name: root, v: v})
	if err != nil {
		return nil, err
	}
	return append([]byte(`<?xml version="1.0" encoding="utf-8"?>`+"\n"), out...), nil
}

// emXMLRoot names the root element of a document at encoding time.
type emXMLRoot struct {
	name string
	v    any
}

func (r emXMLRoot) MarshalXML(e *xml.Encoder, _ xml.StartElement) error {
	return e.EncodeElement(r.v, xml.StartElement{Name: xml.Name{Space: emNS, Local: r.name}})
}
