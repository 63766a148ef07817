package config

import (
	"cmp"
	"regexp"
	"slices"
	"strings"
)

// Redacted replaces what Redact removes.
const Redacted = "REDACTED"

var (
	// urlUserinfo matches the userinfo of a URL: scheme://user:password@.
	urlUserinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^/?#@\s"'<>]+@`)
	// urlQuery matches the query string of a URL, up to a quote, a space or
	// a fragment.
	urlQuery = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://[^?#\s"'<>]*)\?[^#\s"'<>]*`)
)

// newRedactor builds a function that removes secrets, URL userinfo and URL
// query strings from text. Longer secrets are replaced first, so that a
// secret that contains another is removed whole.
func newRedactor(secrets []string) func(string) string {
	s := slices.Clone(secrets)
	slices.SortFunc(s, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	var pairs []string
	for _, v := range s {
		pairs = append(pairs, v, Redacted)
	}
	rep := strings.NewReplacer(pairs...)
	return func(text string) string {
		if len(pairs) > 0 {
			text = rep.Replace(text)
		}
		if strings.Contains(text, "://") {
			text = urlUserinfo.ReplaceAllString(text, "${1}"+Redacted+"@")
			text = urlQuery.ReplaceAllString(text, "${1}?"+Redacted)
		}
		return text
	}
}
