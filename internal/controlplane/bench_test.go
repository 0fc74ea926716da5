package controlplane

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
)

// BenchmarkSeed2000 seeds 2,000 engines (registry rows and real brain files) into an empty
// data dir. The bar: under 30 s on a 2-core machine.
func BenchmarkSeed2000(b *testing.B) {
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		start := time.Now()
		srv, err := New(Options{DataDir: dir, APIKey: "k", SeedEngines: 2000, SeedBrainRows: 20})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s/seed")
		srv.mu.Lock()
		n := len(srv.engines)
		srv.mu.Unlock()
		if n != 2000 {
			b.Fatalf("%d engines", n)
		}
		srv.Close()
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru) // cannot fail for RUSAGE_SELF
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLongPoll200 holds 200 concurrent long-polls on running operations for one second and
// reports the process CPU spent meanwhile (near zero: they block on channels), then how fast all
// 200 return once their operations change.
func BenchmarkLongPoll200(b *testing.B) {
	for i := 0; i < b.N; i++ {
		srv, err := New(Options{DataDir: b.TempDir(), APIKey: "k", SeedEngines: 200, SeedBrainRows: 1, TimeScale: 1})
		if err != nil {
			b.Fatal(err)
		}
		ts := httptest.NewServer(srv.Handler())
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
		post := func(user string) api.Operation {
			req, _ := http.NewRequest("POST", ts.URL+"/v1/engines/"+user+"/evals", strings.NewReader(`{"suite":"bench"}`))
			req.Header.Set(api.KeyHeader, "k")
			req.Header.Set(api.IdempotencyHeader, "bench-"+user)
			res, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			defer res.Body.Close()
			var op api.Operation
			decodeJSON(b, res, &op)
			return op
		}
		ops := make([]api.Operation, 200)
		for j := range ops {
			ops[j] = post(fmt.Sprintf("user-%04d", j+1))
		}
		// The eval's first step has started by now; wait until each operation's revision is
		// stable, then poll on it.
		time.Sleep(100 * time.Millisecond)
		var wg sync.WaitGroup
		var returned sync.Map
		for _, op := range ops {
			srv.mu.Lock()
			rev := srv.ops[op.ID].Revision
			srv.mu.Unlock()
			wg.Add(1)
			go func(id string, rev int64) {
				defer wg.Done()
				req, _ := http.NewRequest("GET", fmt.Sprintf("%s/v1/operations/%s?wait=60s&revision=%d", ts.URL, id, rev), nil)
				req.Header.Set(api.KeyHeader, "k")
				res, err := client.Do(req)
				if err == nil {
					res.Body.Close()
					returned.Store(id, time.Now())
				}
			}(op.ID, rev)
		}
		time.Sleep(200 * time.Millisecond) // all 200 connected and parked
		cpu0, t0 := cpuTime(), time.Now()
		time.Sleep(time.Second)
		held := 0
		for _, op := range ops {
			if _, ok := returned.Load(op.ID); !ok {
				held++
			}
		}
		b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Since(t0))*100, "%cpu-while-held")
		b.ReportMetric(float64(held), "polls-held")
		// The evals finish at 3s nominal; every poll returns with the change.
		wg.Wait()
		srv.Close()
		ts.Close()
	}
}

// BenchmarkSnapshot256MB compares a snapshot of a 256 MB brain (online backup, integrity_check,
// sha256) with a plain file copy of the same file. Only runs when -bench names it, as in
// `go test -run '^$' -bench Snapshot256MB ./internal/controlplane/`.
func BenchmarkSnapshot256MB(b *testing.B) {
	if f := flag.Lookup("test.bench"); f == nil || !strings.Contains(f.Value.String(), "256") {
		b.Skip("select it explicitly: -bench Snapshot256MB")
	}
	dir := b.TempDir()
	srv, err := New(Options{DataDir: dir, APIKey: "k", SeedEngines: 1, SeedBrainRows: 1, TimeScale: 0.001})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	brain := srv.BrainPath("user-0001")
	db, err := openBrain(brain)
	if err != nil {
		b.Fatal(err)
	}
	blob := make([]byte, 64<<10)
	tx, _ := db.Begin()
	for i := 0; i < 4096; i++ { // 4096 x 64 KiB = 256 MiB
		rand.Read(blob)
		if _, err := tx.Exec(`INSERT INTO knowledge_store (key, value, updated_at) VALUES (?, ?, '')`, fmt.Sprint("blob-", i), fmt.Sprintf("%x", blob[:32<<10])); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		b.Fatal(err)
	}
	db.Close()
	fi, _ := os.Stat(brain)
	b.Logf("brain size %d MB", fi.Size()>>20)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()

	var copyTotal, backupTotal, snapTotal time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if err := copyFile(brain, filepath.Join(dir, fmt.Sprintf("copy-%d", i))); err != nil {
			b.Fatal(err)
		}
		copyTotal += time.Since(start)

		start = time.Now()
		if err := backupBrain(context.Background(), brain, filepath.Join(dir, fmt.Sprintf("backup-%d", i))); err != nil {
			b.Fatal(err)
		}
		backupTotal += time.Since(start)

		start = time.Now()
		req, _ := http.NewRequest("POST", ts.URL+"/v1/engines/user-0001/snapshots", nil)
		req.Header.Set(api.KeyHeader, "k")
		req.Header.Set(api.IdempotencyHeader, fmt.Sprint("bench-", i))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var op api.Operation
		decodeJSON(b, res, &op)
		res.Body.Close()
		for !op.Done() {
			req, _ := http.NewRequest("GET", fmt.Sprintf("%s/v1/operations/%s?wait=60s&revision=%d", ts.URL, op.ID, op.Revision), nil)
			req.Header.Set(api.KeyHeader, "k")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			decodeJSON(b, res, &op)
			res.Body.Close()
		}
		if op.Status != api.OpSucceeded {
			b.Fatalf("snapshot: %+v", op.Error)
		}
		snapTotal += time.Since(start)
	}
	n := float64(b.N)
	b.ReportMetric(copyTotal.Seconds()/n, "s/copy")
	b.ReportMetric(backupTotal.Seconds()/n, "s/backup")
	b.ReportMetric(snapTotal.Seconds()/n, "s/snapshot")
	b.ReportMetric(snapTotal.Seconds()/copyTotal.Seconds(), "snapshot/copy")
	b.ReportMetric(backupTotal.Seconds()/copyTotal.Seconds(), "backup/copy")
}
