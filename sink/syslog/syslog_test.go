package syslog_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/sink/syslog"
)

// TestSyslogUDP3164: one datagram per message, RFC 3164 header.
func TestSyslogUDP3164(t *testing.T) {
	ctx := t.Context()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	s, err := syslog.New(ctx, syslog.Config{Address: "udp://" + pc.LocalAddr().String(), Format: syslog.RFC3164,
		Hostname: "h", AppName: "fw", Facility: "user", Severity: "err", Message: "{action} {src_ip}"},
		schema(), engine.SinkEnv{}, syslog.WithClock(func() time.Time { return base }))
	if err != nil {
		t.Fatal(err)
	}
	w, _ := s.Open(ctx, engine.TaskID{})
	defer w.Close(ctx)
	row := engine.NewRow(7)
	for i := range 3 {
		fill(row, i)
		if err := w.Write(row); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var got []string
	buf := make([]byte, 2048)
	_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for range 3 {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(buf[:n]))
	}
	stamp := base.Local().Format(time.Stamp)
	pid := strconv.Itoa(os.Getpid())
	want := []string{
		"<11>" + stamp + " h fw[" + pid + "]: ALLOW 10.0.0.0",
		"<11>" + stamp + " h fw[" + pid + "]: DENY 10.0.0.1",
		"<11>" + stamp + " h fw[" + pid + "]: ALLOW 10.0.0.2",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("datagrams (-want +got):\n%s", diff)
	}
}

// TestSyslogReconnect: the receiver drops the connection between flushes;
// the next Flush reconnects and nothing is lost. The default message is the
// row as JSON.
func TestSyslogReconnect(t *testing.T) {
	ctx := t.Context()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	msgs := make(chan string, 100)
	conns := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns <- c
			go func() {
				r := bufio.NewReader(c)
				for {
					var n int
					if _, err := fmt.Fscanf(r, "%d ", &n); err != nil {
						return
					}
					b := make([]byte, n)
					if _, err := io.ReadFull(r, b); err != nil {
						return
					}
					msgs <- string(b)
				}
			}()
		}
	}()
	s, err := syslog.New(ctx, syslog.Config{Address: "tcp://" + l.Addr().String(), Hostname: "h"},
		schema(), engine.SinkEnv{}, syslog.WithBackoff(time.Millisecond, 10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	w, _ := s.Open(ctx, engine.TaskID{})
	defer w.Close(ctx)
	row := engine.NewRow(7)
	for batch := range 2 {
		fill(row, batch)
		if err := w.Write(row); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		m := <-msgs
		if !strings.HasSuffix(m, fmt.Sprintf(`"src_ip":"10.0.0.%d","src_port":%d,"dst_ip":"192.168.1.1","dst_port":443,"app":"web-browsing","time":"2026-03-01T12:00:0%d.000000Z"}`, batch, 40000+batch, batch)) {
			t.Errorf("message %d = %q", batch, m)
		}
		(<-conns).Close() // the receiver goes away
	}
}
