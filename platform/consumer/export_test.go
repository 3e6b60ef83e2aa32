package consumer

import "github.com/twmb/franz-go/pkg/kgo"

// Assignment is the topic-partitions this member's workers hold now.
func (c *Consumer) Assignment() map[string][]int32 { return c.allPartitions() }

// AsBeforeCopartitioned makes c a member of a release before CopartitionedBalancer, which
// knew only cooperative-sticky.
func (c *Consumer) AsBeforeCopartitioned() {
	c.balancers = []kgo.GroupBalancer{kgo.CooperativeStickyBalancer()}
}

// QueuedBytes returns the bytes the group's accounting says wait in its workers' queues,
// and the same summed over the records that are there.
func (c *Consumer) QueuedBytes() (counted, present int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range c.workers {
		w.mu.Lock()
		for _, r := range w.queue {
			if w.parts[tpOf(r)] != nil {
				present += queuedSize(r)
			}
		}
		w.mu.Unlock()
	}
	return c.queued.Load(), present
}

// Held returns how many topic-partitions the group's queue budget is shared among.
func (c *Consumer) Held() int64 { return c.held.Load() }

// WithClientOpts adds franz-go options to the client Run makes.
func (c *Consumer) WithClientOpts(opts ...kgo.Opt) { c.testOpts = append(c.testOpts, opts...) }
