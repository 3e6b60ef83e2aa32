package shopv1

import _ "embed"

// OpenAPI is the OpenAPI (Swagger 2.0) document of the shop API, generated from
// shop.proto by protoc-gen-openapiv2; the service serves it at /openapi.json.
//
//go:embed shop.swagger.json
var OpenAPI []byte
