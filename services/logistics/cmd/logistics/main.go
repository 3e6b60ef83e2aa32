// Command logistics runs the orderflow logistics service: shipments, shipping labels and dispatch.
//
// Usage: logistics [serve | migrate | dlq ... | version]. Configuration comes from the
// environment (see the README).
package main

import (
	"github.com/orderflow/orderflow/platform/boot"
	"github.com/orderflow/orderflow/services/logistics/internal/service"
)

// version is set at build time: -ldflags "-X main.version=...".
var version = "dev"

func main() {
	cfg := &service.Config{}
	boot.Main(service.Spec(version, cfg), cfg)
}
