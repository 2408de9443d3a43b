package em

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/veeam-failover/veeam_failover_exporter/veeam/internal/jsontest"
)

var sessionCases = []string{
	`{"Refs":null,"Entities":{"FailoverPlans":null,"CloudFailoverSessions":[]},"PagingInfo":{"PageNum":1,"PageSize":200,"PagesCount":3}}`,
	`{"Entities":{"CloudFailoverSessions":{"CloudFailoverSessions":[{"UID":"urn:veeam:CloudFailoverSession:ABC","Name":"plan \"a\"","Href":"https://em/api/x/def","Links":[{"Rel":"up","Href":"https://em/api/backupServers/9F?x=1","Name":"bs","Type":"backupserverreference"}],"JobType":"FailoverPlan","CreationTimeUTC":"2026-11-01T09:29:17.332Z","EndTimeUTC":null,"State":"Working","Result":"","Progress":150,"FailureMessage":null,"CloudFailoverTasks":{"CloudFailoverTasks":[{"VmName":"x"}]}}]}}}`,
	`{"Entities":{"CloudFailoverSessions":[{"Href":"https://em/api/cloud/failoverSessions/A-B/","Progress":-3}]},"PagingInfo":{}}`,
	`{"Entities":{"CloudFailoverSessions":[{"Progress":"5"}]}}`,
	`{"Entities":{"CloudFailoverSessions":[{"Progress":5.5}]}}`,
	`{"Entities":{"CloudFailoverSessions":[null]}}`,
	`{"Entities":{"CloudFailoverSessions":[{"Links":[null]}]}}`,
	`{"Entities":{"CloudFailoverSessions":[{"uid":"x","UID":"y"}]}}`,
	`{"Entities":{"CloudFailoverSessions":{"CloudFailoverSessions":null}}}`,
	`{"Entities":{"CloudFailoverSessions":{"Other":[]}}}`,
	`{"Entities":{"CloudFailoverSessions":null},"PagingInfo":null}`,
	`{"Entities":{"cloudFailoverSessions":[]}}`,
	`{"Entities":{"FailoverPlans":[]}}`,
	`{"Entities":null,"Resources":{"Tasks":[]}}`,
	`{"PagingInfo":{"PagesCount":-1}}`,
	`{"Other":1}`, `null`, `[]`, `{}`, `{"Entities":[]}`, `{"Entities":{}} x`,
	`<QueryResult xmlns="http://www.veeam.com/ent/v1.0"><PagingInfo PagesCount="2"/></QueryResult>`,
}

func checkSessions(t *testing.T, body []byte) {
	t.Helper()
	got, gerr := DecodeSessionQuery(body)
	want, werr := decodeSessionQuery(body)
	if (gerr == nil) != (werr == nil) {
		t.Fatalf("%q: error %v, reference error %v", body, gerr, werr)
	}
	if gerr == nil && !reflect.DeepEqual(jsontest.UTC(got), jsontest.UTC(want)) {
		t.Fatalf("%q:\n got %+v\nwant %+v", body, got, want)
	}
}

func emSeeds(t testing.TB) [][]byte {
	out, err := jsontest.Seeds(filepath.Join("testdata", "fuzz", "FuzzDecodeJSON"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range sessionCases {
		out = append(out, []byte(c))
	}
	return out
}

func TestSessionQueryMatchesReference(t *testing.T) {
	for _, b := range emSeeds(t) {
		checkSessions(t, b)
	}
}

// TestSessionQueryFastPath checks that EM's own answers take the fast path.
func TestSessionQueryFastPath(t *testing.T) {
	seeds, err := jsontest.Seeds(filepath.Join("testdata", "fuzz", "FuzzDecodeJSON"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, b := range seeds {
		if !strings.Contains(string(b), `"CloudFailoverSessions":{"CloudFailoverSessions":[`) {
			continue
		}
		n++
		if p, ok := fastSessionQuery(b); !ok || len(p.Items) == 0 {
			t.Errorf("simulator answer not read by the fast path (ok %v, %d items)", ok, len(p.Items))
		}
	}
	if n == 0 {
		t.Fatal("no simulator session query in testdata/fuzz")
	}
}

// FuzzSessionQueryMatchesReference compares DecodeSessionQuery with the
// reflective decoder on arbitrary bodies.
func FuzzSessionQueryMatchesReference(f *testing.F) {
	for _, b := range emSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(checkSessions)
}
