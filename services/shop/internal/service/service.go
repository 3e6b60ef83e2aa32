// Package service wires the shop service: its configuration, the topics it owns, the
// events it publishes and its components. It holds no business rules.
package service

import (
	"context"

	"github.com/orderflow/orderflow/avro/contract"
	"github.com/orderflow/orderflow/platform/boot"
	"github.com/orderflow/orderflow/platform/config"
	"github.com/orderflow/orderflow/platform/consumer"
	"github.com/orderflow/orderflow/platform/kafka"
	"github.com/orderflow/orderflow/platform/projection"
	"github.com/orderflow/orderflow/services/shop/internal/app"
	"github.com/orderflow/orderflow/services/shop/internal/ports/events"
	shophttp "github.com/orderflow/orderflow/services/shop/internal/ports/http"
	"github.com/orderflow/orderflow/services/shop/migrations"
)

// Name is the service's name in logs, metrics, traces and ce_source.
const Name = app.Source

// Config is the shop service's configuration.
type Config struct {
	config.Base
}

// Spec describes the service to the shared runtime.
func Spec(version string, cfg *Config) boot.Spec {
	return boot.Spec{
		Name:       Name,
		Version:    version,
		Migrations: migrations.FS,
		Topics:     []kafka.Topic{kafka.EventTopic(contract.TopicShopOrders, contract.Partitions)},
		Publishes: []boot.Publication{
			{Topic: contract.TopicShopOrders, Type: contract.OrderPlaced},
			{Topic: contract.TopicShopOrders, Type: contract.OrderConfirmed, Linger: true},
			{Topic: contract.TopicShopOrders, Type: contract.OrderCancelled},
			{Topic: contract.TopicShopOrders, Type: contract.OrderCancellationRequested},
		},
		ConsumerGroups: []string{events.WorkflowGroup},
		Models:         []*projection.Model{events.OrderView()},
		Wire: func(ctx context.Context, d *boot.Deps) ([]boot.Runner, error) {
			a := app.New(d.Pool, d.Outbox)
			if err := shophttp.Register(ctx, d.API, a, d.Pool, d.Log, cfg.AdminToken); err != nil {
				return nil, err
			}
			workflow, err := d.NewConsumerWith(events.WorkflowGroup, consumer.Options{Preload: a.PreloadOrders, GenericPlans: true}, events.WorkflowTopics...)
			if err != nil {
				return nil, err
			}
			events.RegisterWorkflow(workflow, a)
			return []boot.Runner{workflow.Run}, nil
		},
	}
}
