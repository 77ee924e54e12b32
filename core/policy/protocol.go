package policy

// The node and its worker exchange frames over the worker's stdin and stdout
// (core/frame: a kind byte, a uvarint length, a JSON body). Requests carry an
// id that their reply repeats, so many calls can be in flight at once.
//
//	worker → node  hello    once, first: the protocol version
//	node → worker  load     scripts in order, with the top-level budget
//	worker → node  loaded   one result per script
//	node → worker  call     a hook, its input and its budget
//	worker → node  verdict  the result of a call
//	worker → node  log      a line from avnode.log or print
const (
	kindHello   byte = 'H'
	kindLoad    byte = 'L'
	kindLoaded  byte = 'l'
	kindCall    byte = 'C'
	kindVerdict byte = 'v'
	kindLog     byte = 'g'
)

// protocolVersion changes whenever the messages below change incompatibly.
// The worker is the node's own binary, so a mismatch means a wrong binary.
const protocolVersion = 1

// Frame size limits. Requests are at most maxScripts sources (base64 in
// JSON); replies are bounded by the worker's own output limits.
const (
	maxRequestFrame = 8 << 20
	maxReplyFrame   = 1 << 20
)

type helloMsg struct {
	Version int    `json:"version"`
	PID     int    `json:"pid"`
	LimitMB uint64 `json:"limit_mb,omitempty"` // address-space limit set, 0 when none
	Note    string `json:"note,omitempty"`     // why no limit, when none
}

type scriptSource struct {
	Name   string `json:"name"`
	Source []byte `json:"source"`
}

type loadMsg struct {
	ID       uint64         `json:"id"`
	BudgetNS int64          `json:"budget_ns"`
	Scripts  []scriptSource `json:"scripts"`
}

type loadResult struct {
	Name     string   `json:"name"`
	Hooks    []string `json:"hooks,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	Error    string   `json:"error,omitempty"`
	Line     int      `json:"line,omitempty"`
}

type loadedMsg struct {
	ID      uint64       `json:"id"`
	Results []loadResult `json:"results"`
}

type callMsg struct {
	ID       uint64 `json:"id"`
	Hook     string `json:"hook"`
	Input    []byte `json:"input"` // JSON, carried as bytes so the worker decodes it only once
	BudgetNS int64  `json:"budget_ns"`
}

// result is a call's outcome in the worker.
type result struct {
	Decided bool     `json:"decided,omitempty"`
	Allow   bool     `json:"allow,omitempty"`
	Order   []string `json:"order,omitempty"`
	Reason  string   `json:"reason,omitempty"`
	Script  string   `json:"script,omitempty"`
	Err     string   `json:"err,omitempty"` // the hook failed: the node takes the fallback
	// Busy: the call never ran, every Lua state was taken for its whole
	// budget. The worker's load, not the input, is to blame.
	Busy bool `json:"busy,omitempty"`
}

type verdictMsg struct {
	ID     uint64 `json:"id"`
	Result result `json:"result"`
}

type logMsg struct {
	Level  string `json:"level"`
	Script string `json:"script"`
	Msg    string `json:"msg"`
}
