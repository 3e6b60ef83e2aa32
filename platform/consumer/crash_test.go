package consumer_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/platform/consumer"
	"github.com/orderflow/orderflow/platform/internal/testevent"
	"github.com/orderflow/orderflow/platform/kafka"
	"github.com/orderflow/orderflow/platform/kafka/kafkatest"
	"github.com/orderflow/orderflow/platform/outbox"
)

// severable dials the broker for one client until it is severed: then every connection
// closes and no new one opens, so the client can neither heartbeat nor leave its group,
// as when its process is killed.
type severable struct {
	mu      sync.Mutex
	conns   []net.Conn
	severed bool
}

func (s *severable) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.severed {
		return nil, errors.New("severed")
	}
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err == nil {
		s.conns = append(s.conns, c)
	}
	return c, err
}

func (s *severable) sever() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.severed = true
	for _, c := range s.conns {
		_ = c.Close()
	}
}

// A member that dies without leaving its group (killed, out of memory) holds its
// partitions until the coordinator stops waiting for its heartbeat: the session timeout.
// With franz-go's default, 45 s, every order of those partitions waited that long after
// a service crashed, restarted or not. The platform's members ask for the configured
// timeout (6 s here, the broker's minimum), so another member takes over within it.
func TestACrashedMembersPartitionsMoveWithinTheSessionTimeout(t *testing.T) {
	h := newHarness(t, 4)
	ctx := context.Background()
	h.runRelay(outbox.RelayOptions{})
	group := kafkatest.Name("g")
	cfg := kafkatest.Config(t)
	cfg.SessionTimeout = 6 * time.Second

	newMember := func() *consumer.Consumer {
		c, err := consumer.New(group, []string{h.topic}, cfg, h.pool, h.serde, h.log, consumer.Options{ShutdownGrace: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		consumer.On(c, testevent.V1, record)
		return c
	}
	victim, link := newMember(), &severable{}
	victim.WithClientOpts(kgo.Dialer(link.dial))
	stopVictim := h.run(victim.Run)
	t.Cleanup(stopVictim)
	h.appendMany(ctx, 8, "before", 8)
	waitFor(t, 30*time.Second, "the first member to apply the events before the crash", func() bool {
		return h.count(`SELECT count(*) FROM effects`) == 8
	})

	link.sever()
	crashed := time.Now()
	survivor := newMember()
	t.Cleanup(h.run(survivor.Run))
	h.appendMany(ctx, 8, "after", 8)
	waitFor(t, 20*time.Second, "the other member to take over the crashed member's partitions", func() bool {
		return h.count(`SELECT count(*) FROM effects`) == 16
	})
	t.Logf("applied by the survivor %v after the crash", time.Since(crashed).Round(100*time.Millisecond))
	if n := h.count(`SELECT count(*) FROM (SELECT event_id FROM effects GROUP BY event_id HAVING count(*) > 1) d`); n != 0 {
		t.Fatalf("%d events applied twice", n)
	}
}

// The session options reach franz-go as configured, with a heartbeat every third of the
// timeout (at most every 3 s), and a zero timeout leaves franz-go's defaults.
func TestGroupOptsCarryTheSessionTimeout(t *testing.T) {
	for _, tc := range []struct {
		timeout, wantSession, wantHeartbeat time.Duration
	}{
		{6 * time.Second, 6 * time.Second, 2 * time.Second},
		{10 * time.Second, 10 * time.Second, 3 * time.Second},
		{0, 45 * time.Second, 3 * time.Second},
	} {
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers("127.0.0.1:1"), kgo.ConsumerGroup("g"), kgo.ConsumeTopics("t")},
			kafka.Config{SessionTimeout: tc.timeout}.GroupOpts()...)...)
		if err != nil {
			t.Fatal(err)
		}
		session := cl.OptValue(kgo.SessionTimeout).(time.Duration)
		heartbeat := cl.OptValue(kgo.HeartbeatInterval).(time.Duration)
		cl.Close()
		if session != tc.wantSession || heartbeat != tc.wantHeartbeat {
			t.Errorf("timeout %v: session %v, heartbeat %v; want %v and %v", tc.timeout, session, heartbeat, tc.wantSession, tc.wantHeartbeat)
		}
	}
}
