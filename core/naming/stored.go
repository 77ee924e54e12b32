package naming

import (
	"bytes"
	"context"
	"strings"

	"github.com/avnode/avnode/core/names"
)

// storedQueue bounds the zones waiting for learnStored; past it, a stored
// zone is skipped: this node still holds it, and the next resolve sees it.
const storedQueue = 256

type storedZone struct {
	key   string
	value []byte
}

// NoteStored tells the service that the DHT stored a zone on this node, as
// a holder or for its own publish. The service then knows the new version
// at once, as if it had resolved it: its cache, high-water mark and
// name.updated watchers move to it, so a holder never serves an older
// version from its cache than the one it stores. It never blocks.
func (s *Service) NoteStored(key string, value []byte) {
	if !strings.HasPrefix(key, "/"+names.ZoneNamespace+"/") {
		return
	}
	select {
	case s.stored <- storedZone{key: key, value: bytes.Clone(value)}:
	default:
	}
}

func (s *Service) learnStored(ctx context.Context) {
	defer s.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case z := <-s.stored:
			s.learnZone(ctx, z)
		}
	}
}

// learnZone takes a stored zone through the same checks as a resolved one.
// A refusal only means the cache keeps what it had: the DHT's validator and
// store policy already decided whether to hold it.
func (s *Service) learnZone(ctx context.Context, z storedZone) {
	n, err := names.Parse(strings.TrimPrefix(z.key, "/"+names.ZoneNamespace+"/"))
	if err != nil {
		return
	}
	if cached := s.cachedZone(n); cached != nil && bytes.Equal(cached.Signed(), z.value) {
		return
	}
	if _, err := s.acceptZone(ctx, n, z.value); err != nil {
		s.log.Debug("stored zone not taken as the current version", "name", n, "err", err)
	}
}
