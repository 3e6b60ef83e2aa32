// Command inventory runs the orderflow inventory service: stock per SKU and all-or-nothing reservations.
//
// Usage: inventory [serve | migrate | dlq ... | version]. Configuration comes from the
// environment (see the README).
package main

import (
	"github.com/orderflow/orderflow/platform/boot"
	"github.com/orderflow/orderflow/services/inventory/internal/service"
)

// version is set at build time: -ldflags "-X main.version=...".
var version = "dev"

func main() {
	cfg := &service.Config{}
	boot.Main(service.Spec(version, cfg), cfg)
}
