package vbr

import (
	"path/filepath"
	"reflect"
	"testing"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/internal/jsontest"
)

// The reflective decoders the list pages used before jsonr: the reference.
func refReplicas(body []byte) ([]veeam.Replica, int, error) {
	return decodeCollection(body, (*wireReplica).replica)
}

func refReplicaPoints(body []byte) ([]veeam.ReplicaPoint, int, error) {
	return decodeCollection(body, (*wirePoint).point)
}

var decodeCases = []string{
	`{"data":[],"pagination":{"total":0,"count":0}}`,
	`{"data":[{"id":"A1","type":"Regular","jobId":"urn:veeam:Job:B","name":"vm \"1\"","platformName":"VMware","creationTime":"2025-01-01T00:00:00.123+01:00","state":"Ready"}],"pagination":{"total":1}}`,
	`{"data":[{"id":"P","name":"vm","replicaId":"R","creationTime":null,"allowedOperations":["A","B",null],"state":"Ready"},{"allowedOperations":null},{"allowedOperations":[]},null]}`,
	`{"data":[{"allowedOperations":[1]}]}`,
	`{"data":[{"allowedOperations":"x"}]}`,
	`{"data":[{"creationTime":5}]}`,
	`{"data":[],"pagination":null}`,
	`{"data":[],"pagination":{"total":-3}}`,
	`{"data":null}`, `{}`, `null`, `[]`, `{"data":[{}],"pagination":{"total":"1"}}`,
	`{"DATA":[{"ID":"x","ReplicaID":"y"}],"Pagination":{"Total":9}}`,
}

func checkSame(t *testing.T, body []byte) {
	t.Helper()
	if jsontest.DuplicateKeys(body) {
		return
	}
	gr, gt, gerr := DecodeReplicas(body)
	rr, rt, rerr := refReplicas(body)
	if (gerr == nil) != (rerr == nil) {
		t.Fatalf("replicas %q: error %v, reference error %v", body, gerr, rerr)
	}
	if gerr == nil && (gt != rt || !reflect.DeepEqual(jsontest.UTC(gr), jsontest.UTC(rr))) {
		t.Fatalf("replicas %q:\n got %d %+v\nwant %d %+v", body, gt, gr, rt, rr)
	}
	gp, gt, gerr := DecodeReplicaPoints(body)
	rp, rt, rerr := refReplicaPoints(body)
	if (gerr == nil) != (rerr == nil) {
		t.Fatalf("points %q: error %v, reference error %v", body, gerr, rerr)
	}
	if gerr == nil && (gt != rt || !reflect.DeepEqual(jsontest.UTC(gp), jsontest.UTC(rp))) {
		t.Fatalf("points %q:\n got %d %+v\nwant %d %+v", body, gt, gp, rt, rp)
	}
}

func seeds(t testing.TB) [][]byte {
	var out [][]byte
	dirs, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "*"))
	for _, d := range dirs {
		s, err := jsontest.Seeds(d)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s...)
	}
	for _, c := range decodeCases {
		out = append(out, []byte(c))
	}
	return out
}

func TestDecodeMatchesReference(t *testing.T) {
	for _, b := range seeds(t) {
		checkSame(t, b)
	}
}

// FuzzDecodeMatchesReference compares the jsonr decoders of list pages
// with encoding/json on arbitrary bodies.
func FuzzDecodeMatchesReference(f *testing.F) {
	for _, b := range seeds(f) {
		f.Add(b)
	}
	f.Fuzz(checkSame)
}
