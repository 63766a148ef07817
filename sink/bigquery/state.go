package bigquery

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// stateVersion is the first byte of an encoded State. Part of the checkpoint
// format: never change its meaning; a new layout gets a new version.
const stateVersion = 1

// MarshalBinary encodes s for a checkpoint: the version byte (1), the offset
// as a uvarint, then the stream name's bytes.
func (s State) MarshalBinary() ([]byte, error) {
	if s.Offset < 0 {
		return nil, fmt.Errorf("bigquery: state offset %d is negative", s.Offset)
	}
	b := []byte{stateVersion}
	b = binary.AppendUvarint(b, uint64(s.Offset))
	return append(b, s.Stream...), nil
}

// UnmarshalBinary decodes what MarshalBinary wrote.
func (s *State) UnmarshalBinary(b []byte) error {
	if len(b) == 0 || b[0] != stateVersion {
		return errors.New("bigquery: state: unknown version")
	}
	off, n := binary.Uvarint(b[1:])
	if n <= 0 || off > 1<<62 {
		return errors.New("bigquery: state: corrupt offset")
	}
	s.Offset, s.Stream = int64(off), string(b[1+n:])
	return nil
}
