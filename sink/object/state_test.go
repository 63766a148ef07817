package object

import (
	"bytes"
	"testing"
)

func TestStateParts(t *testing.T) {
	s := state{V: stateVersion, Series: 1, Seq: 1}
	for i := 1; i <= 3; i++ {
		s.addPart("aaaaaaaa", s.next())
	}
	s.addPart("bbbbbbbb", s.next())
	got := s.partIDs()
	want := []string{"aaaaaaaa-00000001", "aaaaaaaa-00000002", "aaaaaaaa-00000003", "bbbbbbbb-00000004"}
	if len(got) != len(want) {
		t.Fatalf("parts %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("parts %v, want %v", got, want)
		}
	}
	if len(s.Parts) != 2 {
		t.Errorf("runs %v, want two", s.Parts)
	}
	d, err := decodeState(s.encode())
	if err != nil || !bytes.Equal(d.encode(), s.encode()) {
		t.Fatalf("round trip: %v %s", err, d.encode())
	}
}

// FuzzDecodeState: any bytes either fail to decode or decode into a state
// that encodes and decodes back to itself.
func FuzzDecodeState(f *testing.F) {
	f.Add([]byte(`{"v":1,"series":5,"seq":2,"rows":3,"bytes":40,"opened":7,"parts":[{"n":"0a0b0c0d","f":1,"t":4}]}`))
	f.Add([]byte(`{"v":2}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeState(b)
		if err != nil {
			return
		}
		again, err := decodeState(s.encode())
		if err != nil || !bytes.Equal(again.encode(), s.encode()) {
			t.Fatalf("%s does not round-trip: %v", s.encode(), err)
		}
	})
}
