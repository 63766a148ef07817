package syslog

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/engine/backoff"
	"github.com/sluicehq/sluice/engine/config"
)

// Formats.
const (
	RFC5424 = "rfc5424"
	RFC3164 = "rfc3164"
)

// Defaults.
const (
	DefaultFormat   = RFC5424
	DefaultAppName  = "sluice"
	DefaultFacility = "local0"
	DefaultSeverity = "info"
)

// Config is the `syslog:` sink of a pipeline.
type Config struct {
	// Address is udp://host:port, tcp://host:port (octet-counting framing,
	// RFC 6587) or tcp+tls://host:port (RFC 5425).
	Address string `yaml:"address" required:"true"`
	// Format is rfc5424 (default) or rfc3164.
	Format string `yaml:"format"`
	// AppName is APP-NAME (the TAG in RFC 3164). Default: sluice.
	AppName string `yaml:"app_name"`
	// Hostname is HOSTNAME. Default: the machine's host name.
	Hostname string `yaml:"hostname"`
	// Facility is a name (kern, user, ..., local0..local7) or a number 0-23.
	// Default: local0.
	Facility string `yaml:"facility"`
	// Severity is a name (emerg, alert, crit, err, warning, notice, info,
	// debug) or a number 0-7. Default: info.
	Severity string `yaml:"severity"`
	// MsgID is the RFC 5424 MSGID; default "-".
	MsgID string `yaml:"msg_id"`
	// Message is a template: {column} (a dotted path for nested fields) is
	// replaced by the column's value, {{ and }} stand for braces. Default: the
	// row as JSON.
	Message string `yaml:"message"`
	// StructuredData is the RFC 5424 STRUCTURED-DATA, a template like
	// Message, e.g. `[fw@32473 app="{app}"]`. Default: none ("-").
	StructuredData string `yaml:"structured_data"`
	// Timestamp is a timestamp column for the header's time; default the
	// time of the write.
	Timestamp string `yaml:"timestamp"`
	TLS       *TLS   `yaml:"tls"`
}

// TLS configures tcp+tls://: the `tls:` block every component shares
// (config.TLS), built by its Config. The server name verified defaults to
// the address's host.
type TLS = config.TLS

var facilities = []string{"kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp", "ntp", "security", "console", "solaris-cron", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7"}

var severities = []string{"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"}

func code(s string, names []string, what string) (int, error) {
	for i, n := range names {
		if strings.EqualFold(s, n) {
			return i, nil
		}
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 0 && n < len(names) {
		return n, nil
	}
	return 0, fmt.Errorf("%s %q: expected one of %s or 0-%d", what, s, strings.Join(names, ", "), len(names)-1)
}

// Validate checks the settings and fills in defaults.
func (c *Config) Validate() error {
	var errs []error
	if _, _, err := c.network(); err != nil {
		errs = append(errs, err)
	}
	if c.Format == "" {
		c.Format = DefaultFormat
	}
	if c.Format != RFC5424 && c.Format != RFC3164 {
		errs = append(errs, fmt.Errorf("format %q: expected rfc5424 or rfc3164", c.Format))
	}
	if c.AppName == "" {
		c.AppName = DefaultAppName
	}
	if c.Hostname == "" {
		c.Hostname, _ = os.Hostname()
	}
	if c.Facility == "" {
		c.Facility = DefaultFacility
	}
	if c.Severity == "" {
		c.Severity = DefaultSeverity
	}
	if _, err := code(c.Facility, facilities, "facility"); err != nil {
		errs = append(errs, err)
	}
	if _, err := code(c.Severity, severities, "severity"); err != nil {
		errs = append(errs, err)
	}
	for _, f := range []struct{ name, v string }{{"app_name", c.AppName}, {"hostname", c.Hostname}, {"msg_id", c.MsgID}} {
		if strings.ContainsAny(f.v, " \t\r\n") {
			errs = append(errs, fmt.Errorf("%s %q: must not contain spaces", f.name, f.v))
		}
	}
	if c.TLS != nil && !strings.HasPrefix(c.Address, "tcp+tls://") {
		errs = append(errs, errors.New("tls: only for a tcp+tls:// address"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("syslog: %w", errors.Join(errs...))
	}
	return nil
}

// network splits Address into a network and host:port; tls says TLS.
func (c *Config) network() (network, addr string, err error) {
	scheme, hostport, ok := strings.Cut(c.Address, "://")
	if !ok {
		return "", "", fmt.Errorf("address %q: expected udp://, tcp:// or tcp+tls://host:port", c.Address)
	}
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		return "", "", fmt.Errorf("address %q: %w", c.Address, err)
	}
	switch scheme {
	case "udp", "tcp", "tcp+tls":
		return scheme, hostport, nil
	}
	return "", "", fmt.Errorf("address %q: unknown scheme %q (expected udp, tcp or tcp+tls)", c.Address, scheme)
}

// Option configures a Sink beyond its Config.
type Option func(*options)

type options struct {
	backoff backoff.Policy
	now     func() time.Time
}

// WithBackoff sets the first and the longest pause between reconnections
// (default backoff.Default: 100ms and 30s), jittered as every retry is.
func WithBackoff(min, max time.Duration) Option {
	return func(o *options) { o.backoff = backoff.Policy{Base: min, Max: max} }
}

// WithClock replaces time.Now for the header's timestamp.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// Destination is the receiver's address, scheme://host:port: it names the
// sink by default.
func (c *Config) Destination() string { return c.Address }
