// Command shop runs the orderflow shop service: the HTTP API where orders are placed,
// and the order's life cycle.
//
// Usage: shop [serve | migrate | dlq ... | version]. Configuration comes from the
// environment (see the README).
package main

import (
	"github.com/orderflow/orderflow/platform/boot"
	"github.com/orderflow/orderflow/services/shop/internal/service"
)

// version is set at build time: -ldflags "-X main.version=...".
var version = "dev"

func main() {
	cfg := &service.Config{}
	boot.Main(service.Spec(version, cfg), cfg)
}
