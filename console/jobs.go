package console

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nuid"
)

// A job is a replay or a backfill the console started; it runs in the
// background of the serve process and its progress is polled.
type job struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	// Window is what "one at a time" is counted by: a replay's subject
	// filter, a backfill's provider and window.
	Window   string     `json:"window"`
	Params   []param    `json:"params"`
	State    string     `json:"state"`
	Started  time.Time  `json:"started"`
	Finished *time.Time `json:"finished,omitempty"`
	Progress progress   `json:"progress"`
	// Result is replay's summary or backfill's result.
	Result any    `json:"result,omitempty"`
	Error  string `json:"error,omitempty"`

	cancel context.CancelFunc
}

type param struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type progress struct {
	Done  int    `json:"done"`
	Total int    `json:"total"`
	Seq   uint64 `json:"seq,omitempty"`
	Pages int    `json:"pages,omitempty"`
	Note  string `json:"note,omitempty"`
}

const (
	jobRunning = "running"
	jobDone    = "done"
	jobFailed  = "failed"
	jobStopped = "stopped"
	keepJobs   = 50
)

// errJobRunning refuses a second job over a window one is running on.
var errJobRunning = errors.New("already running")

type jobs struct {
	mu   sync.Mutex
	list []*job // newest first
	wg   sync.WaitGroup
	ctx  context.Context
	stop func()
}

func newJobs() *jobs {
	ctx, cancel := context.WithCancel(context.Background())
	j := &jobs{ctx: ctx}
	j.stop = func() { cancel() }
	return j
}

// run starts fn in the background unless a job of kind over window is
// running. fn reports progress through update, which holds the lock.
func (j *jobs) run(kind, window string, params []param, fn func(ctx context.Context, update func(func(*job))) (any, error)) (job, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.ctx.Err() != nil {
		return job{}, errors.New("the console is stopping")
	}
	for _, o := range j.list {
		if o.State == jobRunning && o.Kind == kind && o.Window == window {
			return *o, fmt.Errorf("a %s of this window is %w (job %s): wait for it to finish", kind, errJobRunning, o.ID)
		}
	}
	ctx, cancel := context.WithCancel(j.ctx)
	jb := &job{ID: nuid.Next(), Kind: kind, Window: window, Params: params, State: jobRunning, Started: time.Now().UTC(), cancel: cancel}
	j.list = append([]*job{jb}, j.list...)
	if len(j.list) > keepJobs {
		// Forget the oldest finished jobs; running ones stay.
		kept := j.list[:0]
		for i, o := range j.list {
			if i < keepJobs || o.State == jobRunning {
				kept = append(kept, o)
			}
		}
		j.list = kept
	}
	update := func(f func(*job)) {
		j.mu.Lock()
		defer j.mu.Unlock()
		f(jb)
	}
	j.wg.Add(1)
	go func() {
		defer j.wg.Done()
		defer cancel()
		res, err := fn(ctx, update)
		update(func(jb *job) {
			now := time.Now().UTC()
			jb.Finished, jb.Result = &now, res
			switch {
			case err != nil && ctx.Err() != nil:
				jb.State, jb.Error = jobStopped, "stopped with the console: "+err.Error()
			case err != nil:
				jb.State, jb.Error = jobFailed, err.Error()
			default:
				jb.State = jobDone
			}
		})
	}()
	return *jb, nil
}

func (j *jobs) get(id string) (job, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, o := range j.list {
		if o.ID == id {
			return *o, true
		}
	}
	return job{}, false
}

func (j *jobs) all() []job {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make([]job, len(j.list))
	for i, o := range j.list {
		out[i] = *o
	}
	return out
}

// stop cancels the running jobs and waits for them until ctx is done.
func (j *jobs) wait(ctx context.Context) {
	done := make(chan struct{})
	go func() { j.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}
