// Package service wires the inventory service: its configuration, the topics it owns,
// the events it publishes and its components. It holds no business rules.
package service

import (
	"context"

	"github.com/orderflow/orderflow/avro/contract"
	"github.com/orderflow/orderflow/platform/boot"
	"github.com/orderflow/orderflow/platform/config"
	"github.com/orderflow/orderflow/platform/consumer"
	"github.com/orderflow/orderflow/platform/kafka"
	"github.com/orderflow/orderflow/platform/projection"
	"github.com/orderflow/orderflow/services/inventory/internal/app"
	"github.com/orderflow/orderflow/services/inventory/internal/ports/events"
	invhttp "github.com/orderflow/orderflow/services/inventory/internal/ports/http"
	"github.com/orderflow/orderflow/services/inventory/migrations"
)

// Name is the service's name in logs, metrics, traces and ce_source.
const Name = app.Source

// Config is the inventory service's configuration.
type Config struct {
	config.Base
}

// Spec describes the service to the shared runtime.
func Spec(version string, cfg *Config) boot.Spec {
	return boot.Spec{
		Name:       Name,
		Version:    version,
		Migrations: migrations.FS,
		Topics: []kafka.Topic{
			kafka.EventTopic(contract.TopicInventoryReservations, contract.Partitions),
			kafka.EventTopic(contract.TopicInventoryStock, contract.Partitions),
		},
		Publishes: []boot.Publication{
			{Topic: contract.TopicInventoryReservations, Type: contract.StockReserved},
			{Topic: contract.TopicInventoryReservations, Type: contract.StockRejected},
			{Topic: contract.TopicInventoryReservations, Type: contract.StockReleased},
			{Topic: contract.TopicInventoryStock, Type: contract.StockLow, Linger: true},
			{Topic: contract.TopicInventoryStock, Type: contract.StockReceived},
		},
		ConsumerGroups: []string{events.ReservationsGroup},
		Models:         []*projection.Model{events.Availability()},
		Wire: func(ctx context.Context, d *boot.Deps) ([]boot.Runner, error) {
			a := app.New(d.Pool, d.Outbox)
			if err := invhttp.Register(ctx, d.API, a, d.Pool, d.Log, cfg.AdminToken); err != nil {
				return nil, err
			}
			// The group locks stock rows by SKU, which many orders share, and a batch cannot
			// know all its SKUs up front (a release finds them in the reservation): batches
			// apply one at a time, so they cannot deadlock, and grow with the load.
			serial := consumer.Options{Serial: true, Preload: a.PreloadReservations, GenericPlans: true}
			reservations, err := d.NewConsumerWith(events.ReservationsGroup, serial, events.ReservationTopics...)
			if err != nil {
				return nil, err
			}
			events.RegisterReservations(reservations, a)
			return []boot.Runner{reservations.Run}, nil
		},
	}
}
