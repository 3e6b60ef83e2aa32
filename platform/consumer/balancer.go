package consumer

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// CopartitionedProtocol is the name under which members of a group agree on
// CopartitionedBalancer. It is part of the contract with Kafka: a group runs the first
// protocol every member supports, so renaming it makes a rolling deploy fall back to
// cooperative-sticky until every member runs the new name.
const CopartitionedProtocol = "orderflow-copartitioned"

// CopartitionedBalancer returns a cooperative group balancer that assigns partition
// numbers instead of partitions: a member gets the same partition numbers of every topic
// it reads. The topics of the suite are keyed by aggregate id and partitioned alike, so
// an aggregate's events from several topics then reach one member and one worker (see
// the package comment), where cooperative-sticky, which balances each partition on its
// own, may give partition 3 of one topic to one member and partition 3 of another to a
// second, whose transactions then wait for each other's key locks.
//
// Numbers are spread evenly (a member gets ⌊numbers/members⌋ or one more) and stay with
// the member that owns most of their partitions, so a rebalance moves as few as it can;
// the moves happen in two steps like every cooperative balancer (revoke, then assign). A
// member only gets partitions of topics it subscribes to: when subscriptions differ, as
// during a rolling deploy that adds a topic, a topic's partition goes to another member
// that reads it. Consumer runs it ahead of cooperative-sticky, so that a group whose
// members do not all know it yet keeps running cooperative-sticky.
func CopartitionedBalancer() kgo.GroupBalancer { return copartitioned{} }

type copartitioned struct{}

func (copartitioned) ProtocolName() string { return CopartitionedProtocol }
func (copartitioned) IsCooperative() bool  { return true }

func (copartitioned) JoinGroupMetadata(interests []string, current map[string][]int32, generation int32) []byte {
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Version = 2 // owned partitions (v1) and the generation they were owned in (v2)
	meta.Topics = interests
	meta.Generation = generation
	topics := make([]string, 0, len(current))
	for t := range current {
		topics = append(topics, t)
	}
	slices.Sort(topics) // deterministic: Kafka compares metadata to decide whether to rebalance
	for _, t := range topics {
		owned := kmsg.NewConsumerMemberMetadataOwnedPartition()
		owned.Topic = t
		owned.Partitions = current[t]
		meta.OwnedPartitions = append(meta.OwnedPartitions, owned)
	}
	return meta.AppendTo(nil)
}

func (copartitioned) ParseSyncAssignment(assignment []byte) (map[string][]int32, error) {
	return kgo.ParseConsumerSyncAssignment(assignment)
}

func (c copartitioned) MemberBalancer(members []kmsg.JoinGroupResponseMember) (kgo.GroupMemberBalancer, map[string]struct{}, error) {
	b, err := kgo.NewConsumerBalancer(c, members)
	return b, b.MemberTopics(), err
}

// Balance assigns partition numbers to members; see CopartitionedBalancer.
func (copartitioned) Balance(b *kgo.ConsumerBalancer, topics map[string]int32) kgo.IntoSyncAssignment {
	members := b.Members() // sorted by instance id, then member id
	readers := map[string][]int{}
	claimed := map[tp]int{} // the member (index) whose claim on a partition is current
	claimGen := map[tp]int32{}
	for i := range members {
		_, meta := b.MemberAt(i)
		for _, t := range meta.Topics {
			if _, ok := topics[t]; ok {
				readers[t] = append(readers[t], i)
			}
		}
		for _, o := range meta.OwnedPartitions {
			for _, p := range o.Partitions {
				k := tp{o.Topic, p}
				if gen, ok := claimGen[k]; !ok || meta.Generation > gen {
					claimed[k], claimGen[k] = i, meta.Generation
				}
			}
		}
	}
	var numbers int32
	for _, n := range topics {
		numbers = max(numbers, n)
	}
	holder := assignNumbers(len(members), numbers, func(n int32) []int {
		owns := make([]int, len(members))
		for t, count := range topics {
			if m, ok := claimed[tp{t, n}]; ok && n < count {
				owns[m]++
			}
		}
		return owns
	})

	plan := b.NewPlan()
	load := make([]map[string]int, len(members)) // partitions planned per member and topic
	for i := range load {
		load[i] = map[string]int{}
	}
	names := make([]string, 0, len(topics))
	for t := range topics {
		names = append(names, t)
	}
	slices.Sort(names)
	for n := range numbers {
		for _, t := range names {
			if n >= topics[t] || len(readers[t]) == 0 {
				continue
			}
			m := holder[n]
			if !slices.Contains(readers[t], m) { // the holder does not read t: its least loaded reader does
				m = slices.MinFunc(readers[t], func(a, b int) int { return load[a][t] - load[b][t] })
			}
			load[m][t]++
			plan.AddPartition(&members[m], t, n)
		}
	}
	plan.AdjustCooperative(b)
	return plan
}

// assignNumbers gives each partition number 0..numbers-1 to one of members members,
// ⌊numbers/members⌋ or one more each. owns(n) says how many of number n's partitions
// each member owns now; a number stays with its main owner while that owner is under
// its share. It returns the member of each number.
func assignNumbers(members int, numbers int32, owns func(n int32) []int) []int {
	holder := make([]int, numbers)
	if members == 0 {
		return holder
	}
	base, extra := int(numbers)/members, int(numbers)%members
	count := make([]int, members)
	var free []int32
	// Owners keep their numbers up to the base share, then, while numbers are left over
	// after every member's base (extra), one more each.
	mainOwner := make([]int, numbers)
	for n := range numbers {
		mainOwner[n] = -1
		best := 0
		for m, k := range owns(n) {
			if k > best {
				mainOwner[n], best = m, k
			}
		}
	}
	for _, limit := range []int{base, base + 1} {
		for n := range numbers {
			m := mainOwner[n]
			if m < 0 || count[m] >= limit || (limit > base && extra == 0) {
				continue
			}
			if limit > base {
				extra--
			}
			holder[n], count[m] = m, count[m]+1
			mainOwner[n] = -2 // placed
		}
	}
	for n := range numbers {
		if mainOwner[n] != -2 {
			free = append(free, n)
		}
	}
	// The rest go to the members with the fewest, lowest index first.
	for _, n := range free {
		m := 0
		for i := range count {
			if count[i] < count[m] {
				m = i
			}
		}
		holder[n], count[m] = m, count[m]+1
	}
	return holder
}
