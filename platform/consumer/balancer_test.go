package consumer

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// joining is a member as it joins: what it reads and what it owns, in which generation.
type joining struct {
	id         string
	reads      []string
	owns       map[string][]int32
	ownedInGen int32
}

// balance runs CopartitionedBalancer as a group leader would and returns each member's
// plan (member -> topic -> partitions).
func balance(t *testing.T, topics map[string]int32, ms ...joining) map[string]map[string][]int32 {
	t.Helper()
	bal := CopartitionedBalancer()
	members := make([]kmsg.JoinGroupResponseMember, len(ms))
	for i, m := range ms {
		members[i] = kmsg.JoinGroupResponseMember{MemberID: m.id,
			ProtocolMetadata: bal.JoinGroupMetadata(m.reads, m.owns, m.ownedInGen)}
	}
	mb, _, err := bal.MemberBalancer(members)
	if err != nil {
		t.Fatal(err)
	}
	plan := mb.(*kgo.ConsumerBalancer).BalanceOrError
	out, err := plan(topics)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*kgo.BalancePlan).AsMemberIDMap()
	for _, byTopic := range got {
		for _, ps := range byTopic {
			slices.Sort(ps)
		}
	}
	return got
}

// numbersOf is the set of partition numbers a member's plan holds in any topic.
func numbersOf(plan map[string][]int32) []int32 {
	var all []int32
	for _, ps := range plan {
		all = append(all, ps...)
	}
	slices.Sort(all)
	return slices.Compact(all)
}

// checkComplete fails unless every partition of topics is planned exactly once.
func checkComplete(t *testing.T, topics map[string]int32, got map[string]map[string][]int32) {
	t.Helper()
	seen := map[string]int{}
	for _, byTopic := range got {
		for topic, ps := range byTopic {
			for _, p := range ps {
				seen[fmt.Sprintf("%s/%d", topic, p)]++
			}
		}
	}
	for topic, n := range topics {
		for p := range n {
			if k := fmt.Sprintf("%s/%d", topic, p); seen[k] != 1 {
				t.Errorf("%s planned %d times, want once", k, seen[k])
			}
		}
	}
}

func TestCopartitionedBalancerGivesEachMemberWholeNumbers(t *testing.T) {
	topics := map[string]int32{"a": 6, "b": 6, "c": 6}
	all := []string{"a", "b", "c"}
	got := balance(t, topics, joining{id: "m1", reads: all}, joining{id: "m2", reads: all})
	checkComplete(t, topics, got)
	for _, m := range []string{"m1", "m2"} {
		for _, topic := range all {
			if ps := got[m][topic]; !slices.Equal(ps, got[m]["a"]) || len(ps) != 3 {
				t.Errorf("%s: %s %v, a %v: want the same three numbers in every topic", m, topic, ps, got[m]["a"])
			}
		}
	}

	// Eight members for six numbers: six get one number each, two get nothing.
	var ms []joining
	for i := range 8 {
		ms = append(ms, joining{id: fmt.Sprintf("m%d", i), reads: all})
	}
	got = balance(t, topics, ms...)
	checkComplete(t, topics, got)
	holders := 0
	for m, plan := range got {
		if n := numbersOf(plan); len(n) > 1 {
			t.Errorf("%s holds numbers %v, want at most one", m, n)
		} else if len(n) == 1 {
			holders++
		}
	}
	if holders != 6 {
		t.Errorf("%d members hold a number, want 6", holders)
	}
}

// A member joining takes numbers from the member that held them all, in two cooperative
// steps: first the holder gives them up (nothing moves in the same round), then they are
// assigned. The numbers the holder keeps stay where they were.
func TestCopartitionedBalancerMovesNumbersCooperatively(t *testing.T) {
	topics := map[string]int32{"a": 6, "b": 6}
	reads := []string{"a", "b"}
	everything := map[string][]int32{"a": {0, 1, 2, 3, 4, 5}, "b": {0, 1, 2, 3, 4, 5}}
	first := balance(t, topics, joining{id: "m1", reads: reads, owns: everything, ownedInGen: 4}, joining{id: "m2", reads: reads})
	kept := numbersOf(first["m1"])
	if len(kept) != 3 || !slices.Equal(first["m1"]["a"], first["m1"]["b"]) {
		t.Fatalf("m1 keeps %v: want three numbers of both topics", first["m1"])
	}
	if n := len(numbersOf(first["m2"])); n != 0 {
		t.Fatalf("m2 got %v in the round where m1 still owns them", first["m2"])
	}
	second := balance(t, topics, joining{id: "m1", reads: reads, owns: first["m1"], ownedInGen: 5}, joining{id: "m2", reads: reads, ownedInGen: 5})
	checkComplete(t, topics, second)
	if !maps.EqualFunc(second["m1"], first["m1"], slices.Equal) {
		t.Errorf("m1's numbers moved again: %v, then %v", first["m1"], second["m1"])
	}
	if n := numbersOf(second["m2"]); len(n) != 3 || !slices.Equal(second["m2"]["a"], second["m2"]["b"]) {
		t.Errorf("m2 got %v: want the other three numbers of both topics", second["m2"])
	}
}

// A stale claim (an older generation) does not keep a partition from its current owner.
func TestCopartitionedBalancerIgnoresStaleClaims(t *testing.T) {
	topics := map[string]int32{"a": 2}
	got := balance(t, topics,
		joining{id: "m1", reads: []string{"a"}, owns: map[string][]int32{"a": {0, 1}}, ownedInGen: 2},
		joining{id: "m2", reads: []string{"a"}, owns: map[string][]int32{"a": {0, 1}}, ownedInGen: 7})
	// m2 owns both now and keeps its first within its share of one, as any owner does;
	// were m1's stale claim taken for ownership, m1 would keep 0 and m2 would get 1. m1
	// gets nothing in this round: m2 must give up 1 first.
	if !slices.Equal(got["m2"]["a"], []int32{0}) || len(got["m1"]["a"]) != 0 {
		t.Errorf("planned m1 %v, m2 %v: want m1 nothing yet, m2 partition 0", got["m1"]["a"], got["m2"]["a"])
	}
}

// Members that read different topics (a rolling deploy that adds one): a member gets only
// partitions of topics it reads, and every partition still has a member.
func TestCopartitionedBalancerRespectsSubscriptions(t *testing.T) {
	topics := map[string]int32{"a": 6, "new": 6}
	got := balance(t, topics, joining{id: "m1", reads: []string{"a"}}, joining{id: "m2", reads: []string{"a", "new"}})
	checkComplete(t, topics, got)
	if ps := got["m1"]["new"]; len(ps) != 0 {
		t.Errorf("m1 got %v of a topic it does not read", ps)
	}
	if len(got["m1"]["a"]) != 3 || len(got["m2"]["a"]) != 3 {
		t.Errorf("a split %v / %v, want 3 / 3", got["m1"]["a"], got["m2"]["a"])
	}
	if !slices.Equal(got["m2"]["new"], []int32{0, 1, 2, 3, 4, 5}) {
		t.Errorf("m2 got %v of new, want all six", got["m2"]["new"])
	}
	// Topics of different partition counts: numbers still go whole, and both topics spread.
	topics = map[string]int32{"four": 4, "two": 2}
	got = balance(t, topics, joining{id: "m1", reads: []string{"four", "two"}}, joining{id: "m2", reads: []string{"four", "two"}})
	checkComplete(t, topics, got)
	if len(got["m1"]["two"]) != 1 || len(got["m2"]["two"]) != 1 {
		t.Errorf("two split %v / %v, want one partition each", got["m1"]["two"], got["m2"]["two"])
	}
}

// A rebalance that changes nothing (a member restarted with its static id, a metadata
// refresh) leaves every number where it is, whatever order the members own them in.
func TestCopartitionedBalancerLeavesASettledGroupAlone(t *testing.T) {
	topics := map[string]int32{"a": 6, "b": 6}
	reads := []string{"a", "b"}
	m1 := map[string][]int32{"a": {1, 3, 5}, "b": {1, 3, 5}}
	m2 := map[string][]int32{"a": {0, 2, 4}, "b": {0, 2, 4}}
	got := balance(t, topics, joining{id: "m1", reads: reads, owns: m1, ownedInGen: 3}, joining{id: "m2", reads: reads, owns: m2, ownedInGen: 3})
	if !maps.EqualFunc(got["m1"], m1, slices.Equal) || !maps.EqualFunc(got["m2"], m2, slices.Equal) {
		t.Errorf("planned m1 %v, m2 %v: want what they own, m1 %v, m2 %v", got["m1"], got["m2"], m1, m2)
	}
}
