package main

import (
	"fmt"
	"testing"

	"github.com/veeam-failover/veeam_failover_exporter/internal/vspcfixed"
	"github.com/veeam-failover/veeam_failover_exporter/veeam"
)

func TestMeasureExposition(t *testing.T) {
	var f vspcfixed.Reader
	for p := range 20 {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", p)
		f.Plans = append(f.Plans, veeam.FailoverPlan{ID: id, Name: fmt.Sprint("plan-", p), Status: "Ready", ObjectsCount: 5})
		for o := range 5 {
			f.Objects = append(f.Objects, veeam.FailoverPlanObject{ID: fmt.Sprintf("%s-%d", id, o), PlanID: id, Name: fmt.Sprint("vm-", o), RestoreStatus: "Success"})
		}
	}
	r, err := measureExposition(&f)
	if err != nil {
		t.Fatal(err)
	}
	if r.Objects != 100 || r.TextMS <= 0 || r.ProtoMS <= 0 || r.GenericProtoMS <= 0 || r.TextBytes < 100*200 || r.ProtoBytes < 100*150 {
		t.Errorf("implausible figures: %+v", r)
	}
	t.Logf("%+v", r)
}
