package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
	"github.com/septemberai/terraform-provider-engine/internal/controlplane"
)

// SnapshotFigures is measurement 4: an online snapshot of a large brain under write load
// against a plain copy of the same file.
type SnapshotFigures struct {
	BrainMB float64 `json:"brain_mb"`
	Runs    int     `json:"runs"`
	// SnapshotMS is the whole snapshot operation, created_at to finished_at: the copy step (the
	// database file copied at a pinned commit and hashed on the way, or SQLite's online backup
	// where the brain could not be pinned), then the verify step (integrity check and fsync, and
	// the sha256 after an online backup). BackupMS is the copy step alone (the JSON name is
	// from when it was always the online backup).
	SnapshotMS []float64 `json:"snapshot_ms"`
	BackupMS   []float64 `json:"backup_step_ms"`
	// PinnedCopies counts the runs whose copy step was the pinned file copy rather than the
	// online backup it falls back to: the figures are only the pinned copy's when it is Runs.
	PinnedCopies int       `json:"pinned_copies"`
	CopyMS       []float64 `json:"plain_copy_ms"`
	// SyncCopyMS is the same copy followed by fsync, as durable as the snapshot file (fsynced
	// before it is recorded): the fair floor for a snapshot that must survive a crash.
	SyncCopyMS       []float64 `json:"synced_copy_ms"`
	SyncCopyMedianMS float64   `json:"synced_copy_median_ms"`
	RatioVsSynced    float64   `json:"ratio_vs_synced_copy"`
	SnapshotMedianMS float64   `json:"snapshot_median_ms"`
	BackupMedianMS   float64   `json:"backup_step_median_ms"`
	CopyMedianMS     float64   `json:"plain_copy_median_ms"`
	Ratio            float64   `json:"ratio"`        // SnapshotMedianMS / CopyMedianMS
	BackupRatio      float64   `json:"backup_ratio"` // BackupMedianMS / CopyMedianMS
	// Turns written while the snapshots ran, and their latency: an online backup must not
	// stall the engine.
	TurnsDuring    int64   `json:"turns_written_during_snapshots"`
	TurnP50MS      float64 `json:"turn_write_p50_ms"`
	TurnP99MS      float64 `json:"turn_write_p99_ms"`
	TurnMaxMS      float64 `json:"turn_write_max_ms"`
	GrowSeconds    float64 `json:"grow_brain_seconds"`
	SnapshotSizeMB float64 `json:"snapshot_size_mb"`
	Runtime        string  `json:"runtime,omitempty"` // the control plane's runtime: sim, docker
}

func runSnapshot(ctx context.Context, cfg Config, work string) (*SnapshotFigures, error) {
	return runSnapshotOn(ctx, cfg, work, controlplane.Options{DataDir: filepath.Join(work, "snapshot-cp")})
}

// runSnapshotOn measures snapshots of the one engine of a control plane started with opts.
func runSnapshotOn(ctx context.Context, cfg Config, work string, opts controlplane.Options) (*SnapshotFigures, error) {
	targetMB, runs := 256, 3
	if cfg.Quick {
		targetMB, runs = 64, 2
	}
	// Near-zero scale: the snapshot's nominal verify pause (1 s) must not count as copy time.
	opts.SeedEngines, opts.TimeScale = 1, 0.001
	p, err := startPlane(opts)
	if err != nil {
		return nil, err
	}
	defer p.close()
	user := userID(1)
	f := &SnapshotFigures{Runs: runs, Runtime: p.srv.Runtime()}

	start := time.Now()
	if err := growBrain(ctx, p, user, int64(targetMB)<<20); err != nil {
		return f, err
	}
	f.GrowSeconds = round(time.Since(start).Seconds())
	brain := p.srv.BrainPath(user)
	fi, err := os.Stat(brain)
	if err != nil {
		return f, err
	}
	f.BrainMB = round(float64(fi.Size()) / (1 << 20))
	cfg.logf("brain grown to %.0f MB in %.0fs", f.BrainMB, f.GrowSeconds)

	// Turns keep arriving for the whole measurement, one per request as a live engine sees them.
	wctx, stopWriter := context.WithCancel(ctx)
	var (
		mu       sync.Mutex
		lat      []float64
		counting atomic.Bool
		turns    atomic.Int64
		wErr     error
		wg       sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for wctx.Err() == nil {
			t0 := time.Now()
			_, err := p.Client.WriteTurns(wctx, user, api.TurnsRequest{Count: 1, Content: "a turn written while the brain is snapshotted"})
			if err != nil {
				if wctx.Err() == nil {
					mu.Lock()
					wErr = err
					mu.Unlock()
				}
				return
			}
			if counting.Load() {
				turns.Add(1)
				mu.Lock()
				lat = append(lat, ms(time.Since(t0)))
				mu.Unlock()
			}
		}
	}()
	defer func() { stopWriter(); wg.Wait() }()

	copyDst := filepath.Join(work, "plain-copy-"+f.Runtime+".sqlite")
	for i := 0; i < runs; i++ {
		d, err := plainCopy(brain, copyDst, false)
		if err != nil {
			return f, err
		}
		f.CopyMS = append(f.CopyMS, round(ms(d)))
		os.Remove(copyDst)
		ds, err := plainCopy(brain, copyDst, true)
		if err != nil {
			return f, err
		}
		f.SyncCopyMS = append(f.SyncCopyMS, round(ms(ds)))
		os.Remove(copyDst)

		counting.Store(true)
		op, err := p.Client.CreateSnapshot(ctx, user, client.NewIdempotencyKey(), api.CreateSnapshotRequest{Description: "bench"})
		if err != nil {
			return f, err
		}
		done, err := p.Client.WaitOperation(ctx, op.ID, nil)
		counting.Store(false)
		if err != nil {
			return f, err
		}
		if done.Status != api.OpSucceeded {
			return f, fmt.Errorf("snapshot operation %s ended %s: %+v", done.ID, done.Status, done.Error)
		}
		total, err := opDuration(done)
		if err != nil {
			return f, err
		}
		copyStep, err := finishedStep(done, api.StepSnapshot)
		if err != nil {
			return f, err
		}
		backup := copyStep.FinishedAt.Sub(*copyStep.StartedAt)
		// The step's message says how the control plane took the snapshot.
		if strings.Contains(copyStep.Message, "pinned") {
			f.PinnedCopies++
		} else {
			cfg.logf("snapshot run %d fell back to the online backup: %s", i+1, copyStep.Message)
		}
		sn, err := p.Client.GetSnapshot(ctx, done.Result.SnapshotID)
		if err != nil {
			return f, err
		}
		if sn.Status != api.SnapshotVerified {
			return f, fmt.Errorf("snapshot %s is %s, want verified", sn.ID, sn.Status)
		}
		f.SnapshotSizeMB = round(float64(sn.SizeBytes) / (1 << 20))
		f.SnapshotMS = append(f.SnapshotMS, round(ms(total)))
		f.BackupMS = append(f.BackupMS, round(ms(backup)))
		cfg.logf("snapshot run %d: plain copy %s (fsynced %s), snapshot %s (copy step %s), %d turns written so far",
			i+1, d.Round(time.Millisecond), ds.Round(time.Millisecond), total.Round(time.Millisecond), backup.Round(time.Millisecond), turns.Load())
		// Keep the disk from filling up over the runs; force because retention would refuse.
		if err := p.Client.DeleteSnapshot(ctx, sn.ID, true); err != nil {
			return f, err
		}
	}
	stopWriter()
	wg.Wait()
	if wErr != nil {
		return f, fmt.Errorf("a turn write failed during the snapshots: %w", wErr)
	}
	f.TurnsDuring = turns.Load()
	if f.TurnsDuring == 0 {
		return f, errors.New("no turn was written while the snapshots ran: the measurement is not under write load")
	}
	f.TurnP50MS, f.TurnP99MS, f.TurnMaxMS = round(percentile(lat, 50)), round(percentile(lat, 99)), round(percentile(lat, 100))
	f.SnapshotMedianMS, f.BackupMedianMS, f.CopyMedianMS = round(median(f.SnapshotMS)), round(median(f.BackupMS)), round(median(f.CopyMS))
	f.Ratio = round(f.SnapshotMedianMS / f.CopyMedianMS)
	f.SyncCopyMedianMS = round(median(f.SyncCopyMS))
	f.RatioVsSynced = round(f.SnapshotMedianMS / f.SyncCopyMedianMS)
	f.BackupRatio = round(f.BackupMedianMS / f.CopyMedianMS)
	return f, nil
}

// growBrain writes large turns through the API until the brain file holds size bytes: the rows
// are real conversation rows, as an engine's own writes would be.
func growBrain(ctx context.Context, p *plane, user string, size int64) error {
	content := strings.Repeat("x", 60<<10)
	for {
		fi, err := os.Stat(p.srv.BrainPath(user))
		if err != nil {
			return err
		}
		wal, _ := os.Stat(p.srv.BrainPath(user) + "-wal")
		have := fi.Size()
		if wal != nil {
			have += wal.Size()
		}
		if have >= size {
			return nil
		}
		if _, err := p.Client.WriteTurns(ctx, user, api.TurnsRequest{Count: 64, Content: content}); err != nil {
			return fmt.Errorf("growing the brain: %w", err)
		}
	}
}

// plainCopy is the floor: the brain file copied as cp would, and with sync also fsynced.
func plainCopy(src, dst string, sync bool) (time.Duration, error) {
	start := time.Now()
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return 0, err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return 0, err
	}
	if sync {
		if err := out.Sync(); err != nil {
			out.Close()
			return 0, err
		}
	}
	if err := out.Close(); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// finishedStep is the operation's finished step called name.
func finishedStep(op api.Operation, name string) (api.Step, error) {
	for _, s := range op.Steps {
		if s.Name == name && s.StartedAt != nil && s.FinishedAt != nil {
			return s, nil
		}
	}
	return api.Step{}, fmt.Errorf("operation %s has no finished %q step", op.ID, name)
}
