//go:build !race

package policy

// raceShadowFactor: see race_on.go.
const raceShadowFactor = 1
