package inventoryv1

import _ "embed"

// OpenAPI is the OpenAPI (Swagger 2.0) document of the inventory API, generated from
// inventory.proto by protoc-gen-openapiv2; the service serves it at /openapi.json.
//
//go:embed inventory.swagger.json
var OpenAPI []byte
