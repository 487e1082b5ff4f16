package playground

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pemba-authz/pemba/engine/validation"
	"github.com/pemba-authz/pemba/internal/browsertest"
)

// TestBrowser drives the page in a real, headless Chromium: a schema
// error is marked on its line, fixing it clears the mark, an assertion
// passes, a check draws its Expand tree with the granting path
// highlighted, the download is a validation file that runs, and the
// enterprise example loads and passes. It saves a
// screenshot under the test's temp dir, and also at
// $PEMBA_PLAYGROUND_SCREENSHOT when set, a path relative to the module's
// root (the README's image, made from the repository's root with
// PEMBA_PLAYGROUND_SCREENSHOT=docs/img/playground.png go test ./api/playground -run TestBrowser).
func TestBrowser(t *testing.T) {
	srv := httptest.NewServer(newTestHandler())
	defer srv.Close()
	// Any script exception or console error (a CSP violation, say) fails
	// the test.
	bctx := browsertest.Start(t, 1600, 1200)
	ctx, cancel := context.WithTimeout(bctx, 3*time.Minute)
	defer cancel()

	const (
		schemaTA = "#pane-schema textarea"
		relsTA   = "#pane-relationships textarea"
		assertTA = "#pane-assertions textarea"
	)
	do := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	// eval runs a script and returns its value.
	eval := func(script string) any {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[any](script))
		if err != nil {
			t.Fatalf("%s: %v", script, err)
		}
		return v
	}
	strs := func(script string) []string {
		t.Helper()
		var out []string
		for _, v := range eval(script).([]any) {
			out = append(out, fmt.Sprint(v))
		}
		return out
	}
	// until waits until the script's value is true. Typing fires runs
	// part way (each key is an input event), so the tests wait for the
	// answer to the whole text, not for the first answer of its shape.
	until := func(step, script, show string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](script, chromedp.WithPollingTimeout(2*time.Minute))); err != nil {
			t.Fatalf("%s: %v (the page shows %v)", step, err, eval(show))
		}
	}
	count := func(sel string) int {
		t.Helper()
		return int(eval(fmt.Sprintf("document.querySelectorAll(%q).length", sel)).(float64))
	}

	do("load the page",
		chromedp.Navigate(srv.URL+"/playground/"),
		// The starter example runs when the page loads.
		chromedp.WaitVisible(`#assertion-results li.pass`),
		chromedp.WaitVisible(`#answer.has`),
	)

	// The schema, typed with a mistake on line 5: "viewr".
	badSchema := "definition user {}\n\ndefinition document {\n  relation viewer: user\n  permission view = viewr + owner\n  relation owner: user\n}"
	// Empty the panes and the check box (no input event: nothing runs
	// until the typing below).
	eval(`document.querySelectorAll("textarea, #check").forEach(e => { e.value = ""; })`)
	const schemaProblems = `[...document.querySelectorAll("#pane-schema .problems li")].map(li => li.textContent)`
	do("type a schema with an error", chromedp.SendKeys(schemaTA, badSchema))
	// One problem, on line 5, about "viewr": only the whole text has it
	// (a prefix lacks the closing brace, or stops inside the name).
	until("the error is listed", schemaProblems+`.join("|").match(/^5:21: .*"viewr"[^|]*$/) !== null`, schemaProblems)
	do("the error is marked on its line", chromedp.WaitVisible(`#pane-schema .gutter div.err[data-line="5"]`))
	if marks := strs(`[...document.querySelectorAll("#pane-schema .mark.err, #pane-schema .gutter .err")].map(m => m.dataset.line)`); !slices.Equal(marks, []string{"5", "5"}) {
		t.Errorf("marked lines (mark, gutter) = %q, want line 5 in both", marks)
	}

	// Select "viewr" and type over it, as an author would.
	eval(`(() => { const ta = document.querySelector("#pane-schema textarea");
		const i = ta.value.indexOf("viewr"); ta.focus(); ta.setSelectionRange(i, i + 5); })()`)
	do("fix it",
		chromedp.KeyEvent("viewer"),
		chromedp.WaitNotPresent(`#pane-schema .gutter div.err`),
	)

	do("run an assertion",
		chromedp.SendKeys(relsTA, "document:readme#viewer@user:anne\ndocument:readme#owner@user:bob"),
		chromedp.SendKeys(assertTA, "assertions:\n  assertTrue:\n    - document:readme#view@user:anne\n  assertFalse:\n    - document:readme#owner@user:anne\n"),
	)
	const results = `[...document.querySelectorAll("#assertion-results li")].map(li => li.className + " " + li.textContent)`
	until("the assertions pass", results+`.join("|") === "pass assertTrue document:readme#view@user:anne|pass assertFalse document:readme#owner@user:anne"`, results)
	if lines := strs(`[...document.querySelectorAll("#pane-assertions .gutter .pass")].map(d => d.dataset.line)`); !slices.Equal(lines, []string{"3", "5"}) {
		t.Errorf("lines marked as passing: %q, want 3 and 5", lines)
	}

	do("check a permission",
		chromedp.SendKeys("#check", "document:readme#view@user:anne\n"),
		chromedp.WaitVisible(`#answer.has[data-check="document:readme#view@user:anne"]`),
		chromedp.WaitVisible(`#graph .node.grants`),
	)
	granting := strs(`[...document.querySelectorAll("#graph .node.grants")].map(g => g.dataset.name)`)
	all := strs(`[...document.querySelectorAll("#graph .node")].map(g => g.dataset.name)`)
	matched := strs(`[...document.querySelectorAll("#graph .node.grants text.match")].map(t => t.textContent.trim())`)
	if want := []string{"document:readme#view", "document:readme#viewer"}; !slices.Equal(granting, want) {
		t.Errorf("highlighted nodes = %q, want %q (all nodes %q)", granting, want, all)
	}
	if grantEdges, edges := count("#graph path.edge.grants"), count("#graph path.edge"); !slices.Contains(all, "document:readme#owner") ||
		!slices.Equal(matched, []string{"user:anne"}) || grantEdges != 1 || edges != 2 {
		t.Errorf("graph: nodes %q, matched %q, %d highlighted edges of %d", all, matched, grantEdges, edges)
	}
	shot(t, ctx, "check")

	// The download: the blob the page saves, caught before it leaves.
	eval(`window.saved = null;
		URL.createObjectURL = (blob) => { blob.text().then((text) => { window.saved = text; }); return "blob:caught"; };
		URL.revokeObjectURL = () => {};
		HTMLAnchorElement.prototype.click = function () { window.savedAs = this.download; };`)
	do("download", chromedp.Click("#download"))
	saved, err := chromedp.Run(ctx, chromedp.Poll[string](`window.saved`))
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	f, err := validation.Parse("playground.yaml", []byte(saved))
	if err != nil {
		t.Fatalf("the downloaded file: %v\n%s", err, saved)
	}
	res, err := validation.Run(ctx, f, validation.Options{Now: fixedNow})
	if err != nil || !res.OK() || res.Assertions != 2 || !strings.Contains(f.Schema, "permission view = viewer + owner") || eval(`window.savedAs`) != "playground.yaml" {
		t.Errorf("the downloaded file runs: %v %+v\n%s", err, res, saved)
	}

	do("load the enterprise example",
		chromedp.Click("#load-example"),
		chromedp.WaitVisible(`#pane-relationships .gutter div[data-line="200"]`),
		chromedp.WaitVisible(`#answer.has[data-check="crm_customer:c42#view@employee:zhang"]`),
		chromedp.WaitVisible(`#graph .node.grants text.match`),
	)
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelector("#summary").textContent.includes("170/170 assertions, 10/10 validations pass")`,
		chromedp.WithPollingTimeout(2*time.Minute))); err != nil {
		summary, _ := chromedp.Run(ctx, chromedp.Text("#summary"))
		t.Fatalf("the enterprise example: %v (summary %q)", err, summary)
	}
	if fails := count("#assertion-results li.fail, #validation-results li.fail, .problems li"); fails != 0 {
		t.Errorf("the enterprise example: %d failures or problems", fails)
	}
	png := shot(t, ctx, "example")
	if dst := os.Getenv("PEMBA_PLAYGROUND_SCREENSHOT"); dst != "" {
		if !filepath.IsAbs(dst) {
			dst = filepath.Join("..", "..", dst) // relative to the module's root, not this package's directory
		}
		if err := os.WriteFile(dst, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", dst)
	}
}

// shot saves a screenshot of the page under the test's temp dir.
func shot(t *testing.T, ctx context.Context, name string) []byte {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(t.TempDir(), fmt.Sprintf("playground-%s.png", name))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
	return png
}
