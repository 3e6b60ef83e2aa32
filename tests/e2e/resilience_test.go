package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/avro/contract"
	"github.com/orderflow/orderflow/avro/logistics"
	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/platform/kafka"
	"github.com/orderflow/orderflow/platform/serde"
)

// snapshot is every service's state of a set of orders, as rows rendered to text.
func (s *suite) snapshot(t *testing.T, ids []string) map[string]string {
	t.Helper()
	queries := map[string][2]string{
		"shop orders":      {"shop", `SELECT string_agg(id::text || status || COALESCE(cancel_reason, ''), ',' ORDER BY id) FROM orders WHERE id = ANY($1::uuid[])`},
		"shop timeline":    {"shop", `SELECT count(*)::text FROM order_timeline WHERE order_id = ANY($1::uuid[])`},
		"inventory":        {"inventory", `SELECT string_agg(order_id::text || status, ',' ORDER BY order_id) FROM reservations WHERE order_id = ANY($1::uuid[])`},
		"billing payments": {"billing", `SELECT string_agg(order_id::text || status, ',' ORDER BY order_id) FROM payments WHERE order_id = ANY($1::uuid[])`},
		"billing invoices": {"billing", `SELECT string_agg(number || status, ',' ORDER BY number) FROM invoices WHERE order_id = ANY($1::uuid[])`},
		"logistics":        {"logistics", `SELECT string_agg(order_id::text || status, ',' ORDER BY order_id) FROM shipments WHERE order_id = ANY($1::uuid[])`},
		"crm emails":       {"crm", `SELECT string_agg(order_id::text || kind || status, ',' ORDER BY order_id, kind) FROM emails WHERE order_id = ANY($1::uuid[])`},
		"crm timeline":     {"crm", `SELECT count(*)::text FROM timeline WHERE order_id = ANY($1::uuid[])`},
	}
	for _, svc := range []string{"shop", "inventory", "billing", "logistics", "crm"} { // every event each service published
		queries[svc+" outbox"] = [2]string{svc, `SELECT count(*)::text FROM platform_outbox WHERE key = ANY($1::text[])`}
	}
	out := map[string]string{}
	for name, q := range queries {
		out[name] = fmt.Sprint(s.scalar(t, q[0], q[1], ids))
	}
	return out
}

// Every event delivered twice: the same final state everywhere. The orders take every
// path: confirmed, out of stock, declined, cancelled by the customer after confirmation
// (a request, logistics' agreement, a refund) and shipped.
func TestEveryEventDeliveredTwice(t *testing.T) {
	s := stack(t)
	ok := s.product(t, 100, 10, 0)
	scarce := s.product(t, 100, 1, 0)
	ids := []string{
		s.place(t, orderBody("tok_visa", line{ok, 1})),
		s.place(t, orderBody("tok_visa", line{scarce, 3})),
		s.place(t, orderBody("tok_declined", line{ok, 1})),
		s.place(t, orderBody("tok_visa", line{ok, 1})),
		s.place(t, orderBody("tok_visa", line{ok, 1})),
	}
	s.await(t, ids[0], "CONFIRMED", settle)
	s.await(t, ids[1], "CANCELLED", settle)
	s.await(t, ids[2], "CANCELLED", settle)
	for _, id := range ids[3:] {
		s.await(t, id, "CONFIRMED", settle)
		s.awaitPrepared(t, id)
	}
	if code := s.call(t, "POST", s.shop+"/v1/orders/"+ids[3]+"/cancel", nil, nil, nil); code != 202 {
		t.Fatalf("cancel: %d", code)
	}
	if code := s.call(t, "POST", s.logistics+"/v1/shipments/"+ids[4]+"/dispatch", nil, s.admin(), nil); code != 200 {
		t.Fatalf("dispatch: %d", code)
	}
	s.await(t, ids[3], "CANCELLED", settle)
	s.await(t, ids[4], "SHIPPED", settle)
	// The shipped order's follow-up falls due ORDERFLOW_FOLLOWUP_DELAY (3 s in make test)
	// after dispatch: it must be sent before the first snapshot, or it lands between them.
	eventually(t, settle, func() string {
		if n := s.scalar(t, "crm", `SELECT count(*) FROM emails WHERE order_id = $1 AND kind = 'follow_up' AND status = 'SENT'`, ids[4]); n != int64(1) {
			return "the shipped order's follow-up e-mail is not sent yet"
		}
		return ""
	})
	time.Sleep(2 * time.Second) // let the compensations and e-mails finish
	before := s.snapshot(t, ids)

	// Re-publish every record of these orders on every order topic: a full second delivery.
	cl, err := kafka.NewClient(kafka.Config{Brokers: strings.Split(env("ORDERFLOW_KAFKA_BROKERS"), ","), ClientID: "e2e"},
		kgo.ConsumeTopics(contract.TopicShopOrders, contract.TopicInventoryReservations, contract.TopicBillingPayments,
			contract.TopicLogisticsShipments, contract.TopicCRMEngagements),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var dup []*kgo.Record
	// Read until every topic has been read to its end: the five topics hold every earlier
	// test's records too, so this can take a while on a busy machine.
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), contract.TopicShopOrders, contract.TopicInventoryReservations,
		contract.TopicBillingPayments, contract.TopicLogisticsShipments, contract.TopicCRMEngagements)
	if err != nil {
		t.Fatal(err)
	}
	left := map[string]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[fmt.Sprintf("%s/%d", o.Topic, o.Partition)] = o.Offset
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for ctx.Err() == nil && len(left) > 0 {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			k := fmt.Sprintf("%s/%d", r.Topic, r.Partition)
			if r.Offset+1 >= left[k] {
				delete(left, k)
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			if want[string(r.Key)] {
				dup = append(dup, &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value, Headers: r.Headers})
			}
		})
	}
	if len(dup) < 30 {
		t.Fatalf("found only %d records of the five orders", len(dup))
	}
	dupsBefore := s.duplicates(t) // before producing: consumers skip within milliseconds
	if err := cl.ProduceSync(context.Background(), dup...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	eventually(t, settle, func() string {
		if got := s.duplicates(t) - dupsBefore; got < float64(len(dup)) {
			return fmt.Sprintf("consumers skipped %v duplicates so far, want at least %d (one per record and group)", got, len(dup))
		}
		return ""
	})
	after := s.snapshot(t, ids)
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s changed after redelivery:\n before %s\n after  %s", k, v, after[k])
		}
	}
}

// duplicates sums consumer_duplicates_total over every service's /metrics.
func (s *suite) duplicates(t *testing.T) float64 {
	t.Helper()
	return s.counter(t, "consumer_duplicates_total", s.shop, s.inventory, s.billing, s.logistics, s.crm)
}

// counter sums a counter's series over the /metrics of services.
func (s *suite) counter(t *testing.T, name string, services ...string) float64 {
	t.Helper()
	var total float64
	for _, base := range services {
		for _, l := range strings.Split(string(s.get(t, base+"/metrics")), "\n") {
			if strings.HasPrefix(l, name+"{") {
				var v float64
				fmt.Sscan(l[strings.LastIndex(l, " ")+1:], &v)
				total += v
			}
		}
	}
	return total
}

// Billing stopped for 30 s while orders are placed: the shop keeps answering 202, and
// when billing returns every order completes.
func TestBillingOutage(t *testing.T) {
	s := stack(t)
	sku := s.product(t, 100, 20, 0)
	startBilling := stopService(t, "billing")
	var ids []string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ids = append(ids, s.place(t, orderBody("tok_visa", line{sku, 1})))
		time.Sleep(3 * time.Second)
	}
	for _, id := range ids {
		var v view
		s.call(t, "GET", s.shop+"/v1/orders/"+id, nil, nil, &v)
		if v.Status == "CONFIRMED" {
			t.Fatalf("order %s confirmed while billing was down", id)
		}
	}
	startBilling()
	for _, id := range ids {
		s.await(t, id, "CONFIRMED", 60*time.Second)
	}
}

// Inventory killed (no graceful shutdown, as a crash) and started again at once: its
// consumer group gets the partitions back once the dead member's session expires, 10 s
// (ORDERFLOW_KAFKA_SESSION_TIMEOUT), and an order placed meanwhile completes. With
// franz-go's default of 45 s it waited 41-44 s.
func TestCrashedServiceResumesWithinItsSessionTimeout(t *testing.T) {
	s := stack(t)
	sku := s.product(t, 100, 20, 0)
	startInventory := killService(t, "inventory")
	startInventory()
	id := s.place(t, orderBody("tok_visa", line{sku, 1}))
	s.await(t, id, "CONFIRMED", 30*time.Second)
}

// Logistics stopped while a customer cancels: the request waits (the order keeps its
// status, the payment stays captured, nothing is undone on the shop's word alone), and
// when logistics returns it agrees and everything is undone.
func TestLogisticsOutageHoldsCancellation(t *testing.T) {
	s := stack(t)
	sku := s.product(t, 250, 3, 0)
	id := s.place(t, orderBody("tok_visa", line{sku, 1}))
	s.await(t, id, "CONFIRMED", settle)
	s.awaitPrepared(t, id)
	eventually(t, settle, func() string {
		if p := s.scalar(t, "billing", `SELECT status FROM payments WHERE order_id = $1`, id); p != "CAPTURED" {
			return fmt.Sprintf("payment %v, want CAPTURED", p)
		}
		return ""
	})

	startLogistics := stopService(t, "logistics")
	var out map[string]any
	if code := s.call(t, "POST", s.shop+"/v1/orders/"+id+"/cancel", nil, nil, &out); code != 202 || out["cancellation"] != "REQUESTED" {
		t.Fatalf("cancel: %d %v", code, out)
	}
	eventually(t, settle, func() string {
		var v view
		s.call(t, "GET", s.shop+"/v1/orders/"+id, nil, nil, &v)
		if v.Cancellation != "REQUESTED" {
			return fmt.Sprintf("view: cancellation %q, want REQUESTED", v.Cancellation)
		}
		return ""
	})
	time.Sleep(3 * time.Second) // long enough for anything that would act without logistics
	got := []any{
		s.scalar(t, "shop", `SELECT status FROM orders WHERE id = $1`, id),
		s.scalar(t, "billing", `SELECT status FROM payments WHERE order_id = $1`, id),
		s.scalar(t, "inventory", `SELECT status FROM reservations WHERE order_id = $1`, id),
	}
	if !slices.Equal(got, []any{"CONFIRMED", "CAPTURED", "RESERVED"}) {
		t.Fatalf("while logistics was down: shop, payment, stock = %v, want nothing undone", got)
	}

	startLogistics()
	v := s.await(t, id, "CANCELLED", 60*time.Second)
	if v.Cancellation != "CANCELLED" || v.Reason != "customer_request" {
		t.Fatalf("after logistics returned: cancellation %q, reason %q", v.Cancellation, v.Reason)
	}
	s.awaitUndone(t, id, sku, []string{"REFUNDED"}, "VOIDED")
}

// A dispatch can reach the shop before the reports of the order's stock and payment: the
// shop's topics are not ordered among each other, and a consumer catching up on a
// backlog applies them in any order. Here billing is stopped, so the order waits PENDING
// with its stock reserved, and a ShipmentDispatched for it is produced as logistics would
// publish it. The shop confirms and ships the order at once (a dispatch proves stock and
// payment) instead of ignoring it and staying CONFIRMED forever, and once billing is back
// it authorizes and captures.
func TestDispatchOvertakesConfirmation(t *testing.T) {
	s := stack(t)
	sku := s.product(t, 300, 5, 0)
	startBilling := stopService(t, "billing")
	id := s.place(t, orderBody("tok_visa", line{sku, 1}))
	eventually(t, settle, func() string {
		if r := s.scalar(t, "shop", `SELECT stock_reserved FROM orders WHERE id = $1`, id); r != true {
			return "the shop has not heard of the reservation yet"
		}
		return ""
	})

	ctx := context.Background()
	ev := events.New(ctx, "logistics", contract.TopicLogisticsShipments, id, contract.ShipmentDispatched, logistics.ShipmentDispatched{
		OrderID: id, ShipmentID: uuid.NewString(), Carrier: "orderflow-post", TrackingNumber: "OF-OVERTAKE",
		DispatchedAt: time.Now().UTC().Truncate(time.Millisecond)}, events.Cause{CorrelationID: id})
	value, err := serde.New(env("ORDERFLOW_REGISTRY_URL"), 5*time.Second).Encode(ev.Topic, ev.Type.Schema, ev.Payload)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kafka.NewClient(kafka.Config{Brokers: strings.Split(env("ORDERFLOW_KAFKA_BROKERS"), ","), ClientID: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rec := &kgo.Record{Topic: ev.Topic, Key: []byte(id), Value: value, Headers: ev.Metadata.Headers()}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
	s.awaitShopKnows(t, id, "SHIPPED", settle)

	startBilling()
	eventually(t, 60*time.Second, func() string {
		if p := s.scalar(t, "billing", `SELECT status FROM payments WHERE order_id = $1`, id); p != "CAPTURED" {
			return fmt.Sprintf("payment %v, want CAPTURED (OrderConfirmed came with the dispatch)", p)
		}
		return ""
	})
	s.await(t, id, "SHIPPED", settle)
}

// A capture the provider cannot take at first (tok_flaky_capture: unavailable twice) is
// retried with backoff by billing's consumer until it goes through, once.
func TestCaptureRetriedWhileProviderUnavailable(t *testing.T) {
	t.Parallel()
	s := stack(t)
	sku := s.product(t, 1999, 5, 0)
	retries := s.counter(t, "consumer_retries_total", s.billing)
	id := s.place(t, orderBody("tok_flaky_capture", line{sku, 1}))
	s.await(t, id, "CONFIRMED", settle)
	eventually(t, settle, func() string {
		if p := s.scalar(t, "billing", `SELECT status FROM payments WHERE order_id = $1`, id); p != "CAPTURED" {
			return fmt.Sprintf("payment %v, want CAPTURED", p)
		}
		return ""
	})
	if got := s.counter(t, "consumer_retries_total", s.billing) - retries; got < 2 {
		t.Fatalf("billing retried %v times, want at least the two failed captures", got)
	}
	captures := s.scalar(t, "billing", `SELECT count(*) FROM platform_outbox WHERE key = $1
		AND jsonb_path_query_first(headers, '$[*] ? (@.k == "ce_type").v') #>> '{}' = 'orderflow.billing.PaymentCaptured.v1'`, id)
	if captures != int64(1) {
		t.Fatalf("%v PaymentCaptured events, want 1", captures)
	}
}
