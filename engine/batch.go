package engine

import (
	"math/bits"
	"sync"
	"unsafe"
)

// Batcher is implemented by the runtime's Handler: a source that finds it
// (by type assertion on the Handler it is given) takes the slice of each
// Deliver from Batch, and the runtime reuses the slice for a later batch
// once every record in it belongs to a complete bundle, instead of the
// source allocating a slice per fetched batch that the GC must clear and
// collect.
//
// Implementations: the runtime. Users: the Kafka source. A wrapper of the
// Handler (cmd/sluice's multi-source, the benchmarks' instrumentation)
// forwards Batch when the Handler it wraps has it.
//
// Batch may be called from any goroutine. It returns a slice of length 0,
// capacity at least n and zero records. The caller fills it and passes it
// to Deliver, which takes it over: the caller must not read or write it
// afterwards (not even recs[0] for its own accounting), nor write records
// past the length it delivers (the runtime clears only those when it takes
// the slice back). Every slice from Batch must be delivered: the runtime
// tracks it until then.
type Batcher interface {
	Batch(n int) []Record
}

// batchPool keeps the record slices the runtime lent through Batch, by size
// class (powers of two). lent names the slices out on loan, so that only
// those come back to the pool: a slice a source allocated itself is never
// reused behind its back.
type batchPool struct {
	classes [maxBatchClass + 1]sync.Pool // of *[]Record with cap 1<<class

	mu   sync.Mutex // guards lent
	lent map[*Record]struct{}
}

// maxBatchClass bounds the slices that are pooled: a larger batch gets a
// slice of its own (a fetch of one partition is at most
// memory.fetch_partition bytes, so thousands of records, not millions).
const maxBatchClass = 16

func batchClass(n int) int {
	if n <= 1 {
		return 0
	}
	return bits.Len(uint(n - 1))
}

func (p *batchPool) get(n int) []Record {
	c := batchClass(n)
	if c > maxBatchClass {
		return make([]Record, 0, n)
	}
	var s []Record
	if b, ok := p.classes[c].Get().(*[]Record); ok {
		s = (*b)[:0]
	} else {
		s = make([]Record, 0, 1<<c)
	}
	p.mu.Lock()
	if p.lent == nil {
		p.lent = map[*Record]struct{}{}
	}
	p.lent[unsafe.SliceData(s[:1])] = struct{}{}
	p.mu.Unlock()
	return s
}

// owns reports whether recs is a slice lent by get (as delivered: starting
// at its first element).
func (p *batchPool) owns(recs []Record) bool {
	if cap(recs) == 0 {
		return false
	}
	p.mu.Lock()
	_, ok := p.lent[unsafe.SliceData(recs[:1])]
	p.mu.Unlock()
	return ok
}

// put takes back a slice that owns reported, as delivered, once nothing
// refers to its records any more. It clears the delivered records so that
// the pooled slice does not keep their fetch responses alive; the rest of
// its capacity is zero already (a new slice, or one cleared the same way,
// and a source writes only the records it delivers), so a pooled slice is
// all zero and clearing costs what was delivered, not the size class.
func (p *batchPool) put(recs []Record) {
	n := len(recs)
	recs = recs[:cap(recs)]
	p.mu.Lock()
	delete(p.lent, unsafe.SliceData(recs))
	p.mu.Unlock()
	c := batchClass(cap(recs))
	if c > maxBatchClass || cap(recs) != 1<<c {
		return
	}
	clear(recs[:n])
	recs = recs[:0]
	p.classes[c].Put(&recs)
}

// forget drops a lent slice that will not come back (its task is gone or
// gave up its bundle): the GC collects it.
func (p *batchPool) forget(recs []Record) {
	if cap(recs) == 0 {
		return
	}
	p.mu.Lock()
	delete(p.lent, unsafe.SliceData(recs[:1]))
	p.mu.Unlock()
}

// Batch implements Batcher.
func (r *Runtime) Batch(n int) []Record { return r.batches.get(n) }
