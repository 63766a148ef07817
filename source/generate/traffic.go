package generate

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand"
	"time"
)

// Location is the Location record of traffic.avsc.
type Location struct {
	Country   string   `avro:"country"`
	Region    *string  `avro:"region"`
	Latitude  *float64 `avro:"latitude"`
	Longitude *float64 `avro:"longitude"`
}

// Record is one TrafficLog value (traffic.avsc), with the v2 additions. Its
// avro tags let hamba/avro decode into it: it is the struct a code generator
// would write for the schema.
type Record struct {
	ReceiveTime      time.Time         `avro:"receive_time"`
	TenantID         string            `avro:"tenant_id"`
	Serial           string            `avro:"serial"`
	LogType          string            `avro:"log_type"`
	Subtype          string            `avro:"subtype"`
	TimeGenerated    time.Time         `avro:"time_generated"`
	SrcIP            string            `avro:"src_ip"`
	DstIP            string            `avro:"dst_ip"`
	NatSrcIP         *string           `avro:"nat_src_ip"`
	NatDstIP         *string           `avro:"nat_dst_ip"`
	Rule             string            `avro:"rule"`
	SrcUser          *string           `avro:"src_user"`
	DstUser          *string           `avro:"dst_user"`
	App              string            `avro:"app"`
	Vsys             string            `avro:"vsys"`
	FromZone         string            `avro:"from_zone"`
	ToZone           string            `avro:"to_zone"`
	InboundIf        string            `avro:"inbound_if"`
	OutboundIf       string            `avro:"outbound_if"`
	LogAction        *string           `avro:"log_action"`
	SessionID        int64             `avro:"session_id"`
	RepeatCount      int32             `avro:"repeat_count"`
	SrcPort          int32             `avro:"src_port"`
	DstPort          int32             `avro:"dst_port"`
	NatSrcPort       int32             `avro:"nat_src_port"`
	NatDstPort       int32             `avro:"nat_dst_port"`
	Flags            int64             `avro:"flags"`
	Protocol         string            `avro:"protocol"`
	Action           string            `avro:"action"`
	BytesTotal       int64             `avro:"bytes_total"`
	BytesSent        int64             `avro:"bytes_sent"`
	BytesReceived    int64             `avro:"bytes_received"`
	PacketsTotal     int64             `avro:"packets_total"`
	SessionStart     time.Time         `avro:"session_start"`
	ElapsedSeconds   int32             `avro:"elapsed_seconds"`
	URLCategory      *string           `avro:"url_category"`
	SequenceNumber   int64             `avro:"sequence_number"`
	ActionFlags      int64             `avro:"action_flags"`
	SrcLocation      Location          `avro:"src_location"`
	DstLocation      Location          `avro:"dst_location"`
	PacketsSent      int64             `avro:"packets_sent"`
	PacketsReceived  int64             `avro:"packets_received"`
	SessionEndReason string            `avro:"session_end_reason"`
	DeviceName       string            `avro:"device_name"`
	ActionSource     string            `avro:"action_source"`
	SrcUUID          string            `avro:"src_uuid"`
	DstUUID          *string           `avro:"dst_uuid"`
	IsDecrypted      bool              `avro:"is_decrypted"`
	IsThreat         bool              `avro:"is_threat"`
	RiskScore        *float32          `avro:"risk_score"`
	Tags             []string          `avro:"tags"`
	Labels           map[string]string `avro:"labels"`
	PayloadHash      *[32]byte         `avro:"payload_hash"`

	// v2 only (traffic_v2.avsc).
	RuleUUID *string `avro:"rule_uuid"`
	XffIP    string  `avro:"xff_ip"`
}

// Symbols of the enums of traffic.avsc, in schema order.
var (
	LogTypes      = []string{"TRAFFIC", "THREAT", "URL", "SYSTEM", "CONFIG"}
	Protocols     = []string{"TCP", "UDP", "ICMP", "OTHER"}
	Actions       = []string{"ALLOW", "DENY", "DROP", "RESET_CLIENT", "RESET_SERVER", "RESET_BOTH"}
	ActionSources = []string{"FROM_POLICY", "FROM_APPLICATION"}
)

type place struct {
	country, region string
	lat, lon        float64
}

// Traffic generates TrafficLog records. It is deterministic for a seed and
// not safe for concurrent use: give each goroutine its own.
type Traffic struct {
	rnd     *rand.Rand
	appZ    *rand.Zipf
	ipZ     *rand.Zipf
	srcIPs  []string
	dstIPs  []string
	apps    []string
	users   []string
	rules   []string
	uuids   []string
	places  []place
	zones   []string
	ifs     []string
	reasons []string
	urlCats []string
	tenants []string
	devices []string
	tagSet  []string
	now     int64 // microseconds
	seq     int64
	session int64
	hash    [32]byte
	rec     Record
	tags    []string
	labels  map[string]string
	v2      bool
}

// TrafficOption configures NewTraffic.
type TrafficOption func(*trafficOptions)

type trafficOptions struct {
	start   int64 // Unix microseconds
	tenants int
}

// DefaultTenants is the number of distinct tenant ids of a Traffic
// generator.
const DefaultTenants = 3

// WithStart sets the time of the first record (default Epoch,
// 2026-01-01T00:00:00Z).
func WithStart(t time.Time) TrafficOption {
	return func(o *trafficOptions) { o.start = t.UnixMicro() }
}

// WithTenants sets the number of distinct tenant ids, tenant-000 on
// (default DefaultTenants).
func WithTenants(n int) TrafficOption { return func(o *trafficOptions) { o.tenants = n } }

// NewTraffic returns a traffic generator seeded with seed.
func NewTraffic(seed int64, opts ...TrafficOption) *Traffic {
	o := trafficOptions{start: Epoch, tenants: DefaultTenants}
	for _, opt := range opts {
		opt(&o)
	}
	r := rand.New(rand.NewSource(seed))
	g := &Traffic{rnd: r, now: o.start, labels: map[string]string{}}
	g.apps = []string{"ssl", "web-browsing", "dns", "google-base", "ms-office365", "slack", "zoom", "ssh", "ntp", "smtp",
		"facebook-base", "youtube-streaming", "github", "aws-s3", "salesforce", "bittorrent", "tor", "rdp", "ldap", "kerberos"}
	for i := 0; i < 200; i++ {
		g.srcIPs = append(g.srcIPs, fmt.Sprintf("10.%d.%d.%d", r.Intn(4), r.Intn(256), 1+r.Intn(254)))
		g.dstIPs = append(g.dstIPs, fmt.Sprintf("%d.%d.%d.%d", 13+r.Intn(200), r.Intn(256), r.Intn(256), 1+r.Intn(254)))
	}
	for i := 0; i < 50; i++ {
		g.users = append(g.users, fmt.Sprintf("corp\\user%03d", i))
		g.rules = append(g.rules, fmt.Sprintf("rule-%02d-allow-outbound", i))
		g.uuids = append(g.uuids, uuid(r))
	}
	g.places = []place{{"US", "CA", 37.77, -122.42}, {"US", "NY", 40.71, -74.0}, {"DE", "BE", 52.52, 13.4}, {"FR", "IDF", 48.85, 2.35},
		{"GB", "ENG", 51.5, -0.12}, {"JP", "13", 35.68, 139.69}, {"BR", "SP", -23.55, -46.63}, {"IN", "MH", 19.07, 72.87}, {"CN", "", 0, 0}, {"RU", "", 0, 0}}
	g.zones = []string{"trust", "untrust", "dmz", "vpn", "guest"}
	g.ifs = []string{"ethernet1/1", "ethernet1/2", "ethernet1/3", "ae1.100", "tunnel.1"}
	g.reasons = []string{"aged-out", "tcp-fin", "tcp-rst-from-client", "tcp-rst-from-server", "policy-deny", "threat"}
	g.urlCats = []string{"business-and-economy", "computer-and-internet-info", "search-engines", "social-networking", "streaming-media", "malware"}
	g.devices = []string{"fw-edge-01", "fw-edge-02", "fw-dc-01", "fw-branch-07"}
	g.tagSet = []string{"pci", "prod", "egress", "vip", "scanner", "guest"}
	for i := 0; i < o.tenants; i++ {
		g.tenants = append(g.tenants, fmt.Sprintf("tenant-%03d", i))
	}
	g.appZ = rand.NewZipf(r, 1.3, 1, uint64(len(g.apps)-1))
	g.ipZ = rand.NewZipf(r, 1.1, 2, uint64(len(g.srcIPs)-1))
	return g
}

func uuid(r *rand.Rand) string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:], r.Uint64())
	binary.LittleEndian.PutUint64(b[8:], r.Uint64())
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func (g *Traffic) pick(s []string) string { return s[g.rnd.Intn(len(s))] }

func (g *Traffic) maybe(p float64, s string) *string {
	if g.rnd.Float64() < p {
		return &s
	}
	return nil
}

// Next generates the next record. The Record and what its slices, maps and
// pointers hold are reused by the following call.
func (g *Traffic) Next() *Record {
	r := g.rnd
	rec := &g.rec
	g.tags = g.tags[:0]
	*rec = Record{Labels: g.labels}
	clear(g.labels)
	g.now += int64(r.ExpFloat64() * 200) // ~5000 records per simulated second
	g.seq++
	rec.TimeGenerated = time.UnixMicro(g.now - int64(r.Intn(2_000_000))).UTC()
	rec.ReceiveTime = time.UnixMicro(g.now).UTC()
	rec.TenantID = g.pick(g.tenants)
	rec.Serial = "0079010" + string(rune('0'+r.Intn(10))) + "4242"
	rec.LogType = LogTypes[0]
	if r.Intn(20) == 0 {
		rec.LogType = LogTypes[1+r.Intn(4)]
	}
	rec.Subtype = "end"
	app := g.apps[g.appZ.Uint64()]
	rec.App = app
	rec.SrcIP = g.srcIPs[g.ipZ.Uint64()]
	rec.DstIP = g.dstIPs[g.ipZ.Uint64()]
	rec.NatSrcIP = g.maybe(0.3, "203.0.113.7")
	rec.NatDstIP = g.maybe(0.05, g.pick(g.dstIPs))
	rec.Rule = g.pick(g.rules)
	rec.SrcUser = g.maybe(0.6, g.pick(g.users))
	rec.DstUser = g.maybe(0.05, g.pick(g.users))
	rec.Vsys = "vsys1"
	rec.FromZone, rec.ToZone = "trust", "untrust"
	if r.Intn(4) == 0 {
		rec.FromZone, rec.ToZone = g.pick(g.zones), g.pick(g.zones)
	}
	rec.InboundIf, rec.OutboundIf = g.pick(g.ifs), g.pick(g.ifs)
	rec.LogAction = g.maybe(0.2, "default-forward")
	g.session += 1 + int64(r.Intn(3))
	rec.SessionID = g.session
	rec.RepeatCount = 1
	if r.Intn(10) == 0 {
		rec.RepeatCount = int32(2 + r.Intn(50))
	}
	rec.SrcPort = int32(32768 + r.Intn(28232))
	ports := [...]int32{443, 443, 443, 80, 53, 22, 123, 25, 3389, 8080}
	rec.DstPort = ports[r.Intn(len(ports))]
	if rec.NatSrcIP != nil {
		rec.NatSrcPort = int32(1024 + r.Intn(64511))
	}
	rec.Flags = int64(r.Intn(1 << 20))
	rec.Protocol = Protocols[0]
	switch rec.DstPort {
	case 53, 123:
		rec.Protocol = Protocols[1]
	}
	if r.Intn(100) == 0 {
		rec.Protocol = Protocols[2]
	}
	rec.Action = Actions[0]
	if r.Intn(10) == 0 { // ~10% non-ALLOW
		rec.Action = Actions[1+r.Intn(5)]
	}
	rec.BytesSent = int64(math.Exp(r.NormFloat64()*1.5 + 7))
	rec.BytesReceived = int64(math.Exp(r.NormFloat64()*2 + 8))
	rec.BytesTotal = rec.BytesSent + rec.BytesReceived
	rec.PacketsSent = 1 + rec.BytesSent/900
	rec.PacketsReceived = 1 + rec.BytesReceived/1200
	rec.PacketsTotal = rec.PacketsSent + rec.PacketsReceived
	rec.ElapsedSeconds = int32(r.ExpFloat64() * 30)
	rec.SessionStart = rec.TimeGenerated.Add(-time.Duration(rec.ElapsedSeconds) * time.Second)
	rec.URLCategory = g.maybe(0.4, g.pick(g.urlCats))
	rec.SequenceNumber = g.seq
	rec.ActionFlags = int64(r.Intn(4)) << 62 >> 2
	g.loc(&rec.SrcLocation, 0.7)
	g.loc(&rec.DstLocation, 0.3)
	rec.SessionEndReason = g.pick(g.reasons)
	rec.DeviceName = g.pick(g.devices)
	rec.ActionSource = ActionSources[r.Intn(10)/9]
	rec.SrcUUID = g.pick(g.uuids)
	rec.DstUUID = g.maybe(0.1, g.pick(g.uuids))
	rec.IsDecrypted = app == "ssl" && r.Intn(3) == 0
	rec.IsThreat = rec.Action != "ALLOW" && r.Intn(3) == 0
	if r.Intn(5) == 0 {
		f := float32(r.Intn(1000)) / 10
		rec.RiskScore = &f
	}
	for i := r.Intn(3); i > 0; i-- {
		g.tags = append(g.tags, g.pick(g.tagSet))
	}
	rec.Tags = g.tags
	if r.Intn(3) == 0 {
		g.labels["env"] = "prod"
		if r.Intn(2) == 0 {
			g.labels["team"] = g.pick(g.zones)
		}
	}
	if r.Intn(20) == 0 {
		binary.LittleEndian.PutUint64(g.hash[:], r.Uint64())
		binary.LittleEndian.PutUint64(g.hash[24:], r.Uint64())
		rec.PayloadHash = &g.hash
	}
	if g.v2 {
		rec.RuleUUID = g.maybe(0.5, g.pick(g.uuids))
		if r.Intn(10) == 0 {
			rec.XffIP = g.pick(g.srcIPs)
		}
	}
	return rec
}

func (g *Traffic) loc(l *Location, known float64) {
	if g.rnd.Float64() > known {
		*l = Location{Country: "US"}
		return
	}
	p := &g.places[g.rnd.Intn(len(g.places))]
	l.Country = p.country
	if p.region != "" {
		l.Region = &p.region
		l.Latitude, l.Longitude = &p.lat, &p.lon
	} else {
		l.Region, l.Latitude, l.Longitude = nil, nil, nil
	}
}

// AppendAvro generates the next record and appends its Avro binary encoding
// with the schema traffic.avsc.
func (g *Traffic) AppendAvro(dst []byte) []byte {
	g.v2 = false
	return g.Next().AppendAvro(dst)
}

// AppendAvroV2 generates the next record and appends its Avro binary encoding
// with the schema traffic_v2.avsc.
func (g *Traffic) AppendAvroV2(dst []byte) []byte {
	g.v2 = true
	return g.Next().AppendAvroV2(dst)
}

// Native generates the next record as goavro's native form for traffic.avsc.
func (g *Traffic) Native() map[string]any {
	g.v2 = false
	return g.Next().Native()
}
