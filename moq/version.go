package moq

import (
	"errors"
	"fmt"

	"github.com/moqgate/moqgate/moq/internal/wire"
)

// Params are a message's or a setup's key-value parameters, as the wire
// codec reads them. Handlers outside moq/ see them only through this name
// (the codec itself is internal to moq/).
type Params = wire.Params

// DraftVersion is the MoQ Transport version number of a draft (14, 16),
// as DialOptions.Version takes it.
func DraftVersion(draft int) (uint64, error) {
	switch draft {
	case 14:
		return wire.Version14, nil
	case 16:
		return wire.Version16, nil
	case 17:
		return wire.Version17, nil
	}
	return 0, fmt.Errorf("moq: draft %d: want 14, 16 or 17: %w", draft, ErrUnsupportedDraft)
}

// ErrUnsupportedDraft is DraftVersion's error for a draft we do not speak.
var ErrUnsupportedDraft = errors.New("unsupported draft")

// PeerImplementation is the peer's IMPLEMENTATION setup parameter, "" if
// it sent none.
func (s *Session) PeerImplementation() string {
	b, _ := s.PeerParams.Bytes(wire.ParamImplementation)
	return string(b)
}
