package syslog_test

import (
	"context"
	"io"
	"net"
	"testing"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/sink/syslog"
)

// BenchmarkWrite measures formatting (RFC 5424, template, octet-counting
// framing) into the writer's buffer; a TCP listener drains the flushes.
func BenchmarkWrite(b *testing.B) {
	ctx := context.Background()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go io.Copy(io.Discard, c)
		}
	}()
	s, err := syslog.New(ctx, syslog.Config{Address: "tcp://" + l.Addr().String(), Hostname: "h",
		Message: "{action} {src_ip}:{src_port} -> {dst_ip}:{dst_port} app={app}", Timestamp: "time"}, schema(), engine.SinkEnv{})
	if err != nil {
		b.Fatal(err)
	}
	w, _ := s.Open(ctx, engine.TaskID{Topic: "in"})
	defer w.Close(ctx)
	rows := make([]*engine.Row, 64)
	for i := range rows {
		rows[i] = engine.NewRow(7)
		fill(rows[i], i)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := w.Write(rows[i%len(rows)]); err != nil {
			b.Fatal(err)
		}
		if i%10000 == 9999 {
			if err := w.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
