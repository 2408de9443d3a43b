package vspc

import (
	"path/filepath"
	"reflect"
	"testing"

	"github.com/veeam-failover/veeam_failover_exporter/veeam/internal/jsontest"
)

// decodeCases are pages the fast decoders must read exactly as the
// reflective reference does.
var decodeCases = []string{
	`{"data":[],"meta":{"pagingInfo":{"total":0,"count":0,"offset":0}},"errors":null}`,
	`{"data":[{"instanceUid":"27A8BAF5-179E-4EAE-81D5-772AA2331562","name":"Media \"x\"\n\u00e9","backupServerUid":"DF997BD3-4AE9-4841-8152-8FF5CC703EAB","type":"Local","objectsCount":5,"status":"InProgress","tenantUid":null,"lastSession":{"instanceUid":"x","endTime":"2024-01-01T00:00:00Z","status":"Success","message":null}}],"meta":{"pagingInfo":{"total":1,"count":1,"offset":0}}}`,
	`{"data":[{"instanceUid":"a","planUid":"B","restoreSession":{"backupStatus":"Running","restorePointUid":null,"restorePointDateTime":"bogus","startDateTime":"2024-01-01T00:00:00+02:00","endDateTime":null}}],"meta":null}`,
	`{"data":[{"INSTANCEUID":"urn:veeam:Plan:AbC","PlanUid":" b ","restoreSession":{"restorePointDateTime":"2024-02-29T23:59:59.1234567-03:30","startDateTime":"2023-02-29T00:00:00Z","endDateTime":"2024-01-01 10:00:00Z"}}],"meta":{"pagingInfo":null}}`,
	`{"data":[null,{"lastSession":null},{"lastSession":{}}],"meta":{"pagingInfo":{"total":7}}}`,
	`{"data":[{"objectsCount":1.5}]}`,
	`{"data":[{"objectsCount":"1"}]}`,
	`{"data":[{"objectsCount":99999999999999999999}]}`,
	`{"data":[{"objectsCount":-9223372036854775808}]}`,
	`{"data":[{"name":5}]}`,
	`{"data":[{"folderName":{}}]}`,
	`{"data":{}}`,
	`{"data":null}`,
	`null`,
	`[]`,
	`{"data":[]} x`,
	`{"data":[],"meta":{"pagingInfo":{"total":-1}}}`,
	`{"data":[{"name":"\ud800"}], "x": [1, 2.5e3, true, false, null, {"a": [{}]}]}`,
	"{\"data\":[{\"name\":\"\xff\xfe\"}]}",
	"{\"data\":[{\"name\":\"a\tb\"}]}",
	`{"data":[{"name":"\x"}]}`,
	`{"data":[],}`,
	`{"data":[1,]}`,
	` { "data" : [ { "instanceUid" : "A" } ] } `,
	`{"data":[{"instanceUid":"A"}`,
	`{"data":[01]}`,
	`{"data":[-]}`,
	`{"data":[{"objectsCount":1e2}]}`,
}

func checkSame(t *testing.T, body []byte) {
	t.Helper()
	if jsontest.DuplicateKeys(body) {
		return
	}
	po, pt, perr := DecodePlanObjects(body)
	ro, rt, rerr := refPlanObjects(body)
	if (perr == nil) != (rerr == nil) {
		t.Fatalf("objects %q: error %v, reference error %v", body, perr, rerr)
	}
	if perr == nil && (pt != rt || !reflect.DeepEqual(jsontest.UTC(po), jsontest.UTC(ro))) {
		t.Fatalf("objects %q:\n got %d %+v\nwant %d %+v", body, pt, po, rt, ro)
	}
	pp, pt, perr := DecodePlans(body)
	rp, rt, rerr := refPlans(body)
	if (perr == nil) != (rerr == nil) {
		t.Fatalf("plans %q: error %v, reference error %v", body, perr, rerr)
	}
	if perr == nil && (pt != rt || !reflect.DeepEqual(jsontest.UTC(pp), jsontest.UTC(rp))) {
		t.Fatalf("plans %q:\n got %d %+v\nwant %d %+v", body, pt, pp, rt, rp)
	}
}

func TestDecodeMatchesReference(t *testing.T) {
	seeds, err := jsontest.Seeds(filepath.Join("testdata", "fuzz", "FuzzDecodeJSON"))
	if err != nil {
		t.Fatal(err)
	}
	if len(seeds) == 0 {
		t.Fatal("no simulator answers in testdata/fuzz")
	}
	for _, c := range decodeCases {
		seeds = append(seeds, []byte(c))
	}
	for _, b := range seeds {
		checkSame(t, b)
	}
}

// FuzzDecodeMatchesReference compares the jsonr decoders of list pages
// with encoding/json on arbitrary bodies.
func FuzzDecodeMatchesReference(f *testing.F) {
	seeds, _ := jsontest.Seeds(filepath.Join("testdata", "fuzz", "FuzzDecodeJSON"))
	for _, b := range seeds {
		f.Add(b)
	}
	for _, c := range decodeCases {
		f.Add([]byte(c))
	}
	f.Fuzz(checkSame)
}
