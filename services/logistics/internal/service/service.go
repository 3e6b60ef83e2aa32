// Package service wires the logistics service: its configuration, the topics it owns,
// the events it publishes and its components. It holds no business rules.
package service

import (
	"context"
	"errors"

	"github.com/orderflow/orderflow/avro/contract"
	"github.com/orderflow/orderflow/platform/boot"
	"github.com/orderflow/orderflow/platform/config"
	"github.com/orderflow/orderflow/platform/consumer"
	"github.com/orderflow/orderflow/platform/kafka"
	"github.com/orderflow/orderflow/services/logistics/internal/app"
	"github.com/orderflow/orderflow/services/logistics/internal/ports/events"
	loghttp "github.com/orderflow/orderflow/services/logistics/internal/ports/http"
	"github.com/orderflow/orderflow/services/logistics/migrations"
)

// Name is the service's name in logs, metrics, traces and ce_source.
const Name = app.Source

// Config is the logistics service's configuration.
type Config struct {
	config.Base
	config.Lingering
}

// Validate checks the whole configuration.
func (c *Config) Validate() error {
	return errors.Join(c.Base.Validate(), c.Lingering.Validate())
}

// Spec describes the service to the shared runtime.
func Spec(version string, cfg *Config) boot.Spec {
	return boot.Spec{
		Name:       Name,
		Version:    version,
		Migrations: migrations.FS,
		Topics:     []kafka.Topic{kafka.EventTopic(contract.TopicLogisticsShipments, contract.Partitions)},
		Publishes: []boot.Publication{
			{Topic: contract.TopicLogisticsShipments, Type: contract.ShipmentPrepared, Linger: true},
			{Topic: contract.TopicLogisticsShipments, Type: contract.ShipmentDispatched},
			{Topic: contract.TopicLogisticsShipments, Type: contract.ShipmentCancelled},
		},
		ConsumerGroups: []string{events.ShipmentsGroup},
		Wire: func(ctx context.Context, d *boot.Deps) ([]boot.Runner, error) {
			a := app.New(d.Pool, d.Outbox)
			if err := loghttp.Register(ctx, d.API, a, d.Pool, d.Log, cfg.AdminToken); err != nil {
				return nil, err
			}
			c, err := d.NewConsumerWith(events.ShipmentsGroup, consumer.Options{Linger: cfg.ConsumerLinger, Preload: a.PreloadShipments, GenericPlans: true}, events.Topics...)
			if err != nil {
				return nil, err
			}
			events.Register(c, a)
			return []boot.Runner{c.Run}, nil
		},
	}
}
