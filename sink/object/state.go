package object

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// stateVersion is the version of the writer state. Part of the checkpoint
// format: a new layout gets a new version, and Resume keeps reading the old.
const stateVersion = 1

// state is what a task's writer records in the checkpoint after each Flush:
// which object is open and which parts hold its rows so far. It is encoded as
// JSON (tens of bytes: parts are kept as runs of one writer's indexes).
type state struct {
	V int `json:"v"`
	// Series is when the task's series of objects began (unix microseconds,
	// at the Open that had no state); Seq numbers the objects of a series
	// from 1. Together they name the open object.
	Series int64 `json:"series"`
	Seq    int64 `json:"seq"`
	// Rows and Bytes are what the open object's parts hold.
	Rows  int64 `json:"rows,omitempty"`
	Bytes int64 `json:"bytes,omitempty"`
	// Opened is when the open object got its first row (unix microseconds),
	// 0 while it is empty: max_object_age counts from it, across restarts.
	Opened int64 `json:"opened,omitempty"`
	// Parts are the open object's staged parts, in order.
	Parts []run `json:"parts,omitempty"`
}

// run is parts From..To (inclusive) staged by the writer instance Nonce.
type run struct {
	Nonce string `json:"n"`
	From  int    `json:"f"`
	To    int    `json:"t"`
}

// partID names part idx staged by the writer instance nonce. Every ID of a
// sink has the same length (Azure requires it of the block IDs of a blob):
// 8 hex digits of nonce, a dash, 8 decimal digits of index.
func partID(nonce string, idx int) string {
	return nonce + "-" + fmt.Sprintf("%08d", idx)
}

// next is the index of the open object's next part: indexes grow across the
// writer instances that add to one object, so that part names sort in order.
func (s *state) next() int {
	if len(s.Parts) == 0 {
		return 1
	}
	return s.Parts[len(s.Parts)-1].To + 1
}

func (s *state) addPart(nonce string, idx int) {
	if n := len(s.Parts); n > 0 && s.Parts[n-1].Nonce == nonce && s.Parts[n-1].To == idx-1 {
		s.Parts[n-1].To = idx
		return
	}
	s.Parts = append(s.Parts, run{Nonce: nonce, From: idx, To: idx})
}

func (s *state) partIDs() []string {
	var ids []string
	for _, r := range s.Parts {
		for i := r.From; i <= r.To; i++ {
			ids = append(ids, partID(r.Nonce, i))
		}
	}
	return ids
}

// advance makes the series' next object the open one.
func (s *state) advance() {
	*s = state{V: stateVersion, Series: s.Series, Seq: s.Seq + 1}
}

func (s *state) encode() []byte {
	b, _ := json.Marshal(s)
	return b
}

func decodeState(b []byte) (state, error) {
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("writer state: %w", err)
	}
	if s.V != stateVersion {
		return s, fmt.Errorf("writer state version %d, want %d", s.V, stateVersion)
	}
	if s.Seq < 1 || s.Rows < 0 || s.Bytes < 0 {
		return s, fmt.Errorf("writer state out of range: seq %d rows %d bytes %d", s.Seq, s.Rows, s.Bytes)
	}
	for _, r := range s.Parts {
		if len(r.Nonce) != 8 || r.From < 1 || r.To < r.From {
			return s, fmt.Errorf("writer state: bad part run %s %d-%d", strconv.Quote(r.Nonce), r.From, r.To)
		}
	}
	return s, nil
}
