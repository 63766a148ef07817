package kafka

import "github.com/sluicehq/sluice/engine"

// EndOffset implements engine.EndOffsetter: the latest end offset (high
// watermark) of an owned task, from its fetches or the periodic listing.
func (s *Source) EndOffset(id engine.TaskID) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := s.owned[id]
	if ts == nil || ts.end < 0 {
		return 0, false
	}
	return ts.end, true
}
