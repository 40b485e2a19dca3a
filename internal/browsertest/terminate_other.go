//go:build !unix

package browsertest

import "os"

// terminate kills the process where SIGTERM does not exist.
func terminate(p *os.Process) error { return p.Kill() }
