package engine

import "errors"

// PermanentError marks an error that retrying cannot fix: bad credentials, a
// missing table, an HTTP 400 on every request. Sinks and sources wrap such
// errors with Permanent so that the runtime can tell a mistake from an outage:
// it still retries (a fixed permission resumes by itself), but slowly, and
// reports the task as failing rather than waiting.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err as a PermanentError; nil stays nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err or any error it wraps is a PermanentError.
func IsPermanent(err error) bool {
	var pe *PermanentError
	return errors.As(err, &pe)
}

// ErrUnavailable marks the failure of something a record depends on rather
// than of the record: a schema registry that answers 503 or refuses
// connections. A Decoder wraps it (fmt.Errorf("...: %w", ErrUnavailable)) so
// that the runtime holds the task and retries instead of dead-lettering.
var ErrUnavailable = errors.New("unavailable")

// Redactor removes secrets (values that came from ${VAR} or *_file, URL
// userinfo and query strings) from text that leaves the process: logs,
// errors, dead letters, metrics and status pages. A nil Redactor returns its
// input.
type Redactor func(string) string

// Redact applies r to s.
func (r Redactor) Redact(s string) string {
	if r == nil {
		return s
	}
	return r(s)
}
