// Package contract names every topic and event type of orderflow (DESIGN.md section 3):
// the topics each service owns, and for each event its ce_type and Avro schema, taken
// from the generated types. Services use these names and never spell them out.
package contract

import (
	"github.com/hamba/avro/v2"

	"github.com/orderflow/orderflow/avro/billing"
	"github.com/orderflow/orderflow/avro/crm"
	"github.com/orderflow/orderflow/avro/inventory"
	"github.com/orderflow/orderflow/avro/logistics"
	"github.com/orderflow/orderflow/avro/shop"
	"github.com/orderflow/orderflow/platform/events"
)

// Topics, keyed by order id except TopicInventoryStock (keyed by SKU).
const (
	TopicShopOrders            = "shop.orders"
	TopicInventoryReservations = "inventory.reservations"
	TopicInventoryStock        = "inventory.stock"
	TopicBillingPayments       = "billing.payments"
	TopicLogisticsShipments    = "logistics.shipments"
	TopicCRMEngagements        = "crm.engagements"
)

// Partitions is the partition count of every event topic. Changing it moves keys to
// other partitions and breaks per-aggregate order: it is fixed for the life of a topic.
const Partitions = 6

type schemaer interface{ Schema() avro.Schema }

func typeOf(v schemaer) events.Type { return events.TypeOf(v.Schema()) }

// Event types by publisher.
var (
	OrderPlaced    = typeOf(&shop.OrderPlaced{})
	OrderConfirmed = typeOf(&shop.OrderConfirmed{})
	OrderCancelled = typeOf(&shop.OrderCancelled{})

	OrderCancellationRequested = typeOf(&shop.OrderCancellationRequested{})

	StockReserved = typeOf(&inventory.StockReserved{})
	StockRejected = typeOf(&inventory.StockRejected{})
	StockReleased = typeOf(&inventory.StockReleased{})
	StockLow      = typeOf(&inventory.StockLow{})
	StockReceived = typeOf(&inventory.StockReceived{})

	PaymentAuthorized = typeOf(&billing.PaymentAuthorized{})
	PaymentFailed     = typeOf(&billing.PaymentFailed{})
	PaymentVoided     = typeOf(&billing.PaymentVoided{})
	PaymentCaptured   = typeOf(&billing.PaymentCaptured{})
	PaymentRefunded   = typeOf(&billing.PaymentRefunded{})
	InvoiceIssued     = typeOf(&billing.InvoiceIssued{})
	InvoiceVoided     = typeOf(&billing.InvoiceVoided{})

	ShipmentPrepared   = typeOf(&logistics.ShipmentPrepared{})
	ShipmentDispatched = typeOf(&logistics.ShipmentDispatched{})
	ShipmentCancelled  = typeOf(&logistics.ShipmentCancelled{})

	FollowUpScheduled = typeOf(&crm.FollowUpScheduled{})
	CustomerNotified  = typeOf(&crm.CustomerNotified{})
)

// Cancellation reasons carried by OrderCancelled.
const (
	ReasonOutOfStock      = "out_of_stock"
	ReasonPaymentDeclined = "payment_declined"
	ReasonCustomerRequest = "customer_request"
)
