package sdk

import (
	"encoding/json"
	"fmt"
	"io"
)

// SatelliteProtocol is the libp2p protocol between a satellite and its
// beacon: one stream per request. The satellite writes one SatelliteRequest
// as JSON and closes its side; the beacon answers one SatelliteResponse.
// The beacon answers only satellites paired with it, that is delegated to
// by the owner of the name (a SAT record in the zone) and having asked to pair.
const SatelliteProtocol = "/avtr/x/satellite/1.0.0"

// Operations of a SatelliteRequest.
const (
	SatPair    = "pair"    // Name: pair with the beacon of this name
	SatResolve = "resolve" // Name: the beacon resolves it, answers the signed zone
	SatGet     = "get"     // Target: the beacon fetches it, answers the root and the signed zone
	SatOffload = "offload" // Service, Payload: the beacon hands the work to the role Service
)

// SatelliteRequest is what a satellite asks of its beacon.
type SatelliteRequest struct {
	Op      string          `json:"op"`
	Name    string          `json:"name,omitempty"`
	Target  string          `json:"target,omitempty"`
	Service string          `json:"service,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// SatelliteResponse is the beacon's answer. Error set means refused or
// failed, and says why.
type SatelliteResponse struct {
	Error string `json:"error,omitempty"`
	// Beacon is the beacon's peer ID (pair).
	Beacon string `json:"beacon,omitempty"`
	// Zone is the name's signed zone as the beacon holds it (resolve, get):
	// the satellite's node checks its signatures, so the beacon cannot forge it.
	Zone []byte `json:"zone,omitempty"`
	// ZoneName is the registered name Zone belongs to.
	ZoneName string `json:"zone_name,omitempty"`
	// Root is the CID of the content fetched (get).
	Root string `json:"root,omitempty"`
	// Output is what the offload's role answered, as JSON.
	Output json.RawMessage `json:"output,omitempty"`
}

// MaxSatelliteMessage bounds one request or response.
const MaxSatelliteMessage = 4 << 20

// WriteSatelliteMessage writes v as one JSON message.
func WriteSatelliteMessage(w io.Writer, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(data) > MaxSatelliteMessage {
		return fmt.Errorf("message of %d bytes, over %d", len(data), MaxSatelliteMessage)
	}
	_, err = w.Write(data)
	return err
}

// ReadSatelliteMessage reads one JSON message, up to the end of the
// stream's side, into v; a message over MaxSatelliteMessage is refused.
func ReadSatelliteMessage(r io.Reader, v any) error {
	return ReadSatelliteMessageLimit(r, v, MaxSatelliteMessage)
}

// ReadSatelliteMessageLimit is ReadSatelliteMessage for a message of at most
// limit bytes: reading stops at limit+1, so a longer one costs no more.
func ReadSatelliteMessageLimit(r io.Reader, v any, limit int) error {
	data, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return err
	}
	if len(data) > limit {
		return fmt.Errorf("message over %d bytes", limit)
	}
	return json.Unmarshal(data, v)
}
