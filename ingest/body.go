package ingest

import (
	"context"
	"errors"
	"io"
	"math/bits"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// Bodies are read before their signature can be checked, so whoever can
// reach the port decides how many are in flight and how large they claim
// to be. Memory is therefore committed as bytes arrive, never as they are
// promised: a body starts in a small buffer and grows by doubling, and
// every buffer held counts against one budget shared by all requests. A
// request that finds no room waits briefly, then gets a 503 with
// Retry-After (providers retry).
const (
	// minClass is the smallest buffer; classes double from it.
	minClass = 1 << 10
	// firstRead bounds the first buffer, whatever Content-Length says.
	firstRead = 4 << 10
	// MemoryBudgetDefault is the default budget: many typical webhooks
	// (a few KiB) and several of the largest at once.
	MemoryBudgetDefault = 32 << 20
	// MemoryWaitDefault is how long a request waits for room.
	MemoryWaitDefault = time.Second
)

// errNoMemory means the budget had no room within the wait.
var errNoMemory = errors.New("ingest memory budget exhausted")

// bodies hands out pooled buffers in power-of-two classes under a budget.
type bodies struct {
	sem   *semaphore.Weighted
	wait  time.Duration
	inUse atomic.Int64
	pools []sync.Pool // pools[i] holds buffers of minClass<<i bytes
}

func newBodies(budget int64, wait time.Duration, maxBody int64) *bodies {
	return &bodies{
		sem:   semaphore.NewWeighted(budget),
		wait:  wait,
		pools: make([]sync.Pool, classIndex(maxBody)+1),
	}
}

// classIndex is the smallest class holding n bytes.
func classIndex(n int64) int {
	if n <= minClass {
		return 0
	}
	return bits.Len64(uint64(n-1)) - bits.Len64(minClass-1)
}

// classSize is the maximum body a pool serves, the largest class.
func classSize(i int) int64 { return minClass << i }

// get takes a buffer of class i, waiting for room in the budget.
func (b *bodies) get(ctx context.Context, i int) ([]byte, error) {
	n := classSize(i)
	if !b.sem.TryAcquire(n) {
		wctx, cancel := context.WithTimeout(ctx, b.wait)
		err := b.sem.Acquire(wctx, n)
		cancel()
		if err != nil {
			return nil, errNoMemory
		}
	}
	b.inUse.Add(n)
	if p, ok := b.pools[i].Get().(*[]byte); ok {
		return (*p)[:0], nil
	}
	return make([]byte, 0, n), nil
}

// put returns buf to its pool and its room to the budget, once nothing
// reads it any more (for a published body: once the client library is
// done with the message, ingest.publish).
func (b *bodies) put(buf []byte) {
	if buf == nil {
		return
	}
	n := int64(cap(buf))
	buf = buf[:0]
	b.pools[classIndex(n)].Put(&buf)
	b.inUse.Add(-n)
	b.sem.Release(n)
}

// read reads r's body, at most limit bytes, into a pooled buffer that the
// caller hands back with put. It returns *http.MaxBytesError past limit,
// errNoMemory when the budget had no room in time.
func (b *bodies) read(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	rd := http.MaxBytesReader(w, r.Body, limit)
	declared := r.ContentLength // -1 when unknown (chunked)
	first := int64(firstRead)
	if declared >= 0 {
		first = min(first, declared)
	}
	buf, err := b.get(r.Context(), classIndex(first))
	if err != nil {
		return nil, err
	}
	top := len(b.pools) - 1
	for {
		if declared >= 0 && int64(len(buf)) == declared {
			// net/http ends the body at Content-Length: it is all here.
			return buf, nil
		}
		if len(buf) == cap(buf) {
			i := classIndex(int64(cap(buf))) + 1
			if i > top {
				// Full at the largest class: only the end, or the limit,
				// can come next.
				var one [1]byte
				n, err := rd.Read(one[:])
				if n == 0 && errors.Is(err, io.EOF) {
					return buf, nil
				}
				b.put(buf)
				if err == nil {
					err = &http.MaxBytesError{Limit: limit}
				}
				return nil, err
			}
			next, err := b.get(r.Context(), i)
			if err != nil {
				b.put(buf)
				return nil, err
			}
			next = append(next, buf...)
			b.put(buf)
			buf = next
		}
		n, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			b.put(buf)
			return nil, err
		}
	}
}
