// Package syslog is the `syslog:` sink: each row becomes one syslog message,
// RFC 5424 (default) or RFC 3164, sent over UDP, TCP with octet-counting
// framing (RFC 6587: "MSG-LEN SP SYSLOG-MSG") or TCP+TLS (RFC 5425, the same
// framing inside TLS).
//
// # Messages
//
// RFC 5424: <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG, where
// PRI = facility×8 + severity, TIMESTAMP is RFC 3339 with microseconds in UTC
// (from the `timestamp` column when set, else the time of the write), PROCID
// the worker's process id and SD the `structured_data` template or "-".
// RFC 3164: <PRI>Mmm dd hh:mm:ss HOSTNAME APP-NAME[PROCID]: MSG.
//
// MSG is the `message` template, compiled once against the output schema:
// {column} (a dotted path reaches nested fields) is replaced by the column's
// value (numbers in decimal, timestamps in RFC 3339, bytes in hex, NULL as
// "-"), {{ and }} are literal braces. Only scalar columns can be referenced;
// an unknown column is an error of New. Without a template MSG is the row as
// JSON (sink/encode). Formatting appends into the writer's buffer: no
// allocation per row once it has grown.
//
// # Delivery
//
// Each Writer (one per task) owns one connection, opened on its first Flush.
// Write only formats; Flush writes the batch with one write call (one
// datagram per message over UDP) and returns once the kernel accepted all of
// it. Syslog has no acknowledgement: over TCP and TLS that is the most the
// protocol allows, and a connection that breaks after the kernel accepted
// the bytes loses what was still in flight. To narrow that window, Flush
// first checks whether the receiver closed the connection (a read that does
// not time out at once) and reconnects before writing. On a write error the
// writer reconnects with exponential backoff and jitter, for as long as the
// context allows, and sends the whole batch again: messages of a batch that
// was cut may arrive twice (at-least-once). Over UDP loss is undetectable.
// TLS certificate errors are permanent.
//
// # Concurrency
//
// A Sink is immutable after New and shared by its writers; each Writer is used
// by one goroutine.
package syslog
