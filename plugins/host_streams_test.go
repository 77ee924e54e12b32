package plugins

import (
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/protocol"
)

func TestCheckProtocol(t *testing.T) {
	handled := []protocol.ID{"/avtr/x/taken/1.0.0"}
	if err := checkProtocol("/avtr/x/chat/1.0.0", handled); err != nil {
		t.Fatalf("a plugin protocol was refused: %v", err)
	}
	for p, want := range map[string]string{
		"chat":                         "want a path",
		"/ipfs/bitswap/1.2.0":          "reserved",
		"/avtr/kad/1.0.0":              "reserved",
		"/avtr/blocks/1.0.0":           "reserved",
		"/avtr/x/taken/1.0.0":          "already handled",
		"/a b":                         "want a path",
		"/" + strings.Repeat("x", 300): "want a path",
	} {
		err := checkProtocol(p, handled)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("checkProtocol(%.20q) = %v, want %q", p, err, want)
		}
	}
}
