// Package kafka sets up franz-go clients for orderflow: connection settings (TLS and SASL
// optional), the producer every service publishes with, and the declarations of the
// topics each service owns, created at start.
//
// Producer guarantees: records are acknowledged by all in-sync replicas (acks=all) and
// the producer is idempotent, so a retried batch is written once and the order of
// records produced to one partition is the order they were produced in. Records are
// partitioned by key with murmur2 exactly as Kafka's Java client does, so every
// Confluent-compatible producer puts an aggregate on the same partition.
package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Config is how to reach the cluster.
type Config struct {
	Brokers []string
	// ClientID names the client in broker logs and quotas; the service name.
	ClientID string
	// TLS enables TLS with the system roots.
	TLS bool
	// SASLMechanism is "", "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512".
	SASLMechanism string
	SASLUser      string
	SASLPassword  string
	// Logger receives franz-go's warnings and errors; nil discards them.
	Logger *slog.Logger
	// SessionTimeout is how long a consumer group waits for a member that stopped
	// heartbeating before it reassigns that member's partitions; zero keeps franz-go's
	// default (45 s). Members heartbeat every third of it, at most every 3 s.
	SessionTimeout time.Duration
}

// GroupOpts are the session options of a consumer group member.
func (c Config) GroupOpts() []kgo.Opt {
	if c.SessionTimeout <= 0 {
		return nil
	}
	return []kgo.Opt{kgo.SessionTimeout(c.SessionTimeout), kgo.HeartbeatInterval(min(c.SessionTimeout/3, 3*time.Second))}
}

// Validate names every problem.
func (c Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("no brokers"))
	}
	switch c.SASLMechanism {
	case "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
	default:
		errs = append(errs, fmt.Errorf("SASL mechanism %q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.SASLMechanism))
	}
	if c.SASLMechanism != "" && (c.SASLUser == "" || c.SASLPassword == "") {
		errs = append(errs, errors.New("SASL needs a user and a password"))
	}
	return errors.Join(errs...)
}

// Opts returns the connection options shared by every client of a service.
func (c Config) Opts() []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(c.ClientID),
		kgo.WithHooks(requestHook()),
		kgo.RetryBackoffFn(func(tries int) time.Duration {
			return min(time.Duration(tries)*100*time.Millisecond, 2*time.Second)
		}),
	}
	if c.TLS {
		opts = append(opts, kgo.DialTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12}))
	}
	switch c.SASLMechanism {
	case "PLAIN":
		opts = append(opts, kgo.SASL(plain.Auth{User: c.SASLUser, Pass: c.SASLPassword}.AsMechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: c.SASLUser, Pass: c.SASLPassword}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: c.SASLUser, Pass: c.SASLPassword}.AsSha512Mechanism()))
	}
	if c.Logger != nil {
		opts = append(opts, kgo.WithLogger(slogAdapter{c.Logger}))
	}
	return opts
}

// ProducerOpts are the options of every producing client: acks=all, idempotence (on by
// default in franz-go and never disabled here), Kafka-compatible murmur2 key
// partitioning, no linger, because the outbox relay and the dead-letter writer flush
// their own batches, and LZ4 in small blocks (compress.go).
func ProducerOpts() []kgo.Opt {
	return []kgo.Opt{
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.ProducerLinger(0),
		kgo.WithCompressor(compressor),
		kgo.MaxBufferedRecords(100_000),
	}
}

// NewClient returns a client with the connection options, the producer options and extra.
// It does not connect until first used; Ping tells whether the cluster is reachable.
func NewClient(c Config, extra ...kgo.Opt) (*kgo.Client, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	opts := append(c.Opts(), ProducerOpts()...)
	return kgo.NewClient(append(opts, extra...)...)
}

// Topic declares a topic a service owns.
type Topic struct {
	Name       string
	Partitions int32
	Configs    map[string]string
}

// EventTopic declares a topic of events. Its history is kept forever (retention.ms=-1,
// no size limit) because read models are rebuilt by replaying it from the start.
func EventTopic(name string, partitions int32) Topic {
	return Topic{Name: name, Partitions: partitions, Configs: map[string]string{
		"cleanup.policy":  "delete",
		"retention.ms":    "-1",
		"retention.bytes": "-1",
	}}
}

// DeadLetterTopic declares the dead-letter topic of a consumer group, <group>.dlq, kept
// forever like the event topics: a dead letter waits for a person.
func DeadLetterTopic(group string) Topic {
	return EventTopic(DeadLetterTopicName(group), 1)
}

// DeadLetterTopicName is the name of a consumer group's dead-letter topic.
func DeadLetterTopicName(group string) string { return group + ".dlq" }

// EnsureTopics creates the topics that do not exist yet and checks that existing ones
// have the declared partition count. A topic with a different partition count is an
// error, not something to repair: adding partitions would move keys to other partitions
// and break per-aggregate order.
func EnsureTopics(ctx context.Context, client *kgo.Client, topics ...Topic) error {
	adm := kadm.NewClient(client)
	for _, t := range topics {
		configs := map[string]*string{}
		for k, v := range t.Configs {
			configs[k] = &v
		}
		resp, err := adm.CreateTopic(ctx, t.Partitions, -1, configs, t.Name)
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", t.Name, err)
		}
		if resp.Err != nil && !errors.Is(resp.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", t.Name, resp.Err)
		}
	}
	names := make([]string, len(topics))
	for i, t := range topics {
		names[i] = t.Name
	}
	// A topic just created may take a moment to appear in the metadata, with its leaders.
	var found map[string]kmsg.MetadataResponseTopic
	for attempt := 0; ; attempt++ {
		var err error
		if found, err = describeTopics(ctx, client, names); err != nil {
			return err
		}
		if topicsReady(found, names) || attempt == 50 || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, t := range topics {
		d, ok := found[t.Name]
		if !ok {
			return fmt.Errorf("describe topic %s: the broker did not answer for it", t.Name)
		}
		// A partition still without a leader is not an error here: on a cluster with a
		// broker down, refusing to start would add an outage to the one there is.
		if err := kerr.ErrorForCode(d.ErrorCode); err != nil {
			return fmt.Errorf("describe topic %s: %w", t.Name, err)
		}
		if got := int32(len(d.Partitions)); got != t.Partitions {
			return fmt.Errorf("topic %s has %d partitions, declared %d: change the declaration or migrate the topic", t.Name, got, t.Partitions)
		}
	}
	return nil
}

// describeTopics asks the broker for the topics' metadata. It does not go through kadm,
// which answers from the client's metadata cache: a topic the client saw as missing, or
// without leaders, stays so there for MetadataMinAge (5 s by default), and every service
// of a fresh stack waited that out twice before it began.
func describeTopics(ctx context.Context, client *kgo.Client, names []string) (map[string]kmsg.MetadataResponseTopic, error) {
	req := kmsg.NewPtrMetadataRequest()
	// Never let asking create: a broker with auto.create.topics.enable would make another
	// service's topic with its own defaults, and that service would then refuse it.
	req.AllowAutoTopicCreation = false
	for _, n := range names {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(n)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, client)
	if err != nil {
		return nil, fmt.Errorf("describe topics: %w", err)
	}
	found := make(map[string]kmsg.MetadataResponseTopic, len(resp.Topics))
	for _, t := range resp.Topics {
		if t.Topic != nil {
			found[*t.Topic] = t
		}
	}
	return found, nil
}

// MissingTopics returns the topics of names the cluster does not have, asking the broker
// (see describeTopics) rather than the client's metadata cache.
func MissingTopics(ctx context.Context, client *kgo.Client, names ...string) ([]string, error) {
	found, err := describeTopics(ctx, client, names)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, n := range names {
		if d, ok := found[n]; !ok || errors.Is(kerr.ErrorForCode(d.ErrorCode), kerr.UnknownTopicOrPartition) {
			missing = append(missing, n)
		} else if err := kerr.ErrorForCode(d.ErrorCode); err != nil {
			return nil, fmt.Errorf("describe topic %s: %w", n, err)
		}
	}
	return missing, nil
}

// topicsReady reports whether every named topic is known with a leader for each partition.
func topicsReady(found map[string]kmsg.MetadataResponseTopic, names []string) bool {
	for _, n := range names {
		d, ok := found[n]
		if !ok || d.ErrorCode != 0 {
			return false
		}
		for _, p := range d.Partitions {
			if p.ErrorCode != 0 {
				return false
			}
		}
	}
	return true
}

// Ping reports whether the cluster answers a metadata request.
func Ping(ctx context.Context, client *kgo.Client) error {
	return client.Ping(ctx)
}

// Headers converts record headers to a map (the last value of a repeated key wins).
func Headers(r *kgo.Record) map[string]string {
	m := make(map[string]string, len(r.Headers))
	for _, h := range r.Headers {
		m[h.Key] = string(h.Value)
	}
	return m
}

// Partition returns a partition number as a string, for metric labels.
func Partition(p int32) string { return strconv.Itoa(int(p)) }

type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (a slogAdapter) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lvl := slog.LevelInfo
	switch level {
	case kgo.LogLevelError:
		lvl = slog.LevelError
	case kgo.LogLevelWarn:
		lvl = slog.LevelWarn
	case kgo.LogLevelDebug:
		lvl = slog.LevelDebug
	}
	a.l.Log(context.Background(), lvl, "kafka: "+msg, keyvals...)
}
