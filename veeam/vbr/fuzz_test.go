package vbr

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/veeam-failover/veeam_failover_exporter/veeam"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/internal/simtest"
	"github.com/veeam-failover/veeam_failover_exporter/veeam/simulator"
)

// FuzzDecodeJSON runs every B&R decoder on arbitrary bodies. Seeds under
// testdata/fuzz are simulator answers (TestWriteFuzzSeeds).
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{"data":[{"type":"Regular","id":"A1","jobId":"B","name":"r","platformName":"VMware","creationTime":"2025-06-10T10:29:39","state":"Ready"}],"pagination":{"total":307,"count":1,"skip":0,"limit":1}}`,
		`{"data":[{"id":"c8435ccb-0000-4000-8000-000000000001","name":"apache04","replicaId":"X","allowedOperations":null,"creationTime":"2023-10-31T14:00:29.789665+01:00"}],"pagination":{"total":2,"count":2,"skip":null,"limit":null}}`,
		`{"data":[{"sessionType":"Failover","state":"Starting","id":"S","name":"apache04","result":null,"endTime":null,"progressPercent":0,"usn":0}],"pagination":{"total":1,"count":1}}`,
		`{"sessionType":"Failover","state":"Stopped","id":"18B5","result":{"result":"Success","message":"Success","isCanceled":false}}`,
		`{"errorCode":"AccessDenied","message":"Authentication failed","resourceId":null}`,
		`{"data":[],"pagination":{"total":-5}}`, `null`, `{}`, `<html/>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if rs, total, err := DecodeReplicas(body); err == nil {
			if total < 0 {
				t.Fatalf("total %d", total)
			}
			for _, r := range rs {
				simtest.LowerID(t, r.ID)
			}
		}
		if ps, _, err := DecodeReplicaPoints(body); err == nil {
			for _, p := range ps {
				simtest.LowerID(t, p.ID)
				simtest.LowerID(t, p.ReplicaID)
				if p.AllowedOperations == nil {
					t.Fatal("nil allowed operations")
				}
			}
		}
		if ss, _, err := DecodeSessions(body); err == nil {
			for _, s := range ss {
				simtest.LowerID(t, s.ID)
			}
		}
		if r, err := DecodeReplica(body); err == nil {
			simtest.LowerID(t, r.ID)
		}
		if p, err := DecodeReplicaPoint(body); err == nil {
			simtest.LowerID(t, p.ID)
		}
		if s, err := DecodeSession(body); err == nil {
			simtest.LowerID(t, s.ID)
		}
		e := parseError("t", "GET", "/p", &veeam.Response{Status: 500, Header: http.Header{}, Body: body})
		if e.Message == "" && e.Code == "" {
			t.Fatalf("empty error %+v", e)
		}
	})
}

// TestWriteFuzzSeeds regenerates testdata/fuzz from simulator answers when
// VEEAM_WRITE_FUZZ_SEEDS=1.
func TestWriteFuzzSeeds(t *testing.T) {
	simtest.SkipUnlessWritingSeeds(t)
	s := simtest.Start(t, simulator.Options{Seed: 1, VBR: simulator.VBROptions{Replicas: 2, PointsPerReplica: 2}})
	rec := &simtest.SeedRecorder{Name: func(r *http.Request, status int) string {
		if strings.HasPrefix(r.URL.Path, "/api/oauth2/") { // tokens
			return ""
		}
		return simtest.SeedName(r, status)
	}}
	o := clientOptions(s)
	o.APIVersion = "1.3-rev2"
	o.WrapTransport = rec.Wrap
	c := newTestClient(t, o, nil)
	ctx := t.Context()
	reps, _ := c.ListReplicas(ctx)
	_, _ = c.GetReplica(ctx, reps[0].ID)
	_, _ = c.ListReplicaPoints(ctx)
	p := pointAllowing(t, c, FailoverNow)
	_, _ = c.GetReplicaPoint(ctx, p.ID)
	ss, _ := c.Failover(ctx, FailoverNow, []string{p.ID}, "seed")
	_ = waitSession(t, c, ss[0].ID)
	_, _ = c.GetReplica(ctx, uuid.NewString())                   // 404
	_, _ = c.Failover(ctx, FailoverNow, []string{p.ID}, "again") // 400
	rec.Write(t, filepath.Join("testdata", "fuzz", "FuzzDecodeJSON"))
}
