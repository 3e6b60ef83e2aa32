package billingv1

import _ "embed"

// OpenAPI is the OpenAPI (Swagger 2.0) document of the billing API, generated from
// billing.proto by protoc-gen-openapiv2; the service serves it at /openapi.json.
//
//go:embed billing.swagger.json
var OpenAPI []byte
