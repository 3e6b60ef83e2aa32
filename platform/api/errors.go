package api

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/orderflow/orderflow/platform/httpserver"
)

// Problem is how an error is shown to a REST client.
type Problem struct {
	HTTP    int
	Code    string
	Field   string
	Message string
}

// ProblemOf describes err for HTTP: statuses built by Error carry their reason, field
// and HTTP status; the gateway's own decoding errors (protojson, query parameters) are
// recognised by their wording so that they too name the field.
func ProblemOf(err error) Problem {
	st := status.Convert(err)
	p := Problem{HTTP: httpStatus(st.Code()), Code: defaultReason(st.Code()), Message: st.Message()}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == Domain {
			p.Code, p.Field = info.GetReason(), info.GetMetadata()["field"]
			if h, err := strconv.Atoi(info.GetMetadata()["http_status"]); err == nil {
				p.HTTP = h
			}
			return p
		}
	}
	if st.Code() == codes.InvalidArgument {
		p.Code, p.Field = classifyDecodeError(st.Message())
	}
	return p
}

var decodeErrors = []struct {
	re   *regexp.Regexp
	code string
	// jsonName: the field is named by protojson's JSON name, not as the client wrote it.
	jsonName bool
}{
	{regexp.MustCompile(`unknown field "([^"]+)"`), "unknown_field", false},
	{regexp.MustCompile(`unknown query parameter "([^"]+)"`), "unknown_field", false},
	{regexp.MustCompile(`invalid value for \S+ field (\w+)`), "invalid_field", true},
	{regexp.MustCompile(`invalid value for \S+ type`), "malformed_json", false},
	{regexp.MustCompile(`parsing field "([^"]+)"`), "invalid_field", false},
	{regexp.MustCompile(`duplicate field "([^"]+)"`), "invalid_field", false},
	{regexp.MustCompile(`too many values for field "([^"]+)"`), "invalid_field", false},
	{regexp.MustCompile(`type mismatch for field "([^"]+)"`), "invalid_field", false},
	{regexp.MustCompile(`invalid URL escape|invalid semicolon separator in query`), "malformed_query", false},
}

func classifyDecodeError(msg string) (code, field string) {
	for _, d := range decodeErrors {
		if m := d.re.FindStringSubmatch(msg); m != nil {
			if len(m) > 1 {
				field = m[1]
				if d.jsonName {
					field = protoName(field)
				}
			}
			return d.code, field
		}
	}
	return "malformed_json", ""
}

// protoName turns the JSON name protojson's errors use (unitPriceMinor) into the field's
// proto name (unit_price_minor), the name every orderflow error and document uses. Every
// field of the orderflow protos is lower snake case, so the two map one to one.
func protoName(jsonName string) string {
	var b strings.Builder
	for _, r := range jsonName {
		if unicode.IsUpper(r) {
			b.WriteByte('_')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

func defaultReason(c codes.Code) string {
	switch c {
	case codes.InvalidArgument:
		return "invalid_request"
	case codes.NotFound:
		return "not_found"
	case codes.AlreadyExists:
		return "already_exists"
	case codes.FailedPrecondition, codes.Aborted:
		return "conflict"
	case codes.Unauthenticated:
		return "unauthenticated"
	case codes.PermissionDenied:
		return "forbidden"
	case codes.Canceled:
		return "client_closed"
	case codes.DeadlineExceeded:
		return "timeout"
	case codes.Unavailable, codes.ResourceExhausted:
		return "unavailable"
	}
	return "internal"
}

func httpStatus(c codes.Code) int {
	switch c {
	case codes.FailedPrecondition:
		return http.StatusConflict // a state conflict, not a malformed request
	case codes.Unknown, codes.Internal, codes.DataLoss:
		return http.StatusInternalServerError
	}
	return runtime.HTTPStatusFromCode(c)
}

// writeError is the gateway's error handler: every failure of a REST call, whether the
// handler's or the gateway's own (decoding, query parameters), becomes the JSON error.
func writeError(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, _ *http.Request, err error) {
	p := ProblemOf(err)
	if p.HTTP == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="orderflow-admin"`)
	}
	httpserver.WriteError(w, p.HTTP, p.Code, p.Field, p.Message)
}

func routingError(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, code int) {
	switch code {
	case http.StatusMethodNotAllowed:
		httpserver.WriteError(w, code, "method_not_allowed", "", r.Method+" is not allowed on "+r.URL.Path)
	case http.StatusNotFound:
		httpserver.WriteError(w, code, "no_route", "", "no route for "+r.Method+" "+r.URL.Path)
	default:
		httpserver.WriteError(w, code, "bad_route", "", http.StatusText(code))
	}
}
