package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/platform/consumer"
	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/platform/internal/testevent"
	"github.com/orderflow/orderflow/platform/kafka/kafkatest"
	"github.com/orderflow/orderflow/platform/outbox"
)

// A group reading two topics, while members join and leave: every event is applied
// exactly once and in order per topic and key, across rebalances. The topics have 4 and 2
// partitions, so they are not co-partitioned and a rebalance takes some of a partition
// number's topics from a member and leaves it the others (the worker's release path).
// Every fifth event fails once with a transient error, so rebalances also take partitions
// that are held back for a retry. A Serial group, whose one worker applies every
// partition, goes through the same.
func TestTwoTopicsAcrossRebalances(t *testing.T) {
	t.Parallel()
	for name, serial := range map[string]bool{"parallel": false, "serial": true} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testTwoTopicsAcrossRebalances(t, serial)
		})
	}
}

func testTwoTopicsAcrossRebalances(t *testing.T, serial bool) {
	h := newHarness(t, 4)
	other := kafkatest.Topic(t, 2)
	ctx := context.Background()
	h.runRelay(outbox.RelayOptions{BatchSize: 200})

	// Events for key k go to both topics, payload ids "<topic>/k" with their own sequence.
	next := map[string]int64{}
	appendBoth := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			key := fmt.Sprintf("k%d", i%25)
			var evs []events.Event
			for _, topic := range []string{h.topic, other} {
				id := topic + "/" + key
				next[id]++
				evs = append(evs, events.New(ctx, "test", topic, key, testevent.V1,
					testevent.Thing{ID: id, Seq: next[id], Amount: 1}, events.Cause{}))
			}
			if err := pgx.BeginFunc(ctx, h.pool, func(tx pgx.Tx) error { return h.outbox.Append(ctx, tx, evs...) }); err != nil {
				t.Fatal(err)
			}
			h.outbox.Committed(ctx)
		}
	}
	var failedOnce sync.Map // event id -> struct{}: its one failure happened
	var failures atomic.Int64
	flaky := func(ctx context.Context, tx pgx.Tx, m consumer.Message, p testevent.Thing) error {
		if p.Seq%5 == 0 {
			if _, failed := failedOnce.LoadOrStore(m.ID, struct{}{}); !failed {
				failures.Add(1)
				return consumer.Transient(errors.New("briefly unavailable"))
			}
		}
		return record(ctx, tx, m, p)
	}
	group := kafkatest.Name("g")
	member := func() (*consumer.Consumer, func()) {
		c, err := consumer.New(group, []string{h.topic, other}, kafkatest.Config(t), h.pool, h.serde, h.log,
			consumer.Options{ShutdownGrace: 5 * time.Second, Serial: serial,
				BackoffBase: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		consumer.On(c, testevent.V1, flaky)
		return c, h.run(c.Run)
	}
	applied := func() int { return h.count(`SELECT count(*) FROM effects`) }
	// Across assignments and releases, a member's queue accounting follows what it holds:
	// the budget shared among the partitions it has, no bytes counted for records it
	// dropped, and nothing left once it stopped.
	accounted := func(c *consumer.Consumer, stopped bool) {
		t.Helper()
		waitFor(t, 10*time.Second, "the queue accounting to match the queues", func() bool {
			counted, present := c.QueuedBytes()
			a := c.Assignment()
			held := int64(len(a[h.topic]) + len(a[other]))
			return counted == present && c.Held() == held && (!stopped || counted == 0 && held == 0)
		})
	}

	first, stopFirst := member()
	appendBoth(0, 150)
	waitFor(t, 60*time.Second, "the first member to apply some events", func() bool { return applied() > 50 })
	second, stopSecond := member() // joins: partitions move, some partition numbers split between members
	appendBoth(150, 300)
	waitFor(t, 60*time.Second, "600 events", func() bool { return applied() >= 600 })
	accounted(first, false)
	accounted(second, false)
	stopFirst() // leaves: the second takes everything
	accounted(first, true)
	appendBoth(300, 400)
	waitFor(t, 60*time.Second, "800 events", func() bool { return applied() >= 800 })
	accounted(second, false)
	stopSecond()
	accounted(second, true)

	time.Sleep(300 * time.Millisecond) // room for a wrongly repeated effect to land
	if n := applied(); n != 800 {
		t.Fatalf("%d effects, want 800", n)
	}
	if n := h.count(`SELECT count(*) FROM (SELECT event_id FROM effects GROUP BY event_id HAVING count(*) > 1) d`); n != 0 {
		t.Fatalf("%d events applied more than once", n)
	}
	rows, err := h.pool.Query(ctx, `SELECT key, seq FROM effects ORDER BY n`)
	if err != nil {
		t.Fatal(err)
	}
	last := map[string]int64{}
	for rows.Next() {
		var id string
		var seq int64
		if err := rows.Scan(&id, &seq); err != nil {
			t.Fatal(err)
		}
		if seq != last[id]+1 {
			t.Fatalf("%s: applied seq %d after %d", id, seq, last[id])
		}
		last[id] = seq
	}
	if len(last) != 50 {
		t.Fatalf("%d payload ids, want 50 (25 keys on 2 topics)", len(last))
	}
	if n := failures.Load(); n != 150 {
		t.Fatalf("%d transient failures, want 150 (seq 5, 10 and 15 of each payload id, once)", n)
	}
}

// coTopics is a group reading two topics of six partitions: the harness topic and other.
type coTopics struct {
	*harness
	other, group string
}

func newCoTopics(t *testing.T) *coTopics {
	h := newHarness(t, 6)
	h.runRelay(outbox.RelayOptions{})
	return &coTopics{harness: h, other: kafkatest.Topic(t, 6), group: kafkatest.Name("g")}
}

// member starts a member of the group that stops when the returned function is called or
// the test ends; old makes it a member of a release that knew only cooperative-sticky.
func (g *coTopics) member(old bool) (*consumer.Consumer, func()) {
	c, err := consumer.New(g.group, []string{g.topic, g.other}, kafkatest.Config(g.t), g.pool, g.serde, g.log,
		consumer.Options{ShutdownGrace: 5 * time.Second})
	if err != nil {
		g.t.Fatal(err)
	}
	if old {
		c.AsBeforeCopartitioned()
	}
	consumer.On(c, testevent.V1, record)
	stop := g.run(c.Run)
	g.t.Cleanup(stop)
	return c, stop
}

// holdings counts the partitions members hold between them and describes each member
// whose partitions of the two topics differ.
func (g *coTopics) holdings(members ...*consumer.Consumer) (total int, split []string) {
	for i, c := range members {
		a := c.Assignment()
		total += len(a[g.topic]) + len(a[g.other])
		mine, theirs := slices.Sorted(slices.Values(a[g.topic])), slices.Sorted(slices.Values(a[g.other]))
		if !slices.Equal(mine, theirs) {
			split = append(split, fmt.Sprintf("member %d holds partitions %v of one topic and %v of the other", i, mine, theirs))
		}
	}
	return total, split
}

// Two members of a group reading two co-partitioned topics each end up with the same
// partition numbers of both (CopartitionedBalancer), so an aggregate's events from both
// topics meet in one member's worker.
func TestMembersHoldWholePartitionNumbers(t *testing.T) {
	t.Parallel()
	g := newCoTopics(t)
	m1, _ := g.member(false)
	m2, _ := g.member(false)
	g.appendMany(context.Background(), 12, "k", 12)
	waitFor(t, 60*time.Second, "both members to hold the twelve partitions between them", func() bool {
		t1, _ := g.holdings(m1)
		t2, _ := g.holdings(m2)
		return t1 > 0 && t2 > 0 && t1+t2 == 12
	})
	if _, split := g.holdings(m1, m2); len(split) > 0 {
		t.Errorf("want the same numbers of both topics: %s", strings.Join(split, "; "))
	}
}

// A rolling deploy from members that know only cooperative-sticky to members that know
// CopartitionedBalancer: while both kinds run, the group keeps cooperative-sticky; once the
// last old member left, it switches, without losing or repeating an event.
func TestRollingDeployOntoCopartitionedBalancer(t *testing.T) {
	t.Parallel()
	g := newCoTopics(t)
	ctx := context.Background()
	sent := 0
	appendBoth := func(n int) {
		t.Helper()
		for i := range n {
			key := fmt.Sprintf("k%d", (sent+i)%30)
			evs := []events.Event{
				events.New(ctx, "test", g.topic, key, testevent.V1, testevent.Thing{ID: key, Seq: int64(sent + i), Amount: 1}, events.Cause{}),
				events.New(ctx, "test", g.other, key, testevent.V1, testevent.Thing{ID: key, Seq: int64(sent + i), Amount: 1}, events.Cause{}),
			}
			if err := pgx.BeginFunc(ctx, g.pool, func(tx pgx.Tx) error { return g.outbox.Append(ctx, tx, evs...) }); err != nil {
				t.Fatal(err)
			}
			g.outbox.Committed(ctx)
		}
		sent += n
		waitFor(t, 60*time.Second, "every event applied", func() bool { return g.count(`SELECT count(*) FROM effects`) >= 2*sent })
	}

	_, stopOld1 := g.member(true)
	_, stopOld2 := g.member(true)
	appendBoth(60)
	newer1, stopNew1 := g.member(false) // old and new together: cooperative-sticky
	appendBoth(60)
	waitFor(t, 60*time.Second, "the new member to share the work of the old ones", func() bool {
		n, _ := g.holdings(newer1)
		return n > 0
	})
	stopOld1()
	appendBoth(60)
	newer2, stopNew2 := g.member(false)
	appendBoth(60)
	stopOld2() // only new members left: the group switches protocols
	appendBoth(60)
	waitFor(t, 60*time.Second, "the new members to hold whole partition numbers", func() bool {
		n, split := g.holdings(newer1, newer2)
		return n == 12 && len(split) == 0
	})
	appendBoth(60)
	stopNew1()
	stopNew2()

	time.Sleep(300 * time.Millisecond) // room for a wrongly repeated effect to land
	if n := g.count(`SELECT count(*) FROM effects`); n != 2*sent {
		t.Fatalf("%d effects, want %d", n, 2*sent)
	}
	if n := g.count(`SELECT count(*) FROM (SELECT event_id FROM effects GROUP BY event_id HAVING count(*) > 1) d`); n != 0 {
		t.Fatalf("%d events applied more than once", n)
	}
}
