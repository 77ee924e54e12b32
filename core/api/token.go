package api

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/avnode/avnode/core/fault"
)

// TokenFile sits next to the control socket. Every call carries its
// content: the socket's permissions keep other users out, and the token
// keeps out processes of the node's own user that cannot read the repo,
// such as role plugins in their sandbox, where the kernel does not confine
// connecting to a socket by its path.
const TokenFile = "api.token"

const tokenHeader = "Authorization"

// writeToken makes a fresh token for this daemon's run, readable by the
// owner only.
func writeToken(path string) (string, error) {
	buf := make([]byte, 32)
	rand.Read(buf)
	token := hex.EncodeToString(buf)
	os.Remove(path)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", fmt.Errorf("control API token %s: %w", path, err)
	}
	_, err = f.WriteString(token + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return "", fmt.Errorf("control API token %s: %w", path, err)
	}
	return token, nil
}

// requireToken answers 403 to a call without this run's token.
func requireToken(token string, next http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get(tokenHeader)), want) != 1 {
			w.Header().Set("Content-Type", "application/json")
			writeError(w, fault.New(fault.Permission, "the control API takes calls only with the token in the repo's "+TokenFile))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// readToken is the token of the daemon of the repo in dir ("" when none).
func readToken(dir string) string {
	data, err := os.ReadFile(filepath.Join(dir, TokenFile))
	if errors.Is(err, os.ErrNotExist) || err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}
