//go:build race

package policy

// raceShadowFactor widens the worker's address-space allowance under the
// race detector, whose shadow memory maps about four bytes of address space
// per byte of heap. Only race-enabled test binaries need it.
const raceShadowFactor = 5
