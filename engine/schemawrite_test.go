package engine_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/eval"
	"github.com/pemba-authz/pemba/engine/store"
)

// checkDeadline is the deadline of each check made during a schema write:
// far above a check's cost, far below a big schema write's.
const checkDeadline = 10 * time.Second

// TestChecksDuringBigSchemaWrite writes a schema of 5,000 chained
// definitions while checks and relationship writes go on. While the new
// schema is prepared (edit is the first step, and holds it here until the
// test has checked and written), requests on the old schema are answered
// within their deadline; then checks run concurrently until the write
// commits, and afterwards the first check on the new schema compiles
// nothing.
func TestChecksDuringBigSchemaWrite(t *testing.T) {
	f := newFixture(t, engine.Options{})
	f.touch("document:1#viewer@user:tom")
	big := testSchema + strings.TrimPrefix(chainSchema(5_000), "definition user {}\n")

	entered, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, _, err := f.eng.UpdateSchema(f.ctx, "test", func(string) (string, error) {
			close(entered)
			<-release
			return big, nil
		})
		done <- err
	}()
	<-entered

	checkTom := func() error {
		ctx, cancel := context.WithTimeout(f.ctx, checkDeadline)
		defer cancel()
		r := mustParse(t, "document:1#view@user:tom")
		resp, err := f.eng.Check(ctx, engine.CheckRequest{Consistency: engine.FullyConsistent(), CheckRequest: engine.CheckQuery{Resource: r.Resource, Permission: r.Relation, Subject: r.Subject}})
		if err == nil && resp.Permissionship != eval.HasPermission {
			err = errors.New("tom lost view on document:1")
		}
		return err
	}
	if err := checkTom(); err != nil {
		t.Fatalf("check while the schema write prepares: %v", err)
	}
	wctx, cancel := context.WithTimeout(f.ctx, checkDeadline)
	_, err := f.eng.WriteRelationships(wctx, engine.WriteRequest{Caller: "test", Updates: []engine.Update{{Op: store.OpTouch, Relationship: mustParse(t, "document:2#viewer@user:ann")}}})
	cancel()
	if err != nil {
		t.Fatalf("relationship write while the schema write prepares: %v", err)
	}

	// Checks race the compile, analysis and commit of the new schema.
	close(release)
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				if err := checkTom(); err != nil {
					errs <- err
					return
				}
				select {
				case err := <-done:
					done <- err // for the other checker and the test
					return
				default:
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("check during the schema write: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("schema write: %v", err)
	}
	before := f.eng.Stats().SchemaCompilesOnRead
	if got, _ := f.check(engine.FullyConsistent(), "d4999:x#view@user:tom"); got != eval.NoPermission {
		t.Fatalf("check on the new schema: %v", got)
	}
	if err := checkTom(); err != nil {
		t.Fatal(err)
	}
	if n := f.eng.Stats().SchemaCompilesOnRead - before; n != 0 {
		t.Fatalf("the first checks after the schema write compiled the schema %d times, want 0", n)
	}
}

// TestUpdateSchemaRetriesWhenSchemaMoves: a schema written while another
// write prepares makes that one prepare again from the new schema, so no
// write is lost.
func TestUpdateSchemaRetriesWhenSchemaMoves(t *testing.T) {
	f := newFixture(t, engine.Options{})
	entered, release := make(chan struct{}), make(chan struct{})
	var (
		mu    sync.Mutex
		edits []string
	)
	done := make(chan error, 1)
	go func() {
		_, _, err := f.eng.UpdateSchema(f.ctx, "test", func(cur string) (string, error) {
			mu.Lock()
			edits = append(edits, cur)
			first := len(edits) == 1
			mu.Unlock()
			if first {
				close(entered)
				<-release
			}
			return cur + "\ndefinition second {}\n", nil
		})
		done <- err
	}()
	<-entered
	if _, _, err := f.eng.WriteSchema(f.ctx, "test", testSchema+"\ndefinition first {}\n"); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(edits) != 2 || !strings.Contains(edits[1], "definition first") {
		t.Fatalf("edit saw %d schemas, want 2 (the second with definition first)", len(edits))
	}
	rs, err := f.eng.ReadSchema(f.ctx, engine.FullyConsistent())
	if err != nil {
		t.Fatal(err)
	}
	if text := rs.Text; !strings.Contains(text, "definition first") || !strings.Contains(text, "definition second") {
		t.Fatalf("schema lost a write:\n%s", rs.Text)
	}
}

// TestSchemaWriteCancelled: a schema write whose context ends while it
// prepares stops with the context's error and commits nothing.
func TestSchemaWriteCancelled(t *testing.T) {
	f := newFixture(t, engine.Options{})
	ctx, cancel := context.WithCancel(f.ctx)
	_, _, err := f.eng.UpdateSchema(ctx, "test", func(string) (string, error) {
		cancel() // the client gives up while the schema is prepared
		return chainSchema(1_000), nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("UpdateSchema = %v, want context.Canceled", err)
	}
	rs, err := f.eng.ReadSchema(f.ctx, engine.FullyConsistent())
	if err != nil || rs.Text != testSchema {
		t.Fatalf("schema after a cancelled write: %v\n%s", err, rs.Text)
	}
}

// TestSchemaLimits: each schema limit refuses a schema over it with a
// *LimitError that names it.
func TestSchemaLimits(t *testing.T) {
	for _, tc := range []struct {
		name   string
		limits engine.Limits
		schema string
		want   string
	}{
		{"definitions", engine.Limits{MaxSchemaDefinitions: 100}, chainSchema(101), "102 definitions in the schema exceeds the limit of 100"},
		{"operators", engine.Limits{MaxPermissionOperators: 3}, genHostileSchema(shapeOperatorChain, 4, nil, ""), "4 operators in permission doc#p (schema:5:14) exceeds the limit of 3"},
		{"analysis work", engine.Limits{MaxSchemaAnalysisWork: 1000}, chainSchema(200), "units of schema analysis work"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, engine.Options{Limits: tc.limits})
			_, _, err := f.eng.WriteSchema(f.ctx, "test", tc.schema)
			var le *engine.LimitError
			if !errors.As(err, &le) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("WriteSchema = %v, want a *LimitError with %q", err, tc.want)
			}
		})
	}
}
