package consumer

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
)

// metrics every consumer reports, labelled by group, topic and partition.
type metrics struct {
	processed       metric.Int64Counter
	duplicates      metric.Int64Counter
	retries         metric.Int64Counter
	deadLetters     metric.Int64Counter
	lag             metric.Int64Gauge
	queuedBytes     metric.Int64Gauge
	eventAge        metric.Float64Histogram
	handlerDuration metric.Float64Histogram
	purged          metric.Int64Counter
	purgeFailures   metric.Int64Counter
}

var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

func newMetrics() (*metrics, error) {
	meter := otel.Meter("github.com/orderflow/orderflow/platform/consumer")
	var m metrics
	var err error
	if m.processed, err = meter.Int64Counter("consumer_records_total",
		metric.WithDescription("Records applied, skipped as duplicates or dead-lettered.")); err != nil {
		return nil, err
	}
	if m.duplicates, err = meter.Int64Counter("consumer_duplicates_total",
		metric.WithDescription("Redelivered events acknowledged without effect (inbox hit).")); err != nil {
		return nil, err
	}
	if m.retries, err = meter.Int64Counter("consumer_retries_total",
		metric.WithDescription("Handler attempts that failed and were retried.")); err != nil {
		return nil, err
	}
	if m.deadLetters, err = meter.Int64Counter("consumer_dead_letters_total",
		metric.WithDescription("Records written to the dead-letter topic.")); err != nil {
		return nil, err
	}
	if m.lag, err = meter.Int64Gauge("consumer_lag",
		metric.WithDescription("Records between the last applied offset and the partition's high watermark.")); err != nil {
		return nil, err
	}
	if m.queuedBytes, err = meter.Int64Gauge("consumer_queued_bytes",
		metric.WithDescription("Bytes of fetched records waiting for the group's workers (bounded by its QueueBytes plus up to two fetches per partition).")); err != nil {
		return nil, err
	}
	if m.eventAge, err = meter.Float64Histogram("consumer_event_age_seconds",
		metric.WithDescription("From the event's ce_time to its application."),
		metric.WithExplicitBucketBoundaries(latencyBuckets...)); err != nil {
		return nil, err
	}
	if m.handlerDuration, err = meter.Float64Histogram("consumer_handler_duration_seconds",
		metric.WithDescription("Time spent in the handler, inside the transaction."),
		metric.WithExplicitBucketBoundaries(latencyBuckets...)); err != nil {
		return nil, err
	}
	if m.purged, err = meter.Int64Counter("consumer_inbox_purged_total",
		metric.WithDescription("Inbox rows deleted past the retention.")); err != nil {
		return nil, err
	}
	if m.purgeFailures, err = meter.Int64Counter("consumer_inbox_purge_failures_total",
		metric.WithDescription("Inbox purges that failed (tried again later; the inbox grows meanwhile).")); err != nil {
		return nil, err
	}
	return &m, nil
}
