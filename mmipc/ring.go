package mmipc

// Ring is one handle on a message ring (PLACEHOLDER: the full implementation replaces this file).
type Ring struct {
	region   *Region
	capacity int
}

func newRing(r *Region, capacity int) *Ring { return &Ring{region: r, capacity: capacity} }

// Region returns the region that holds the ring.
func (q *Ring) Region() *Region { return q.region }

// Close detaches the ring.
func (q *Ring) Close() error { return q.region.Close() }
