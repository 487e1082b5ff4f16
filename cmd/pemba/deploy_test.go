package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine/store/pgstore/pgtest"
)

// deployQueries returns every PromQL expression of the alerting rules and
// of the Grafana dashboard in deploy/, named by where it is.
func deployQueries(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	b, err := os.ReadFile("../../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert, Expr string
			}
		}
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			out["alert "+r.Alert] = r.Expr
		}
	}
	b, err = os.ReadFile("../../deploy/grafana/pemba.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("pemba.json: %v", err)
	}
	for _, p := range dash.Panels {
		for i, tg := range p.Targets {
			out["panel "+p.Title+" #"+string(rune('A'+i))] = tg.Expr
		}
	}
	if len(out) < 20 {
		t.Fatalf("only %d queries found in deploy/", len(out))
	}
	return out
}

var (
	// selectorRE finds a metric name and its optional label matchers. Only
	// names of the families Pemba exports (and Prometheus's own up) are
	// checked; function names and keywords do not start with them.
	selectorRE = regexp.MustCompile(`\b((?:pemba|process|go)_[a-z0-9_]+|up)\b(\{[^}]*\})?`)
	matcherRE  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"`)
	groupingRE = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
)

// TestDeployMetricsExist checks the dashboard and the alerting rules
// against what real servers expose: a Pebble server and a PostgreSQL one
// with a read replica (the primary itself, which is enough to export the
// replica's metrics) are driven through checks, a write, an error and an
// HTTP call, then scraped. Every metric a query names must exist, with
// every label it matches on or groups by, and every exact label value it
// asks for (job and instance come from Prometheus's scrape).
func TestDeployMetricsExist(t *testing.T) {
	families := map[string]*dto.MetricFamily{}
	scrape := func(args ...string) {
		addrs := startServeAll(t, append(args, "-metrics-listen", "127.0.0.1:0", "-http-listen", "127.0.0.1:0")...)
		conn := dial(t, addrs.grpc)
		ctx := context.Background()
		if _, err := pb.NewSchemaServiceClient(conn).WriteSchema(ctx, &pb.WriteSchemaRequest{
			Schema: "definition user {}\ndefinition doc { relation viewer: user\n permission view = viewer }"}); err != nil {
			t.Fatal(err)
		}
		pc := pb.NewPermissionsServiceClient(conn)
		rel := &pb.Relationship{
			Resource: &pb.ObjectReference{ObjectType: "doc", ObjectId: "1"}, Relation: "viewer",
			Subject: &pb.SubjectReference{Object: &pb.ObjectReference{ObjectType: "user", ObjectId: "anne"}},
		}
		if _, err := pc.WriteRelationships(ctx, &pb.WriteRelationshipsRequest{Updates: []*pb.RelationshipUpdate{
			{Operation: pb.RelationshipUpdate_OPERATION_TOUCH, Relationship: rel}}}); err != nil {
			t.Fatal(err)
		}
		full := &pb.Consistency{Requirement: &pb.Consistency_FullyConsistent{FullyConsistent: true}}
		for _, perm := range []string{"view", "view", "nosuch"} {
			pc.CheckPermission(ctx, &pb.CheckPermissionRequest{Consistency: full, Resource: rel.Resource, Permission: perm, Subject: rel.Subject})
		}
		if code, _ := httpGet(t, strings.TrimSuffix(addrs.http, "/v1/")+"/openapi.json"); code != http.StatusOK {
			t.Fatalf("/openapi.json: %d", code)
		}
		_, body := httpGet(t, "http://"+addrs.metrics+"/metrics")
		parser := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := parser.TextToMetricFamilies(strings.NewReader(body))
		if err != nil {
			t.Fatalf("parse /metrics: %v", err)
		}
		for name, mf := range mfs {
			if old, ok := families[name]; ok {
				old.Metric = append(old.Metric, mf.Metric...)
			} else {
				families[name] = mf
			}
		}
	}
	scrape("-datastore", "pebble", "-data-dir", filepath.Join(t.TempDir(), "data"))
	uri, _ := pgtest.NewDatabase(t)
	var out, errOut strings.Builder
	if code := run(context.Background(), []string{"datastore", "migrate", "-datastore-uri", uri}, &out, &errOut); code != 0 {
		t.Fatalf("migrate: %s", errOut.String())
	}
	scrape("-datastore", "postgres", "-datastore-uri", uri, "-datastore-read-replica-uri", uri)

	// family finds the family of a sample name: histograms and summaries
	// expose name_bucket, name_sum and name_count under name.
	family := func(name string) (*dto.MetricFamily, bool) {
		if mf, ok := families[name]; ok {
			return mf, true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok {
				if mf, ok := families[base]; ok && (mf.GetType() == dto.MetricType_HISTOGRAM || mf.GetType() == dto.MetricType_SUMMARY) {
					return mf, true
				}
			}
		}
		return nil, false
	}
	hasLabel := func(mf *dto.MetricFamily, name, value string, exact bool) bool {
		if name == "le" && mf.GetType() == dto.MetricType_HISTOGRAM {
			for _, m := range mf.Metric {
				for _, b := range m.GetHistogram().GetBucket() {
					if !exact || strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64) == value {
						return true
					}
				}
			}
			return false
		}
		for _, m := range mf.Metric {
			for _, l := range m.GetLabel() {
				if l.GetName() == name && (!exact || l.GetValue() == value) {
					return true
				}
			}
		}
		return false
	}
	scrapeLabels := []string{"job", "instance"} // added by Prometheus, not by Pemba
	queries := deployQueries(t)
	names := make([]string, 0, len(queries))
	for where := range queries {
		names = append(names, where)
	}
	slices.Sort(names)
	for _, where := range names {
		expr := queries[where]
		var used []*dto.MetricFamily
		for _, m := range selectorRE.FindAllStringSubmatch(expr, -1) {
			name, matchers := m[1], m[2]
			if name == "up" {
				continue // Prometheus's own, per scrape target
			}
			mf, ok := family(name)
			if !ok {
				t.Errorf("%s: no metric %s on a real server", where, name)
				continue
			}
			used = append(used, mf)
			for _, lm := range matcherRE.FindAllStringSubmatch(matchers, -1) {
				label, op, value := lm[1], lm[2], lm[3]
				if slices.Contains(scrapeLabels, label) {
					continue
				}
				exact := op == "=" && !strings.Contains(value, "$")
				if !hasLabel(mf, label, value, exact) {
					t.Errorf("%s: %s has no label %s%s%q", where, name, label, op, value)
				}
			}
		}
		if len(used) == 0 && !strings.Contains(expr, "up{") {
			t.Errorf("%s: names no metric: %s", where, expr)
		}
		for _, g := range groupingRE.FindAllStringSubmatch(expr, -1) {
			for _, label := range strings.Split(g[1], ",") {
				label = strings.TrimSpace(label)
				if label == "" || slices.Contains(scrapeLabels, label) {
					continue
				}
				if !slices.ContainsFunc(used, func(mf *dto.MetricFamily) bool { return hasLabel(mf, label, "", false) }) {
					t.Errorf("%s: groups by %s, which none of its metrics has", where, label)
				}
			}
		}
	}
}
