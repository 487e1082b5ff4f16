// Package browsertest starts a real, headless Chromium for tests that
// check what a page draws (the playground, the benchmark HTML report).
// In CI (CI set) a missing browser fails the test; elsewhere it skips.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
)

// Find returns the path of a Chromium or Chrome binary, or "".
// PEMBA_CHROMIUM names one explicitly.
func Find() string {
	if p := os.Getenv("PEMBA_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Start starts a headless browser for the test and returns its context
// (closed when the test ends). Every script exception or console error
// the page reports fails the test when it ends.
func Start(t testing.TB, width, height int) context.Context {
	t.Helper()
	browser := Find()
	if browser == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("no Chromium found (apt-get install chromium, or set PEMBA_CHROMIUM); browser tests must run in CI")
		}
		t.Skip("no Chromium found (apt-get install chromium, or set PEMBA_CHROMIUM)")
	}
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(browser),
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox refuses to start
		chromedp.WindowSize(width, height),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	var (
		mu     sync.Mutex
		errors []string
		wg     sync.WaitGroup
	)
	// Subscribing starts the browser, whose life is bctx's.
	messages := chromedp.Console(bctx)
	wg.Go(func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException {
				mu.Lock()
				errors = append(errors, m.String())
				mu.Unlock()
			}
		}
	})
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
		wg.Wait()
		for _, e := range errors {
			t.Errorf("page error: %s", e)
		}
	})
	return bctx
}
