package logisticsv1

import _ "embed"

// OpenAPI is the OpenAPI (Swagger 2.0) document of the logistics API, generated from
// logistics.proto by protoc-gen-openapiv2; the service serves it at /openapi.json.
//
//go:embed logistics.swagger.json
var OpenAPI []byte
