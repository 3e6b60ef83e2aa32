package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
)

// A page as a service serves it: the lag gauges among everything else.
const metricsPage = `# TYPE consumer_lag gauge
consumer_lag{consumer_group="shop.workflow",partition="0",topic="inventory.reservations"} 3
consumer_lag{consumer_group="shop.workflow",partition="1",topic="inventory.reservations"} 0
# TYPE projection_lag gauge
projection_lag{partition="0",read_model="order_view",topic="shop.orders"} 4
# TYPE consumer_lag_seconds gauge
consumer_lag_seconds{consumer_group="shop.workflow"} 9
# TYPE kafka_client_requests_total counter
kafka_client_requests_total{request="Fetch"} 120
kafka_client_requests_total{request="Produce"} 30
`

// The generator asks only for the families it reads, uncompressed, and still reads
// them right from a server that ignores the filter and sends the whole page.
func TestScrapeAsksForItsFamiliesOnly(t *testing.T) {
	var asked [][]string
	var encodings []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.URL.Query()["name[]"])
		encodings = append(encodings, r.Header.Get("Accept-Encoding"))
		fmt.Fprint(w, metricsPage)
	}))
	defer srv.Close()
	g := &generator{http: srv.Client(), env: benchEnv{metrics: []string{srv.URL + "/metrics"}, services: []string{"shop"}}}

	lag, err := g.lagOf(context.Background(), srv.URL+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if lag != 7 {
		t.Errorf("lag %d, want 7 (consumer_lag 3 + projection_lag 4, nothing else)", lag)
	}
	reqs := g.kafkaRequests(context.Background())
	if reqs == nil || reqs.byKind["Fetch"] != 120 || reqs.byKind["Produce"] != 30 || reqs.fetches["shop"] != 120 {
		t.Errorf("kafka requests %+v, want Fetch 120 and Produce 30, shop's fetches 120", reqs)
	}

	want := [][]string{{"consumer_lag", "projection_lag"}, {"kafka_client_requests_total"}}
	if len(asked) != len(want) || !slices.Equal(asked[0], want[0]) || !slices.Equal(asked[1], want[1]) {
		t.Errorf("asked for the families %q, want %q", asked, want)
	}
	for _, e := range encodings {
		if e != "identity" {
			t.Errorf("Accept-Encoding %q, want identity", e)
		}
	}
}
