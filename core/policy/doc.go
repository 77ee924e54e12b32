// Package policy runs the node's Lua policy scripts: the operator's say in
// which records this node stores and accepts, which providers and hosts it
// tries first, what it mirrors and who may use its relay.
//
// Scripts never run inside the node. gopher-lua has no memory cap, and one Go
// operation (t[67108863]=1 allocates a 1 GiB array) can exhaust memory or run
// far past any deadline, so the scripts run in a worker process (this same
// binary, started with AVNODE_POLICY_WORKER=1) under an address-space limit.
// The node talks to it over stdin/stdout, restarts it when it dies, and takes a
// hook's configured fallback whenever a script errors, overruns or the worker
// is down. A hostile script can make its own hooks fail; it must not be able to
// take the node down, read files, or see another call's state.
//
// The node calls Start, Decide and Reload; the avnode binary's main calls
// MaybeRunWorker first thing so the same binary can serve as the worker.
package policy
