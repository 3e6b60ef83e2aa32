package boot

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"

	"github.com/orderflow/orderflow/platform/config"
	"github.com/orderflow/orderflow/platform/dlq"
	"github.com/orderflow/orderflow/platform/httpserver"
	"github.com/orderflow/orderflow/platform/kafka"
	"github.com/orderflow/orderflow/platform/projection"
)

const dlqUsage = `usage:
  dlq list    [--group G] [--json]        every dead letter of the group
  dlq show    [--group G] OFFSET          one dead letter with all its headers
  dlq redrive [--group G] (--all | OFFSET...)  send dead letters back to their source topic`

// dlqCommand implements `<service> dlq ...`. It talks to Kafka with the service's own
// credentials: who may run it is decided by who holds them.
func dlqCommand(ctx context.Context, spec Spec, base *config.Base, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return &UsageError{Msg: dlqUsage}
	}
	sub := args[0]
	fs := flag.NewFlagSet("dlq "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	group := fs.String("group", "", "consumer group")
	asJSON := fs.Bool("json", false, "print JSON")
	all := fs.Bool("all", false, "redrive every dead letter")
	if err := fs.Parse(args[1:]); err != nil {
		return &UsageError{Msg: err.Error() + "\n" + dlqUsage}
	}
	g, err := pickGroup(spec, *group)
	if err != nil {
		return err
	}
	kcfg := kafkaConfig(spec, base, slog.New(slog.DiscardHandler))
	offsets, err := parseOffsets(fs.Args())
	if err != nil {
		return err
	}
	switch sub {
	case "list":
		recs, err := dlq.Read(ctx, kcfg, g)
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(recs)
		}
		fmt.Fprintf(stdout, "%d dead letters in %s\n", len(recs), kafka.DeadLetterTopicName(g))
		for _, r := range recs {
			fmt.Fprintln(stdout, r.Summary())
		}
		return nil
	case "show":
		if len(offsets) != 1 {
			return &UsageError{Msg: "dlq show takes one OFFSET\n" + dlqUsage}
		}
		recs, err := dlq.Read(ctx, kcfg, g)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(recs, func(r dlq.Record) bool { return r.Offset == offsets[0] })
		if i < 0 {
			return fmt.Errorf("no dead letter at offset %d of %s", offsets[0], kafka.DeadLetterTopicName(g))
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(recs[i])
	case "redrive":
		if *all == (len(offsets) > 0) {
			return &UsageError{Msg: "dlq redrive takes --all or OFFSETs, not both or neither\n" + dlqUsage}
		}
		recs, err := dlq.Redrive(ctx, kcfg, g, offsets)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "re-drove %d dead letters of %s\n", len(recs), kafka.DeadLetterTopicName(g))
		return nil
	default:
		return &UsageError{Msg: fmt.Sprintf("unknown dlq command %q\n%s", sub, dlqUsage)}
	}
}

// deadLetterGroups names every dead-letter topic of the service: its consumer groups',
// and its read models' (live and replay).
func deadLetterGroups(spec Spec) []string {
	groups := slices.Clone(spec.ConsumerGroups)
	for _, m := range spec.Models {
		g := projection.DeadLetterGroup(spec.Name, m.Name)
		groups = append(groups, g, g+".replay")
	}
	return groups
}

func pickGroup(spec Spec, group string) (string, error) {
	groups := deadLetterGroups(spec)
	if group == "" {
		if len(groups) == 1 {
			return groups[0], nil
		}
		return "", &UsageError{Msg: fmt.Sprintf("--group is required; groups of %s: %v", spec.Name, groups)}
	}
	if !slices.Contains(groups, group) {
		return "", &UsageError{Msg: fmt.Sprintf("unknown group %q; groups of %s: %v", group, spec.Name, groups)}
	}
	return group, nil
}

func parseOffsets(args []string) ([]int64, error) {
	var out []int64
	for _, a := range args {
		o, err := strconv.ParseInt(a, 10, 64)
		if err != nil || o < 0 {
			return nil, &UsageError{Msg: fmt.Sprintf("offset %q is not a non-negative integer", a)}
		}
		out = append(out, o)
	}
	return out, nil
}

// dlqRoutes serves the dead letters over HTTP behind the admin token:
//
//	GET  /admin/dlq/{group}          list
//	POST /admin/dlq/{group}/redrive  {"all": true} or {"offsets": [3, 4]}
func dlqRoutes(srv *httpserver.Server, spec Spec, kcfg kafka.Config, token string) {
	srv.Handle("GET /admin/dlq/{group}", httpserver.RequireToken(token, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g, err := pickGroup(spec, r.PathValue("group"))
		if err != nil {
			httpserver.WriteError(w, http.StatusNotFound, "unknown_group", "group", err.Error())
			return
		}
		recs, err := dlq.Read(r.Context(), kcfg, g)
		if err != nil {
			httpserver.WriteError(w, http.StatusServiceUnavailable, "kafka_unavailable", "", err.Error())
			return
		}
		httpserver.WriteJSON(w, http.StatusOK, map[string]any{"group": g, "dead_letters": recs})
	})))
	srv.Handle("POST /admin/dlq/{group}/redrive", httpserver.RequireToken(token, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g, err := pickGroup(spec, r.PathValue("group"))
		if err != nil {
			httpserver.WriteError(w, http.StatusNotFound, "unknown_group", "group", err.Error())
			return
		}
		var body struct {
			All     bool    `json:"all"`
			Offsets []int64 `json:"offsets"`
		}
		if err := httpserver.DecodeJSON(w, r, &body, 1<<16); err != nil {
			err.Message += `; send {"all": true} or {"offsets": [...]}`
			err.Write(w)
			return
		}
		if body.All == (len(body.Offsets) > 0) {
			httpserver.WriteError(w, http.StatusBadRequest, "invalid_body", "offsets", "give either \"all\": true or a non-empty \"offsets\"")
			return
		}
		recs, err := dlq.Redrive(r.Context(), kcfg, g, body.Offsets)
		if err != nil {
			httpserver.WriteError(w, http.StatusUnprocessableEntity, "redrive_failed", "offsets", err.Error())
			return
		}
		httpserver.WriteJSON(w, http.StatusOK, map[string]any{"group": g, "redriven": len(recs)})
	})))
}
