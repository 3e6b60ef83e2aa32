package consumer

import "github.com/twmb/franz-go/pkg/kgo"

// Assignment is the topic-partitions this member's workers hold now.
func (c *Consumer) Assignment() map[string][]int32 { return c.allPartitions() }

// AsBeforeCopartitioned makes c a member of a release before CopartitionedBalancer, which
// knew only cooperative-sticky.
func (c *Consumer) AsBeforeCopartitioned() {
	c.balancers = []kgo.GroupBalancer{kgo.CooperativeStickyBalancer()}
}
