package syslog_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/sink/sinktest"
	"github.com/sluicehq/sluice/sink/syslog"
)

// TestConformance runs the sink conformance suite against rsyslog over
// TLS: the message is the row's id, read back from rsyslog's file.
func TestConformance(t *testing.T) {
	r := startRsyslog(t)
	sinktest.Run(t, sinktest.Harness{
		New: func(t *testing.T) engine.Sink {
			cfg := syslog.Config{Address: fmt.Sprintf("tcp+tls://127.0.0.1:%d", r.tlsPt), Format: syslog.RFC5424,
				AppName: "sluice-test", Message: "{id}", TLS: &syslog.TLS{CAFile: filepath.Join(r.dir, "ca.pem")}}
			s, err := syslog.New(t.Context(), cfg, sinktest.Schema, engine.SinkEnv{Name: "syslog/0"})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		Read: func(t *testing.T) []int64 {
			b, err := os.ReadFile(filepath.Join(r.dir, "tls.log"))
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			var ids []int64
			for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				f := strings.Split(l, "\t")
				if id, err := strconv.ParseInt(strings.TrimSpace(f[len(f)-1]), 10, 64); err == nil {
					ids = append(ids, id)
				}
			}
			return ids
		},
		// TCP has no acknowledgement: rsyslog writes its file a moment
		// after the sink's Flush returned.
		Settle: 10 * time.Second,
	})
}
