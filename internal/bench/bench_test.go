package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMedianAndPercentile(t *testing.T) {
	if got := median([]float64{5, 1, 3}); got != 3 {
		t.Errorf("median odd = %v, want 3", got)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median even = %v, want 2.5", got)
	}
	if got := median(nil); got != 0 {
		t.Errorf("median empty = %v, want 0", got)
	}
	xs := []float64{}
	for i := 1; i <= 100; i++ {
		xs = append(xs, float64(i))
	}
	if p := percentile(xs, 99); p != 99 {
		t.Errorf("p99 = %v, want 99", p)
	}
	if p := percentile(xs, 100); p != 100 {
		t.Errorf("p100 = %v, want 100", p)
	}
	in := []float64{3, 1, 2}
	median(in)
	if in[0] != 3 {
		t.Error("median sorted its input in place")
	}
}

func TestFixedPollLag(t *testing.T) {
	for _, tc := range []struct{ t, want time.Duration }{
		{3 * time.Second, 7 * time.Second},
		{10 * time.Second, 0},
		{10*time.Second + time.Millisecond, 10*time.Second - time.Millisecond},
	} {
		if got := fixedPollLag(tc.t, 10*time.Second); got != tc.want {
			t.Errorf("fixedPollLag(%s) = %s, want %s", tc.t, got, tc.want)
		}
	}
}

func TestBatches(t *testing.T) {
	if got := stepBatches(1000, 50, []int{5, 25, 100}); got != 20 {
		t.Errorf("stepBatches(1000, 50, 5/25/100) = %d, want 1+4+15 = 20", got)
	}
	// 10 engines, 3 at once, steps 10/50/100: 1, 4, 5 movers → 1+2+2 batches, one more than ceil(10/3).
	if got := stepBatches(10, 3, []int{10, 50, 100}); got != 5 {
		t.Errorf("stepBatches(10, 3, 10/50/100) = %d, want 5", got)
	}
	if got := idealRollout(1000, 50, 600*time.Millisecond); got != 12*time.Second {
		t.Errorf("idealRollout = %s, want 12s", got)
	}
}

func TestProcParsing(t *testing.T) {
	status := "Name:\tterraform-provi\nVmPeak:\t  900000 kB\nVmHWM:\t   45872 kB\nVmRSS:\t   40000 kB\n"
	if got := procKB(status, "VmHWM:"); got != 45872 {
		t.Errorf("VmHWM = %d, want 45872", got)
	}
	// The command name may hold spaces and parentheses; utime 150 and stime 25 ticks follow.
	stat := "4242 (terraform (x) y) S 1 2 3 4 5 6 7 8 9 10 150 25 0 0 20 0"
	if got, ok := statCPU(stat); !ok || got != 1750*time.Millisecond {
		t.Errorf("statCPU = %s, %v; want 1.75s", got, ok)
	}
	if _, ok := statCPU("garbage"); ok {
		t.Error("statCPU accepted a line without a command name")
	}
}

func TestRequestDeltaDropsStatsReads(t *testing.T) {
	before := map[string]int64{"GET /v1/engines/{user_id}": 10, "GET /v1/stats": 3}
	after := map[string]int64{"GET /v1/engines/{user_id}": 110, "GET /v1/stats": 5, "GET /v1/versions": 1}
	d := requestDelta(before, after)
	if d["GET /v1/engines/{user_id}"] != 100 || d["GET /v1/versions"] != 1 || len(d) != 2 || sum(d) != 101 {
		t.Errorf("delta = %v, want 100 engine reads and 1 versions read, no stats", d)
	}
}

func TestStateSizes(t *testing.T) {
	p := filepath.Join(t.TempDir(), "terraform.tfstate")
	state := `{"version": 4, "resources": [
  {"type": "engine_release", "instances": [
    {"attributes": {"id": "user-0001", "version": "2.3.0"}},
    {"attributes": {"id": "user-0002",   "version": "2.3.1"}}
  ]},
  {"type": "terraform_data", "instances": [{"attributes": {"input": "x"}}]}
]}`
	if err := os.WriteFile(p, []byte(state), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := stateSizes(p, "engine_release")
	if err != nil {
		t.Fatal(err)
	}
	want := len(`{"attributes":{"id":"user-0001","version":"2.3.0"}}`)
	if len(s.instances) != 2 || s.instances[0] != want || s.instances[1] != want || s.file != len(state) {
		t.Errorf("sizes = %+v, want two instances of %d compact bytes and a file of %d", s, want, len(state))
	}
}

func TestReportSaysMissedBarsPlainly(t *testing.T) {
	f := &Figures{
		Plan:   &PlanFigures{Points: []PlanPoint{{N: 1000, Runs: 5, Ratio: 6.2, RequestsPerResource: 1, StateBytesMaxEngine: 800, ProviderPeakRSSMB: 60}}},
		Lag:    &LagFigures{LagMS: []float64{40}, MedianLagMS: 40, ApplyMS: []float64{1}, OperationMS: []float64{1}, NoopApplyMS: []float64{1}, FixedPoll10sLagMS: []float64{7000}},
		Errors: []string{"canary: boom"},
	}
	f.Bars = f.bars()
	md := f.Markdown()
	for _, want := range []string{
		"| plan time vs terraform_data (N=1000) | 6.2 | ≤ 1.5 × | **MISSED** |",
		"| provider peak RSS (N=1000) | 60 | ≤ 150 MB | met |",
		"| apply notices an operation's end | 40 | ≤ 150 ms (median lag) | met |",
		"**1 bar(s) missed**",
		"**Measurement failed:** canary: boom",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}
