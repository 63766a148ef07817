package https

import (
	"net/url"
	"strings"
)

// Destination is the host and path the sink posts to, without userinfo,
// query string or fragment (where secrets live): it names the sink by
// default.
func (c *Config) Destination() string {
	u, err := url.Parse(c.URL)
	if err != nil || u.Host == "" {
		return "invalid-url"
	}
	return u.Host + strings.TrimSuffix(u.EscapedPath(), "/")
}

// redactURL returns rawURL without its password and query string, for error
// text.
func redactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "invalid-url"
	}
	u.RawQuery, u.Fragment, u.ForceQuery = "", "", false
	if u.User != nil {
		u.User = url.User("REDACTED")
	}
	return u.String()
}
