package file

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/sluicehq/sluice/engine"
)

// TestFullDiskErrorNamesPathOnce: writing to a full device (/dev/full
// answers every write with ENOSPC) fails the flush with an error that names
// the path once and still is ENOSPC underneath.
func TestFullDiskErrorNamesPathOnce(t *testing.T) {
	s, err := New(context.Background(), Config{Path: "/dev/full"}, schema, engine.SinkEnv{})
	if err != nil {
		t.Fatalf("open /dev/full: %v", err)
	}
	defer s.Close(context.Background())
	w, err := s.Open(context.Background(), engine.TaskID{Topic: "in"})
	if err != nil {
		t.Fatal(err)
	}
	row := engine.NewRow(schema.Width())
	row.SetInt(0, 1)
	row.SetStr(1, "x")
	row.SetStr(3, "US")
	if err := w.Write(row); err != nil {
		t.Fatal(err)
	}
	err = w.Flush(context.Background())
	if err == nil {
		t.Fatal("a flush to /dev/full succeeded")
	}
	if n := strings.Count(err.Error(), "/dev/full"); n != 1 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("error %q names the path %d times (want 1) or is not ENOSPC", err, n)
	}
}
