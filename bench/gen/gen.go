package gen

import "github.com/sluicehq/sluice/source/generate"

// Gen is a seeded traffic generator (generate.Traffic).
type Gen = generate.Traffic

// Record is one TrafficLog value (generate.Record).
type Record = generate.Record

// Location is the Location record of traffic.avsc (generate.Location).
type Location = generate.Location

// Option configures a Gen (generate.TrafficOption).
type Option = generate.TrafficOption

// New returns a generator seeded with seed (generate.NewTraffic).
func New(seed int64, opts ...Option) *Gen { return generate.NewTraffic(seed, opts...) }

// Options and helpers, as source/generate defines them.
var (
	Start   = generate.WithStart
	Tenants = generate.WithTenants
	Micros  = generate.Micros
)

// Symbols of the enums of traffic.avsc, in schema order.
var (
	LogTypes      = generate.LogTypes
	Protocols     = generate.Protocols
	Actions       = generate.Actions
	ActionSources = generate.ActionSources
)
