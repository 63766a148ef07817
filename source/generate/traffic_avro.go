package generate

import (
	"sort"
	"time"

	"github.com/sluicehq/sluice/engine/avro"
)

func appendStr(dst []byte, s string) []byte { return avro.AppendString(dst, s) }

func appendOptStr(dst []byte, s *string) []byte {
	if s == nil {
		return append(dst, 0)
	}
	return appendStr(append(dst, 2), *s)
}

func appendOptDouble(dst []byte, f *float64) []byte {
	if f == nil {
		return append(dst, 0)
	}
	return avro.AppendDouble(append(dst, 2), *f)
}

func index(syms []string, s string) int64 {
	for i, x := range syms {
		if x == s {
			return int64(i)
		}
	}
	return 0
}

func appendLoc(dst []byte, l *Location) []byte {
	dst = appendStr(dst, l.Country)
	dst = appendOptStr(dst, l.Region)
	dst = appendOptDouble(dst, l.Latitude)
	return appendOptDouble(dst, l.Longitude)
}

// AppendAvro appends r encoded with traffic.avsc.
func (r *Record) AppendAvro(dst []byte) []byte { return r.appendAvro(dst, false) }

// AppendAvroV2 appends r encoded with traffic_v2.avsc.
func (r *Record) AppendAvroV2(dst []byte) []byte { return r.appendAvro(dst, true) }

func (r *Record) appendAvro(dst []byte, v2 bool) []byte {
	dst = avro.AppendLong(dst, r.ReceiveTime.UnixMicro())
	dst = appendStr(dst, r.TenantID)
	dst = appendStr(dst, r.Serial)
	dst = avro.AppendLong(dst, index(LogTypes, r.LogType))
	dst = appendStr(dst, r.Subtype)
	dst = avro.AppendLong(dst, r.TimeGenerated.UnixMicro())
	dst = appendStr(dst, r.SrcIP)
	dst = appendStr(dst, r.DstIP)
	dst = appendOptStr(dst, r.NatSrcIP)
	dst = appendOptStr(dst, r.NatDstIP)
	dst = appendStr(dst, r.Rule)
	dst = appendOptStr(dst, r.SrcUser)
	dst = appendOptStr(dst, r.DstUser)
	dst = appendStr(dst, r.App)
	if !v2 {
		dst = appendStr(dst, r.Vsys)
	}
	dst = appendStr(dst, r.FromZone)
	dst = appendStr(dst, r.ToZone)
	dst = appendStr(dst, r.InboundIf)
	dst = appendStr(dst, r.OutboundIf)
	dst = appendOptStr(dst, r.LogAction)
	dst = avro.AppendLong(dst, r.SessionID)
	dst = avro.AppendLong(dst, int64(r.RepeatCount))
	dst = avro.AppendLong(dst, int64(r.SrcPort))
	dst = avro.AppendLong(dst, int64(r.DstPort))
	dst = avro.AppendLong(dst, int64(r.NatSrcPort))
	dst = avro.AppendLong(dst, int64(r.NatDstPort))
	dst = avro.AppendLong(dst, r.Flags)
	dst = avro.AppendLong(dst, index(Protocols, r.Protocol))
	dst = avro.AppendLong(dst, index(Actions, r.Action))
	dst = avro.AppendLong(dst, r.BytesTotal)
	dst = avro.AppendLong(dst, r.BytesSent)
	dst = avro.AppendLong(dst, r.BytesReceived)
	dst = avro.AppendLong(dst, r.PacketsTotal)
	dst = avro.AppendLong(dst, r.SessionStart.UnixMicro())
	dst = avro.AppendLong(dst, int64(r.ElapsedSeconds))
	dst = appendOptStr(dst, r.URLCategory)
	dst = avro.AppendLong(dst, r.SequenceNumber)
	dst = avro.AppendLong(dst, r.ActionFlags)
	dst = appendLoc(dst, &r.SrcLocation)
	dst = appendLoc(dst, &r.DstLocation)
	dst = avro.AppendLong(dst, r.PacketsSent)
	dst = avro.AppendLong(dst, r.PacketsReceived)
	dst = appendStr(dst, r.SessionEndReason)
	dst = appendStr(dst, r.DeviceName)
	dst = avro.AppendLong(dst, index(ActionSources, r.ActionSource))
	dst = appendStr(dst, r.SrcUUID)
	dst = appendOptStr(dst, r.DstUUID)
	dst = avro.AppendBool(dst, r.IsDecrypted)
	dst = avro.AppendBool(dst, r.IsThreat)
	if r.RiskScore == nil {
		dst = append(dst, 0)
	} else {
		dst = avro.AppendFloat(append(dst, 2), *r.RiskScore)
	}
	if len(r.Tags) > 0 {
		dst = avro.AppendLong(dst, int64(len(r.Tags)))
		for _, t := range r.Tags {
			dst = appendStr(dst, t)
		}
	}
	dst = append(dst, 0)
	if len(r.Labels) > 0 {
		dst = avro.AppendLong(dst, int64(len(r.Labels)))
		var keys [8]string
		ks := keys[:0]
		for k := range r.Labels {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		for _, k := range ks {
			dst = appendStr(appendStr(dst, k), r.Labels[k])
		}
	}
	dst = append(dst, 0)
	if r.PayloadHash == nil {
		dst = append(dst, 0)
	} else {
		dst = append(append(dst, 2), r.PayloadHash[:]...)
	}
	if v2 {
		dst = appendOptStr(dst, r.RuleUUID)
		dst = appendStr(dst, r.XffIP)
	}
	return dst
}

func optNative(s *string) any {
	if s == nil {
		return nil
	}
	return map[string]any{"string": *s}
}

func optDoubleNative(f *float64) any {
	if f == nil {
		return nil
	}
	return map[string]any{"double": *f}
}

func locNative(l *Location) map[string]any {
	return map[string]any{"country": l.Country, "region": optNative(l.Region),
		"latitude": optDoubleNative(l.Latitude), "longitude": optDoubleNative(l.Longitude)}
}

// Native returns r in goavro's native form for traffic.avsc (what
// goavro.Codec.NativeFromBinary returns for its encoding).
func (r *Record) Native() map[string]any {
	tags := make([]any, len(r.Tags))
	for i, t := range r.Tags {
		tags[i] = t
	}
	labels := make(map[string]any, len(r.Labels))
	for k, v := range r.Labels {
		labels[k] = v
	}
	var risk, hash any
	if r.RiskScore != nil {
		risk = map[string]any{"float": *r.RiskScore}
	}
	if r.PayloadHash != nil {
		hash = map[string]any{"sluice.bench.SHA256": append([]byte(nil), r.PayloadHash[:]...)}
	}
	return map[string]any{
		"receive_time": r.ReceiveTime.UTC(), "tenant_id": r.TenantID, "serial": r.Serial, "log_type": r.LogType,
		"subtype": r.Subtype, "time_generated": r.TimeGenerated.UTC(), "src_ip": r.SrcIP, "dst_ip": r.DstIP,
		"nat_src_ip": optNative(r.NatSrcIP), "nat_dst_ip": optNative(r.NatDstIP), "rule": r.Rule,
		"src_user": optNative(r.SrcUser), "dst_user": optNative(r.DstUser), "app": r.App, "vsys": r.Vsys,
		"from_zone": r.FromZone, "to_zone": r.ToZone, "inbound_if": r.InboundIf, "outbound_if": r.OutboundIf,
		"log_action": optNative(r.LogAction), "session_id": r.SessionID, "repeat_count": r.RepeatCount,
		"src_port": r.SrcPort, "dst_port": r.DstPort, "nat_src_port": r.NatSrcPort, "nat_dst_port": r.NatDstPort,
		"flags": r.Flags, "protocol": r.Protocol, "action": r.Action, "bytes_total": r.BytesTotal,
		"bytes_sent": r.BytesSent, "bytes_received": r.BytesReceived, "packets_total": r.PacketsTotal,
		"session_start": r.SessionStart.UTC(), "elapsed_seconds": r.ElapsedSeconds, "url_category": optNative(r.URLCategory),
		"sequence_number": r.SequenceNumber, "action_flags": r.ActionFlags,
		"src_location": locNative(&r.SrcLocation), "dst_location": locNative(&r.DstLocation),
		"packets_sent": r.PacketsSent, "packets_received": r.PacketsReceived, "session_end_reason": r.SessionEndReason,
		"device_name": r.DeviceName, "action_source": r.ActionSource, "src_uuid": r.SrcUUID, "dst_uuid": optNative(r.DstUUID),
		"is_decrypted": r.IsDecrypted, "is_threat": r.IsThreat, "risk_score": risk, "tags": tags, "labels": labels,
		"payload_hash": hash,
	}
}

// Micros is t as microseconds since the epoch, the slot value of a
// timestamp-micros column.
func Micros(t time.Time) int64 { return t.UnixMicro() }
