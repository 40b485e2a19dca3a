//go:build unix

package browsertest

import (
	"os"
	"syscall"
)

// terminate asks a node process to stop: playwright-core handles SIGTERM by
// closing the browser it launched (Chromium runs in its own process group,
// so killing node outright would leave it behind).
func terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }
