package kafka

import (
	"math/bits"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// recordPool is franz-go's PoolRecords (kgo.WithPools): the client decodes
// each fetched record batch into a []kgo.Record slab taken from it, and the
// slab comes back through PutRecords once every record kept from the batch
// was recycled (kgo.Record.Recycle). deliver copies what a task needs of
// each record (its key and value, which alias the fetch response and not
// the slab) into an engine.Record and recycles the kgo.Record at once, so a
// slab is reused within the poll that carried it instead of being a new
// 160-byte-per-record allocation of every batch, which the GC then has to
// clear and collect.
//
// Slabs are kept by size class (powers of two); sync.Pool lets the GC drop
// those no batch asked for in a while. Only this pool is given to the
// client: it must not implement PoolDecompressBytes, because a recycled
// record's key and value must stay valid (they alias a response or a
// decompressed buffer that the engine holds until the bundle completes).
type recordPool struct {
	classes [maxClass + 1]sync.Pool // of *[]kgo.Record with cap 1<<class
}

// maxClass bounds the slabs that are pooled: a batch of more than
// 1<<maxClass records (unusual: 1 MiB batches of tiny records) gets a slab
// of its own.
const maxClass = 16

var _ kgo.PoolRecords = (*recordPool)(nil)

// class is the smallest class whose slabs hold n records.
func class(n int) int {
	if n <= 1 {
		return 0
	}
	return bits.Len(uint(n - 1))
}

// GetRecords implements kgo.PoolRecords; franz-go calls it from its fetch
// goroutines.
func (p *recordPool) GetRecords(n int) []kgo.Record {
	c := class(n)
	if c > maxClass {
		return make([]kgo.Record, 0, n)
	}
	if s, ok := p.classes[c].Get().(*[]kgo.Record); ok {
		return (*s)[:0]
	}
	return make([]kgo.Record, 0, 1<<c)
}

// PutRecords implements kgo.PoolRecords; franz-go calls it from the
// goroutine that recycles a batch's last record (deliver's, or a fetch
// goroutine for a batch it kept nothing of). Recycled records are zeroed;
// the records of a batch below the offset asked for (the first fetch
// after a commit inside a batch) are not, and keep their response until
// the slab is refilled or the GC empties the pool.
func (p *recordPool) PutRecords(s []kgo.Record) {
	c := class(cap(s))
	if c > maxClass || cap(s) != 1<<c {
		return // not one of ours: a slab franz-go grew itself
	}
	s = s[:0]
	p.classes[c].Put(&s)
}
