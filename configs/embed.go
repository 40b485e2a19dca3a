// Package configs holds moqgate's default configuration file, embedded in
// the binary so that `moqgate` runs without any file on disk.
package configs

import _ "embed"

// Default is the content of configs/moqgate.yaml: the configuration moqgate
// uses when no --config file is given, and the base every config file is
// laid over.
//
//go:embed moqgate.yaml
var Default []byte
